package registry

import (
	"net/url"

	"github.com/nexus-broker/nexus/shared/discovery"
	"github.com/nexus-broker/nexus/shared/egress"
)

// urlRule is the rule provider URLs follow (discovery.CheckEndpoint: https,
// or http when PROVIDER_PRIVATE_NETWORKS, these networks, lists any; a host
// written as an address must be one the egress guard connects to).
type urlRule egress.Networks

// problem says what is wrong with a provider URL, or "" when it is fine.
func (r urlRule) problem(raw string) string {
	if err := discovery.CheckEndpoint(raw, egress.Networks(r)); err != nil {
		return err.Error()
	}
	return ""
}

// issuerProblem is problem plus OpenID Connect's rule that an issuer has
// no query.
func (r urlRule) issuerProblem(raw string) string {
	if p := r.problem(raw); p != "" {
		return p
	}
	if u, _ := url.Parse(raw); u.RawQuery != "" || u.ForceQuery {
		return "must not have a query"
	}
	return ""
}
