package registry

import (
	"context"

	"github.com/nexus-broker/nexus/messages"
)

// discoveredFields are the endpoints discovery supplies for oidc providers.
var discoveredFields = []string{"authorization_endpoint", "token_endpoint", "revocation_endpoint", "jwks_uri"}

// fill runs discovery for an oidc provider and fills the endpoints the
// document did not set explicitly. Explicit values override the discovered
// ones (an operator may, say, route the token endpoint through a proxy); the
// discovery document itself must still be valid. It returns the problem, or
// "" on success.
func (r *Registry) fill(ctx context.Context, p *messages.Provider) string {
	doc, err := r.discover.Discover(ctx, p.Issuer)
	if err != nil {
		return "issuer: " + err.Error()
	}
	for _, f := range []struct {
		dst *string
		v   string
	}{
		{&p.AuthorizationEndpoint, doc.AuthorizationEndpoint},
		{&p.TokenEndpoint, doc.TokenEndpoint},
		{&p.RevocationEndpoint, doc.RevocationEndpoint},
		{&p.JWKSURI, doc.JWKSURI},
	} {
		if *f.dst == "" {
			*f.dst = f.v
		}
	}
	return ""
}

// check runs discovery (when asked, for oidc providers with a usable
// issuer) and then every validation, returning all problems together.
func (r *Registry) check(ctx context.Context, p *messages.Provider, newSecret, heldSecret, discover bool) problems {
	var ps problems
	failed := false
	if discover && p.Type == messages.ProviderOIDC && p.Issuer != "" && r.urls.issuerProblem(p.Issuer) == "" {
		if prob := r.fill(ctx, p); prob != "" {
			ps.addText("issuer", prob)
			failed = true
		}
	}
	return append(ps, validate(*p, r.urls, newSecret, heldSecret, failed)...)
}
