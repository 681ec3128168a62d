package registry

import (
	"net/url"

	"github.com/nexus-broker/nexus/shared/discovery"
)

// urlProblem says what is wrong with a provider URL, or "" when it is fine
// (discovery.CheckEndpoint: https, or http on loopback hosts).
func urlProblem(raw string) string {
	if err := discovery.CheckEndpoint(raw); err != nil {
		return err.Error()
	}
	return ""
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
