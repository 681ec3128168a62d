package web

import (
	"errors"
	"maps"
	"net/url"
	"slices"

	"github.com/nexus-broker/nexus/messages"
)

// maxQuery bounds what the callback reads from its query.
const maxQuery = 8 << 10

// callbackQuery is what a provider's redirect carries (RFC 6749 4.1.2,
// RFC 9207).
type callbackQuery struct {
	Code  string
	State string
	// Error is the response's error code when it is one of knownErrors,
	// else "provider_error"; error_description and error_uri are free text
	// and never read.
	Error  string
	Iss    string
	HasIss bool
	// Params are the other parameters, given once each and at most
	// messages.MaxCallbackParams of them: values some providers send only
	// here (QuickBooks realmId, Zoho accounts-server), which the vault
	// keeps when the provider's quirks name them.
	Params map[string]string
}

// ownParams are the callback's parameters the broker reads itself, or
// never reads (free text): none is passed on.
var ownParams = map[string]bool{"code": true, "state": true, "iss": true, "error": true, "error_description": true, "error_uri": true}

// knownErrors are the authorization error codes of RFC 6749 section 4.1.2.1
// and OpenID Connect Core section 3.1.2.6: the only ones a consent records.
var knownErrors = map[string]bool{
	"invalid_request": true, "unauthorized_client": true, "access_denied": true, "unsupported_response_type": true,
	"invalid_scope": true, "server_error": true, "temporarily_unavailable": true,
	"interaction_required": true, "login_required": true, "account_selection_required": true, "consent_required": true,
	"invalid_request_uri": true, "invalid_request_object": true, "request_not_supported": true,
	"request_uri_not_supported": true, "registration_not_supported": true,
}

var errQuery = errors.New("malformed callback query")

// parseCallbackQuery reads raw (the URL's RawQuery). A parameter given twice
// is refused (RFC 6749 3.1: parameters must not be repeated).
func parseCallbackQuery(raw string) (callbackQuery, error) {
	if len(raw) > maxQuery {
		return callbackQuery{}, errQuery
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		return callbackQuery{}, errQuery
	}
	for _, k := range []string{"code", "state", "error", "error_description", "iss"} {
		if len(v[k]) > 1 {
			return callbackQuery{}, errQuery
		}
	}
	q := callbackQuery{
		Code:   v.Get("code"),
		State:  v.Get("state"),
		Iss:    v.Get("iss"),
		HasIss: v.Has("iss"),
	}
	for _, k := range slices.Sorted(maps.Keys(v)) {
		vs := v[k]
		if ownParams[k] || len(vs) != 1 || len(q.Params) == messages.MaxCallbackParams {
			continue
		}
		if q.Params == nil {
			q.Params = map[string]string{}
		}
		q.Params[k] = vs[0]
	}
	if v.Has("error") {
		q.Error = "provider_error"
		if c := v.Get("error"); knownErrors[c] {
			q.Error = c
		}
	}
	return q, nil
}
