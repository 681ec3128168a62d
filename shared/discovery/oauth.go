package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// ErrNoMetadata: the authorization server publishes no RFC 8414 metadata
// (404 at its well-known URL). Many OAuth 2.0 servers do not.
var ErrNoMetadata = errors.New("discovery: no authorization server metadata")

// MetadataURL is where an OAuth 2.0 authorization server's metadata lives
// (RFC 8414 section 3.1): the well-known suffix goes between the host and
// the issuer's path.
func MetadataURL(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil {
		return ""
	}
	u.Path = "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u.String()
}

// DiscoverAuthorizationServer fetches and checks an OAuth 2.0 authorization
// server's metadata (RFC 8414) by the same rules as Discover, except that
// jwks_uri is optional; a server that has none answers ErrNoMetadata, and
// any other failure is an *Error.
func (c *Client) DiscoverAuthorizationServer(ctx context.Context, issuer string) (Document, error) {
	u := MetadataURL(issuer)
	fail := func(format string, args ...any) (Document, error) {
		return Document{}, &Error{URL: u, Reason: fmt.Sprintf(format, args...)}
	}
	private := c.http.Private()
	if err := CheckEndpoint(issuer, private); err != nil || u == "" {
		return fail("the issuer %v", err)
	}
	doc, err := c.fetch(ctx, u, "metadata")
	if errors.Is(err, errNotFound) {
		return Document{}, ErrNoMetadata
	}
	if err != nil {
		return Document{}, err
	}
	if doc.Issuer != issuer {
		return fail("the metadata's issuer %s", issuerMismatch(doc.Issuer, issuer))
	}
	for _, f := range []struct {
		name, value string
		required    bool
	}{
		{"authorization_endpoint", doc.AuthorizationEndpoint, true},
		{"token_endpoint", doc.TokenEndpoint, true},
		{"jwks_uri", doc.JWKSURI, false},
		{"revocation_endpoint", doc.RevocationEndpoint, false},
	} {
		switch {
		case f.value == "" && f.required:
			return fail("the metadata has no %s", f.name)
		case f.value != "":
			if err := CheckEndpoint(f.value, private); err != nil {
				return fail("%s %v", f.name, err)
			}
		}
	}
	if doc.CodeChallengeMethodsSupported != nil && !slices.Contains(doc.CodeChallengeMethodsSupported, "S256") {
		return fail("code_challenge_methods_supported does not include S256, which the broker requires (PKCE)")
	}
	return doc, nil
}
