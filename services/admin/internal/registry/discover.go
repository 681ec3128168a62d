package registry

import (
	"context"
	"errors"
	"net/url"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/discovery"
)

// discoveredFields are the endpoints discovery supplies for oidc providers.
var discoveredFields = []string{"authorization_endpoint", "token_endpoint", "revocation_endpoint", "jwks_uri"}

// fill runs discovery for an oidc provider and fills the endpoints the
// document did not set explicitly. Explicit values override the discovered
// ones (an operator may, say, route the token endpoint through a proxy); the
// discovery document itself must still be valid. It returns the problem, or
// "" on success.
func (r *Registry) fill(ctx context.Context, p *messages.Provider) string {
	var (
		doc discovery.Document
		err error
	)
	if p.Type == messages.ProviderOIDC {
		doc, err = r.discover.Discover(ctx, p.Issuer)
	} else {
		doc, err = r.discover.DiscoverAuthorizationServer(ctx, p.Issuer)
		var de *discovery.Error
		switch {
		case errors.Is(err, discovery.ErrNoMetadata):
			return "" // most OAuth 2.0 servers publish none: what is configured stands
		case errors.As(err, &de) && de.Unreachable:
			// The endpoints of an OAuth 2.0 provider are configured; only
			// metadata that is there and wrong is a problem.
			r.log.Warn("authorization server metadata unreachable; the configured endpoints stand", "issuer", p.Issuer, "err", err)
			return ""
		}
	}
	if err != nil {
		return "issuer: " + err.Error()
	}
	// Once the server says it sends iss, responses without one are refused;
	// the server's metadata never turns that off (an operator's update can).
	if doc.IssParameterSupported {
		p.IssParameterSupported = true
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

// check runs discovery (when asked, for OAuth providers with a usable
// issuer: OIDC discovery, or an OAuth 2.0 server's RFC 8414 metadata when it
// publishes any) and then every validation, returning all problems together.
// An OAuth 2.0 provider without an issuer gets its authorization endpoint's
// origin as one: every provider has an issuer, unique across providers.
func (r *Registry) check(ctx context.Context, p *messages.Provider, newSecret, heldSecret, discover bool) problems {
	var ps problems
	failed := false
	if p.Type == messages.ProviderOAuth2 && p.Issuer == "" && p.AuthorizationEndpoint != "" {
		// Only an identifier: there is no metadata to fetch for it.
		if u, err := url.Parse(p.AuthorizationEndpoint); err == nil && u.Scheme != "" && u.Host != "" {
			p.Issuer = u.Scheme + "://" + u.Host
			discover = false
		}
	}
	if discover && isOAuth(p.Type) && p.Issuer != "" && r.urls.issuerProblem(p.Issuer) == "" {
		if prob := r.fill(ctx, p); prob != "" {
			ps.addText("issuer", prob)
			failed = true
		}
	}
	return append(ps, validate(*p, r.urls, newSecret, heldSecret, failed)...)
}
