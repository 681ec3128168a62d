package discovery_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nexus-broker/nexus/shared/discovery"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

func TestDiscoverRealProvider(t *testing.T) {
	op, err := oidcprovider.New(oidcprovider.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	doc, err := discovery.New(nil).Discover(context.Background(), op.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	if doc.Issuer != op.Issuer() || doc.TokenEndpoint != op.Issuer()+"/token" || doc.AuthorizationEndpoint != op.Issuer()+"/authorize" ||
		doc.JWKSURI != op.Issuer()+"/jwks" || doc.RevocationEndpoint != op.Issuer()+"/revoke" {
		t.Errorf("doc = %+v", doc)
	}
	// The issuer must match exactly: a trailing slash is another issuer.
	if _, err := discovery.New(nil).Discover(context.Background(), op.Issuer()+"/"); err == nil || !strings.Contains(err.Error(), "does not equal") {
		t.Errorf("trailing slash: %v", err)
	}
}

// Documents a real provider would not serve: each must fail with a reason.
func TestDiscoverRejects(t *testing.T) {
	var srv *httptest.Server
	docs := map[string]func(iss string) any{
		"/mismatch": func(string) any { return map[string]any{"issuer": "https://other.example.com"} },
		"/no-jwks": func(iss string) any {
			return map[string]any{"issuer": iss, "authorization_endpoint": iss + "/a", "token_endpoint": iss + "/t"}
		},
		"/no-s256":    func(iss string) any { return full(iss, []string{"plain"}) },
		"/empty-pkce": func(iss string) any { return full(iss, []string{}) },
		"/ok-no-pkce": func(iss string) any { return full(iss, nil) },
	}
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		iss := srv.URL + strings.TrimSuffix(r.URL.Path, "/.well-known/openid-configuration")
		switch p := strings.TrimPrefix(iss, srv.URL); p {
		case "/notjson":
			w.Write([]byte("<html>"))
		case "/redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		default:
			f, ok := docs[p]
			if !ok {
				http.NotFound(w, r)
				return
			}
			json.NewEncoder(w).Encode(f(iss))
		}
	}))
	defer srv.Close()
	tests := []struct{ path, want string }{
		{"/mismatch", `issuer "https://other.example.com" does not equal`},
		{"/no-jwks", "has no jwks_uri"},
		{"/no-s256", "does not include S256"},
		{"/empty-pkce", "does not include S256"},
		{"/notjson", "not valid JSON"},
		{"/redirect", "HTTP 302"},
		{"/missing", "HTTP 404"},
	}
	c := discovery.New(nil)
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			_, err := c.Discover(context.Background(), srv.URL+tc.path)
			var de *discovery.Error
			if !errors.As(err, &de) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want a discovery error mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := c.Discover(context.Background(), srv.URL+"/ok-no-pkce"); err != nil {
		t.Errorf("a document without code_challenge_methods_supported: %v", err)
	}
}

func full(iss string, methods []string) map[string]any {
	m := map[string]any{"issuer": iss, "authorization_endpoint": iss + "/a", "token_endpoint": iss + "/t", "jwks_uri": iss + "/k"}
	if methods != nil {
		m["code_challenge_methods_supported"] = methods
	}
	return m
}

func TestMetadataURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://as.example.com":          "https://as.example.com/.well-known/oauth-authorization-server",
		"https://as.example.com/":         "https://as.example.com/.well-known/oauth-authorization-server",
		"https://as.example.com/tenant/1": "https://as.example.com/.well-known/oauth-authorization-server/tenant/1",
	} {
		if got := discovery.MetadataURL(in); got != want {
			t.Errorf("MetadataURL(%q) = %q, want %q", in, got, want)
		}
	}
}
