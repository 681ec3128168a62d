package registry

import (
	"fmt"
	"regexp"
	"slices"

	"github.com/nexus-broker/nexus/messages"
)

// Bounds on quirks: the vault reads them on every token response.
const (
	maxQuirkEntries = 16
	maxPathLen      = 128
	// minKeepAlive: a keep-alive refresh more often than this would cost
	// the provider's rate limits more than it saves a refresh token.
	minKeepAlive = 60
	maxKeepAlive = 365 * 24 * 3600
)

var (
	// errorCode is the form of a token endpoint error code in
	// permanent_errors.
	errorCode = regexp.MustCompile(`^[a-z0-9_.-]{1,64}$`)
	// dottedPath is token_path and the values of config_from_token: names of
	// nested JSON members.
	dottedPath = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
	// configKey is a key of the connection's config.
	configKey = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	// queryName is a query parameter of the authorization response.
	queryName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// callbackOwn are the authorization response's parameters the broker reads
// itself; the vault never receives them as callback params.
var callbackOwn = []string{"code", "state", "iss", "error", "error_description", "error_uri"}

// grantErrors are the codes that already mean the user's grant is gone.
var grantErrors = []string{"invalid_grant", "unauthorized_client"}

// validateQuirks checks an OAuth provider's quirks. They are data the vault
// acts on at every token response, so each is bounded and of a known form.
func validateQuirks(ps *problems, q *messages.Quirks) {
	if q == nil {
		return
	}
	if len(q.PermanentErrors) > maxQuirkEntries {
		ps.add("quirks.permanent_errors", "may list at most %d codes", maxQuirkEntries)
	}
	for i, c := range q.PermanentErrors {
		field := fmt.Sprintf("quirks.permanent_errors[%d]", i)
		switch {
		case !errorCode.MatchString(c):
			ps.add(field, "must match %s", errorCode)
		case c == "invalid_client":
			ps.add(field, "invalid_client is about the broker's client, not the user's grant: the vault marks the provider misconfigured and leaves its connections be")
		case slices.Contains(grantErrors, c):
			ps.add(field, "%s is permanent already; leave it out", c)
		case slices.Contains(q.PermanentErrors[:i], c):
			ps.add(field, "%q is listed twice", c)
		}
	}
	switch q.ExpiresInUnit {
	case "", "s", "ms":
	default:
		ps.add("quirks.expires_in_unit", `must be "s" (seconds, the default) or "ms"`)
	}
	if q.TokenPath != "" && (len(q.TokenPath) > maxPathLen || !dottedPath.MatchString(q.TokenPath)) {
		ps.add("quirks.token_path", "must be a dotted path of member names (letters, digits, '_', '-'), at most %d characters", maxPathLen)
	}
	configMap(ps, "quirks.config_from_token", q.ConfigFromToken, func(v string) string {
		if len(v) > maxPathLen || !dottedPath.MatchString(v) {
			return fmt.Sprintf("must be a dotted path of the token response's member names, at most %d characters", maxPathLen)
		}
		return ""
	})
	configMap(ps, "quirks.config_from_callback", q.ConfigFromCallback, func(v string) string {
		switch {
		case !queryName.MatchString(v):
			return fmt.Sprintf("must be a query parameter name matching %s", queryName)
		case slices.Contains(callbackOwn, v):
			return fmt.Sprintf("%s is read by the broker itself, never kept as config", v)
		}
		return ""
	})
	switch k := q.KeepAliveSeconds; {
	case k < 0:
		ps.add("quirks.keep_alive_seconds", "must not be negative (0: no keep-alive)")
	case k > 0 && k < minKeepAlive:
		ps.add("quirks.keep_alive_seconds", "must be at least %d when set", minKeepAlive)
	case k > maxKeepAlive:
		ps.add("quirks.keep_alive_seconds", "must be at most one year")
	}
}

// configMap checks a map from config keys to where their values come from,
// in key order.
func configMap(ps *problems, field string, m map[string]string, valueProblem func(string) string) {
	if len(m) > maxQuirkEntries {
		ps.add(field, "may have at most %d entries", maxQuirkEntries)
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !configKey.MatchString(k) {
			ps.add(field, "config key %s must match %s", quoteName(k), configKey)
			continue
		}
		if prob := valueProblem(m[k]); prob != "" {
			ps.add(field+"."+k, "%s", prob)
		}
	}
}

// normalizeQuirks drops empty quirks, so that a provider that follows RFC
// 6749 has none.
func normalizeQuirks(p *messages.Provider) {
	q := p.Quirks
	if q == nil {
		return
	}
	if len(q.PermanentErrors) == 0 {
		q.PermanentErrors = nil
	}
	if len(q.ConfigFromToken) == 0 {
		q.ConfigFromToken = nil
	}
	if len(q.ConfigFromCallback) == 0 {
		q.ConfigFromCallback = nil
	}
	if q.PermanentErrors == nil && q.ExpiresInUnit == "" && q.TokenPath == "" && !q.OKField &&
		q.ConfigFromToken == nil && q.ConfigFromCallback == nil && q.KeepAliveSeconds == 0 {
		p.Quirks = nil
	}
}
