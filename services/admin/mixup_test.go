package admin_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nexus-broker/nexus/messages"
)

// TestIssuersAndCallbacks: every OAuth provider has an issuer, no two
// servers claim one, each provider has its own callback path, and a
// server's "I send iss" is learned from its metadata and never unlearned by it.
func TestIssuersAndCallbacks(t *testing.T) {
	t.Parallel()
	e := setup(t)

	// An OAuth 2.0 provider without an issuer gets its authorization
	// endpoint's origin; a second client at the same server may share it.
	gh := e.create(oauth2Provider("github", "s"))
	if gh.Issuer != "https://auth.example.com" {
		t.Fatalf("issuer = %q", gh.Issuer)
	}
	if gh.CallbackPath != "/v1/callback/"+gh.ID || gh.SharedCallback {
		t.Fatalf("callback path %q shared %v", gh.CallbackPath, gh.SharedCallback)
	}
	staging := e.create(oauth2Provider("github-staging", "s"))
	if staging.Issuer != gh.Issuer || staging.CallbackPath == gh.CallbackPath {
		t.Fatalf("a second client at one server: issuer %q, callback %q", staging.Issuer, staging.CallbackPath)
	}
	// Another server claiming that issuer is refused.
	evil := oauth2Provider("evil", "s")
	evil.Issuer = gh.Issuer
	evil.AuthorizationEndpoint, evil.TokenEndpoint = "https://evil.example.net/authorize", "https://evil.example.net/token"
	if err := e.request(messages.SubjectProvidersCreate, evil, nil); !errors.Is(err, messages.ErrConflict) || !strings.Contains(err.Error(), "github") {
		t.Fatalf("another server with github's issuer: %v, want conflict", err)
	}
	// The same for an OIDC issuer: a second provider at other endpoints.
	oidc := e.create(e.oidcProvider("acme", "s"))
	fake := oauth2Provider("fake-acme", "s")
	fake.Issuer = oidc.Issuer
	if err := e.request(messages.SubjectProvidersCreate, fake, nil); !errors.Is(err, messages.ErrConflict) {
		t.Fatalf("an OAuth2 provider claiming an OIDC provider's issuer: %v, want conflict", err)
	}
	// callback_path is the broker's.
	if err := e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: "github", Patch: json.RawMessage(`{"callback_path":"/elsewhere"}`)}, nil); !errors.Is(err, messages.ErrInvalidRequest) {
		t.Fatalf("patching callback_path: %v", err)
	}
}

// TestAuthorizationServerMetadata: an OAuth 2.0 provider with an issuer that
// publishes RFC 8414 metadata gets its iss flag (and missing endpoints)
// from it; metadata that names another issuer is refused; a 404 is no
// metadata at all.
func TestAuthorizationServerMetadata(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var issuer string
	wrongIssuer := false
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/oauth-authorization-server" {
			http.NotFound(w, r)
			return
		}
		iss := issuer
		if wrongIssuer {
			iss = "https://someone.else.example"
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": iss, "authorization_endpoint": issuer + "/authorize", "token_endpoint": issuer + "/token",
			"authorization_response_iss_parameter_supported": true,
		})
	}))
	t.Cleanup(as.Close)
	issuer = as.URL
	p := messages.Provider{Name: "as", Type: messages.ProviderOAuth2, Issuer: issuer, ClientID: "c", ClientSecret: "s"}
	got := e.create(p)
	if !got.IssParameterSupported || got.AuthorizationEndpoint != issuer+"/authorize" || got.TokenEndpoint != issuer+"/token" {
		t.Fatalf("from the metadata: %+v", got)
	}
	wrongIssuer = true
	p.Name = "as-2"
	if err := e.request(messages.SubjectProvidersCreate, p, nil); !errors.Is(err, messages.ErrInvalidRequest) {
		t.Fatalf("metadata naming another issuer: %v", err)
	}
	// An operator may turn the flag off; the server cannot.
	var upd messages.Provider
	if err := e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: "as",
		Patch: json.RawMessage(`{"authorization_response_iss_parameter_supported":false}`)}, &upd); err != nil || upd.IssParameterSupported {
		t.Fatalf("an operator turning the iss flag off: %+v %v", upd, err)
	}
}
