package messages

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
)

// Bounds on quirks: the vault reads them on every token response.
const (
	maxQuirkEntries = 16
	maxQuirkPath    = 128
	// minKeepAlive: a keep-alive refresh more often than this would cost
	// the provider's rate limits more than it saves a refresh token.
	minKeepAlive = 60
	maxKeepAlive = 365 * 24 * 3600
)

var (
	// quirkErrorCode is the form of a token endpoint error code in
	// permanent_errors.
	quirkErrorCode = regexp.MustCompile(`^[a-z0-9_.-]{1,64}$`)
	// quirkPath is token_path and the values of config_from_token: names of
	// nested JSON members.
	quirkPath = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
	// quirkConfigKey is a key of the connection's config.
	quirkConfigKey = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	// quirkQueryName is a query parameter of the authorization response.
	quirkQueryName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// callbackOwn are the authorization response's parameters the broker reads
// itself; the vault never receives them as callback params.
var callbackOwn = []string{"code", "state", "iss", "error", "error_description", "error_uri"}

// grantErrors are the codes that already mean the user's grant is gone.
var grantErrors = []string{"invalid_grant", "unauthorized_client"}

// QuirkProblem is one thing wrong with a Quirks document: the field (as
// "quirks.token_path") and what is wrong, in words an operator can act on.
type QuirkProblem struct {
	Field, Message string
}

// Problems checks a provider's quirks; admin refuses a document with any,
// and so does the vault. They are data the vault acts on at every token
// response, so each is bounded and of a known form.
func (q Quirks) Problems() []QuirkProblem {
	var ps quirkProblems
	if len(q.PermanentErrors) > maxQuirkEntries {
		ps.add("quirks.permanent_errors", "may list at most %d codes", maxQuirkEntries)
	}
	for i, c := range q.PermanentErrors {
		field := fmt.Sprintf("quirks.permanent_errors[%d]", i)
		switch {
		case !quirkErrorCode.MatchString(c):
			ps.add(field, "must match %s", quirkErrorCode)
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
	if q.TokenPath != "" && (len(q.TokenPath) > maxQuirkPath || !quirkPath.MatchString(q.TokenPath)) {
		ps.add("quirks.token_path", "must be a dotted path of member names (letters, digits, '_', '-'), at most %d characters", maxQuirkPath)
	}
	configMap(&ps, "quirks.config_from_token", q.ConfigFromToken, func(v string) string {
		if len(v) > maxQuirkPath || !quirkPath.MatchString(v) {
			return fmt.Sprintf("must be a dotted path of the token response's member names, at most %d characters", maxQuirkPath)
		}
		return ""
	})
	configMap(&ps, "quirks.config_from_callback", q.ConfigFromCallback, func(v string) string {
		switch {
		case !quirkQueryName.MatchString(v):
			return fmt.Sprintf("must be a query parameter name matching %s", quirkQueryName)
		case slices.Contains(callbackOwn, v):
			return fmt.Sprintf("%s is read by the broker itself, never kept as config", v)
		}
		return ""
	})
	if r := q.ConfigFromRequest; r != nil {
		if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" {
			ps.add("quirks.config_from_request.url", "must be an absolute http(s) URL without user info or fragment")
		}
		if len(r.Config) == 0 {
			ps.add("quirks.config_from_request.config", "must name at least one config key")
		}
		configMap(&ps, "quirks.config_from_request.config", r.Config, func(v string) string {
			if len(v) > maxQuirkPath || !quirkPath.MatchString(v) {
				return fmt.Sprintf("must be a dotted path of the answer's member names or array indexes, at most %d characters", maxQuirkPath)
			}
			return ""
		})
	}
	switch k := q.KeepAliveSeconds; {
	case k < 0:
		ps.add("quirks.keep_alive_seconds", "must not be negative (0: no keep-alive)")
	case k > 0 && k < minKeepAlive:
		ps.add("quirks.keep_alive_seconds", "must be at least %d when set", minKeepAlive)
	case k > maxKeepAlive:
		ps.add("quirks.keep_alive_seconds", "must be at most one year")
	}
	return ps
}

type quirkProblems []QuirkProblem

func (ps *quirkProblems) add(field, format string, args ...any) {
	*ps = append(*ps, QuirkProblem{Field: field, Message: fmt.Sprintf(format, args...)})
}

// configMap checks a map from config keys to where their values come from,
// in key order.
func configMap(ps *quirkProblems, field string, m map[string]string, valueProblem func(string) string) {
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
		if !quirkConfigKey.MatchString(k) {
			ps.add(field, "config key %q must match %s", k, quirkConfigKey)
			continue
		}
		if prob := valueProblem(m[k]); prob != "" {
			ps.add(field+"."+k, "%s", prob)
		}
	}
}
