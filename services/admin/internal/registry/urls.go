package registry

import (
	"net"
	"net/url"
	"strings"
)

// urlProblem says what is wrong with a provider URL, or "" when it is fine.
// Provider URLs must be absolute https URLs; http is allowed only on
// loopback hosts (127.0.0.0/8, ::1, localhost), for tests and local
// development (docs/INTERNALS.md, "Provider URLs").
func urlProblem(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return "must be an absolute URL"
	}
	if u.User != nil {
		return "must not carry user information"
	}
	if u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return "must not have a fragment"
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		if isLoopback(u.Hostname()) {
			return ""
		}
		return "must use https (http is allowed only on loopback hosts)"
	default:
		return "must use https"
	}
}

// issuerProblem is urlProblem plus OpenID Connect's rule that an issuer has
// no query.
func issuerProblem(raw string) string {
	if p := urlProblem(raw); p != "" {
		return p
	}
	if u, _ := url.Parse(raw); u.RawQuery != "" || u.ForceQuery {
		return "must not have a query"
	}
	return ""
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
