package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/nexus-broker/nexus/shared/egress"
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fail("bad URL: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			err = ue.Unwrap()
		}
		// A refusal by the egress guard is not an outage: the issuer's
		// host is somewhere the broker does not go.
		return Document{}, &Error{URL: u, Reason: fmt.Sprintf("could not fetch the metadata: %v", err), Unreachable: !errors.Is(err, egress.ErrRefused)}
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return Document{}, ErrNoMetadata
	default:
		return fail("the server answered HTTP %d, not 200", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument+1))
	if err != nil {
		return fail("reading the metadata: %v", err)
	}
	if len(body) > maxDocument {
		return fail("the metadata is larger than 1 MiB")
	}
	var doc Document
	if err := json.Unmarshal(body, &doc); err != nil {
		return fail("the metadata is not valid JSON")
	}
	if doc.Issuer != issuer {
		return fail("the metadata's issuer %q does not equal the configured issuer %q", doc.Issuer, issuer)
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
		return fail("code_challenge_methods_supported %v does not include S256, which the broker requires (PKCE)", doc.CodeChallengeMethodsSupported)
	}
	return doc, nil
}
