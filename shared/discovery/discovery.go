// Package discovery reads OpenID Provider configuration documents (OpenID
// Connect Discovery 1.0) and holds the rule every provider URL follows. Admin
// discovers a provider when it is registered; the handshake re-reads (and
// caches) the document for each consent.
package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/nexus-broker/nexus/shared/egress"
)

// Document is what the broker takes from a discovery document.
type Document struct {
	Issuer                        string   `json:"issuer"`
	AuthorizationEndpoint         string   `json:"authorization_endpoint"`
	TokenEndpoint                 string   `json:"token_endpoint"`
	RevocationEndpoint            string   `json:"revocation_endpoint"`
	JWKSURI                       string   `json:"jwks_uri"`
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
	// IssParameterSupported: the provider sends iss in every authorization
	// response (RFC 9207), so a callback without one is refused.
	IssParameterSupported bool `json:"authorization_response_iss_parameter_supported"`
}

// Error says, in words an operator can act on, why discovery failed.
type Error struct {
	URL    string
	Reason string
	// Unreachable: no answer came (network error or timeout).
	Unreachable bool
}

func (e *Error) Error() string { return fmt.Sprintf("discovery at %s failed: %s", e.URL, e.Reason) }

// Client fetches discovery documents.
type Client struct {
	http *egress.Client
}

// New returns a client that fetches through hc, the egress guard (which
// also says which networks the documents' endpoints may name), or, when hc
// is nil, through a guard that opens no private network. Redirects are
// never followed: the document must be served at the issuer's own
// well-known URL.
func New(hc *egress.Client) *Client {
	if hc == nil {
		hc = egress.New(egress.Options{})
	}
	return &Client{http: hc}
}

// URL is where the discovery document of issuer lives.
func URL(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
}

// Discover fetches and checks issuer's discovery document: the issuer and
// every endpoint follow CheckEndpoint (with the networks the client opens);
// the document's issuer must equal issuer exactly; authorization_endpoint,
// token_endpoint and jwks_uri must be present;
// code_challenge_methods_supported, when present, must include S256. Every
// failure is an *Error.
func (c *Client) Discover(ctx context.Context, issuer string) (Document, error) {
	u := URL(issuer)
	fail := func(format string, args ...any) (Document, error) {
		return Document{}, &Error{URL: u, Reason: fmt.Sprintf(format, args...)}
	}
	private := c.http.Private()
	if err := CheckEndpoint(issuer, private); err != nil {
		return fail("the issuer %v", err)
	}
	doc, err := c.fetch(ctx, u, "document")
	if errors.Is(err, errNotFound) {
		return fail("the server answered HTTP 404, not 200")
	}
	if err != nil {
		return Document{}, err
	}
	if doc.Issuer != issuer {
		return fail("the document's issuer %s", issuerMismatch(doc.Issuer, issuer))
	}
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"authorization_endpoint", doc.AuthorizationEndpoint},
		{"token_endpoint", doc.TokenEndpoint},
		{"jwks_uri", doc.JWKSURI},
	} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fail("the document has no %s", strings.Join(missing, ", "))
	}
	for _, f := range []struct{ name, value string }{
		{"authorization_endpoint", doc.AuthorizationEndpoint},
		{"token_endpoint", doc.TokenEndpoint},
		{"jwks_uri", doc.JWKSURI},
		{"revocation_endpoint", doc.RevocationEndpoint},
	} {
		if f.value == "" {
			continue
		}
		if err := CheckEndpoint(f.value, private); err != nil {
			return fail("%s %v", f.name, err)
		}
	}
	if doc.CodeChallengeMethodsSupported != nil && !slices.Contains(doc.CodeChallengeMethodsSupported, "S256") {
		return fail("code_challenge_methods_supported does not include S256, which the broker requires (PKCE)")
	}
	return doc, nil
}

// errNotFound: the server answered 404.
var errNotFound = errors.New("discovery: HTTP 404")

// fetch GETs the JSON document at u through the egress guard; what names it
// in problems ("document", "metadata"). A 404 is errNotFound, any other
// failure an *Error: Unreachable when no answer came, but not when the guard
// refused the address (the host is somewhere the broker does not go, which
// is no outage).
func (c *Client) fetch(ctx context.Context, u, what string) (Document, error) {
	fail := func(format string, args ...any) (Document, error) {
		return Document{}, &Error{URL: u, Reason: fmt.Sprintf(format, args...)}
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
			err = ue.Unwrap() // drop the `Get "url":` prefix, the URL is already said
		}
		return Document{}, &Error{URL: u, Reason: fmt.Sprintf("could not fetch the %s: %v", what, err), Unreachable: !errors.Is(err, egress.ErrRefused)}
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return Document{}, errNotFound
	default:
		return fail("the server answered HTTP %d, not 200", resp.StatusCode)
	}
	// The egress client caps the body (egress.Options.MaxBody) and says so.
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fail("reading the %s: %v", what, err)
	}
	var doc Document
	if err := json.Unmarshal(body, &doc); err != nil {
		return fail("the %s is not valid JSON: %v", what, err)
	}
	return doc, nil
}

// issuerMismatch says how a document's issuer differs from the configured
// one without quoting the document's: what a provider writes is shown to no
// one (an operator, or an agent reading admin's replies, would read it).
func issuerMismatch(got, want string) string {
	switch {
	case got == "":
		return "is missing"
	case strings.TrimSuffix(got, "/") == strings.TrimSuffix(want, "/"):
		return fmt.Sprintf("differs from the configured issuer %q by a trailing slash", want)
	case strings.EqualFold(got, want):
		return fmt.Sprintf("differs from the configured issuer %q in letter case", want)
	default:
		return fmt.Sprintf("is not the configured issuer %q", want)
	}
}
