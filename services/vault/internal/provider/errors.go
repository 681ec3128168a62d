package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"golang.org/x/oauth2"

	"github.com/nexus-broker/nexus/messages"

	"github.com/nexus-broker/nexus/shared/egress"
)

// Kind says what a provider failure means for the connection.
type Kind int

const (
	// Transient: timeouts, network errors, 5xx and 429. Retry later (honour
	// RetryAfter); the connection is fine.
	Transient Kind = iota + 1
	// Permanent: the grant is gone (invalid_grant, unauthorized_client). Only
	// the user can fix it by consenting again.
	Permanent
	// Rejected: any other refusal (invalid_request, invalid_scope, a
	// malformed response). The same 4xx refusal repeated becomes the
	// user's problem (refresh decides: a provider that says "refresh token
	// already claimed" with invalid_request).
	Rejected
	// InvalidIDToken: the id_token is missing or fails verification.
	InvalidIDToken
	// Misconfigured: the token endpoint refused the broker's client itself
	// (invalid_client). The operator must fix the registration; the
	// users' grants are not in question.
	Misconfigured
)

// Sentinels for errors.Is on an *Error's kind.
var (
	ErrTransient      = &Error{Kind: Transient}
	ErrPermanent      = &Error{Kind: Permanent}
	ErrRejected       = &Error{Kind: Rejected}
	ErrInvalidIDToken = &Error{Kind: InvalidIDToken}
	ErrMisconfigured  = &Error{Kind: Misconfigured}
)

// Error is a failure talking to a provider. Code is the provider's OAuth
// error code when it sent one. The message never contains a secret, the
// response body, or the provider's error description.
type Error struct {
	Kind       Kind
	Endpoint   string // "token" or "revocation"
	Code       string // e.g. invalid_grant; "" when none
	Status     int    // HTTP status; 0 when there was no response
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	switch {
	case e.Kind == InvalidIDToken:
		return fmt.Sprintf("id_token rejected: %v", e.Err)
	case e.Code != "" && e.Status == 0:
		return fmt.Sprintf("provider %s endpoint answered %s", e.Endpoint, e.Code)
	case e.Code != "":
		return fmt.Sprintf("provider %s endpoint answered %s (HTTP %d)", e.Endpoint, e.Code, e.Status)
	case e.Status != 0:
		return fmt.Sprintf("provider %s endpoint answered HTTP %d", e.Endpoint, e.Status)
	default:
		return fmt.Sprintf("provider %s endpoint: %v", e.Endpoint, e.Err)
	}
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is matches the sentinels by kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == "" && t.Endpoint == "" && t.Kind == e.Kind
}

// PermanentCodes are the OAuth error codes that mean the grant is gone
// (docs/ARCHITECTURE.md, invariants 6); a provider's quirks add its own
// (Quirks.PermanentErrors).
var PermanentCodes = map[string]bool{"invalid_grant": true, "unauthorized_client": true}

// Refusal reports whether e is the provider refusing a request (an HTTP 4xx
// other than 429 with an answer), as opposed to failing to answer.
func (e *Error) Refusal() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusTooManyRequests
}

// tokenErrors are the token endpoint's error codes (RFC 6749 section 5.2,
// RFC 8628, RFC 9449): the only ones kept. Nothing else a provider writes
// is stored, logged or published.
var tokenErrors = map[string]bool{
	"invalid_request": true, "invalid_client": true, "invalid_grant": true, "unauthorized_client": true,
	"unsupported_grant_type": true, "invalid_scope": true, "access_denied": true, "expired_token": true,
	"invalid_dpop_proof": true, "use_dpop_nonce": true, "server_error": true, "temporarily_unavailable": true,
}

// tokenErrorCode is code when it is a token endpoint error code or one the
// provider's quirks name, else "provider_error" (or "" for none).
func tokenErrorCode(code string, q messages.Quirks) string {
	switch {
	case code == "":
		return ""
	case tokenErrors[code], slices.Contains(q.PermanentErrors, code):
		return code
	}
	return "provider_error"
}

// classify turns an x/oauth2 or transport error into an *Error, with the
// provider's quirks saying which codes are permanent besides the RFC's.
func classify(endpoint string, err error, q messages.Quirks) *Error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		e := &Error{Endpoint: endpoint, Code: tokenErrorCode(re.ErrorCode, q), Err: errors.New("provider error response")}
		if re.Response != nil {
			e.Status = re.Response.StatusCode
			e.RetryAfter = retryAfter(re.Response.Header, time.Now())
		}
		switch {
		case e.Status == http.StatusTooManyRequests || e.Status >= 500 || re.ErrorCode == "temporarily_unavailable" || re.ErrorCode == "server_error":
			e.Kind = Transient
		case PermanentCodes[re.ErrorCode] || slices.Contains(q.PermanentErrors, re.ErrorCode):
			e.Kind = Permanent
		case re.ErrorCode == "invalid_client":
			e.Kind = Misconfigured
		default:
			e.Kind = Rejected
		}
		return e
	}
	// The guard's refusals and the body cap say, without a secret or the
	// response, what an operator has to change.
	var refused *egress.RefusedError
	if errors.As(err, &refused) {
		return &Error{Kind: Rejected, Endpoint: endpoint, Err: refused}
	}
	if egress.IsBodyTooLarge(err) {
		return &Error{Kind: Rejected, Endpoint: endpoint, Err: errors.New("the response is larger than the broker reads from a provider")}
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.As(err, &ne) {
		return &Error{Kind: Transient, Endpoint: endpoint, Err: errors.New("no answer (timeout or network error)")}
	}
	// x/oauth2's own errors (an unparseable response, no access_token) carry
	// no secret, but may quote the response; keep only that it was malformed.
	return &Error{Kind: Rejected, Endpoint: endpoint, Err: errors.New("malformed response")}
}

// retryAfter reads a Retry-After header (seconds or an HTTP date).
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
