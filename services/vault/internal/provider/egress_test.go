package provider_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/provider"
	"github.com/nexus-broker/nexus/services/vault/internal/secret"
	"github.com/nexus-broker/nexus/shared/egress"
	"github.com/nexus-broker/nexus/shared/testkit"
)

// server runs h on addr and counts the connections it accepts.
func server(t *testing.T, addr string, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	return testkit.HTTPServer(t, addr, h)
}

func tokenJSON(w http.ResponseWriter, body map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

// TestEgressRefusal: a token or revocation endpoint at an address the
// guard refuses never gets the refresh token or the client secret; the
// error names the host and what to change, and is not a retryable one.
func TestEgressRefusal(t *testing.T) {
	internal, conns := server(t, "127.0.0.2:0", func(w http.ResponseWriter, r *http.Request) {
		tokenJSON(w, map[string]any{"access_token": "x", "token_type": "Bearer"})
	})
	c := provider.New(loopback(t, egress.Options{}), nil)
	cl := provider.Registration{Type: messages.ProviderOAuth2, ClientID: "cid", ClientSecret: "client-secret",
		TokenEndpoint: internal.URL + "/token", RevocationEndpoint: internal.URL + "/revoke"}
	_, err := c.Refresh(context.Background(), cl, secret.Value("refresh-token"))
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.Rejected || !errors.Is(err, egress.ErrRefused) {
		t.Fatalf("refresh: %v, want a rejection by the guard", err)
	}
	if want := "provider token endpoint: 127.0.0.2 is a loopback address; add its network to PROVIDER_PRIVATE_NETWORKS to allow it"; err.Error() != want {
		t.Errorf("refresh: %q\nwant %q", err, want)
	}
	err = c.Revoke(context.Background(), cl, secret.Value("refresh-token"), "refresh_token")
	if !errors.As(err, &pe) || pe.Kind != provider.Rejected || !strings.Contains(err.Error(), "provider revocation endpoint: 127.0.0.2 is a loopback address") {
		t.Fatalf("revoke: %v", err)
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("the refused endpoint saw %d connection(s)", n)
	}
}

// TestOversizedResponses: a token response or a JWKS past the cap is
// refused, not read in part.
func TestOversizedResponses(t *testing.T) {
	pad := strings.Repeat("x", 64<<10)
	var srv *httptest.Server
	srv, _ = server(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/token-huge":
			tokenJSON(w, map[string]any{"access_token": "x", "token_type": "Bearer", "padding": pad})
		case "/token-idt":
			tokenJSON(w, map[string]any{"access_token": "x", "token_type": "Bearer", "id_token": fakeIDToken(srv.URL, "cid")})
		case "/jwks":
			_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{}, "padding": pad})
		}
	})
	c := provider.New(loopback(t, egress.Options{MaxBody: 16 << 10}), nil)
	cl := provider.Registration{Type: messages.ProviderOAuth2, ClientID: "cid", ClientSecret: "s", TokenEndpoint: srv.URL + "/token-huge"}
	_, err := c.Refresh(context.Background(), cl, secret.Value("rt"))
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.Rejected || !strings.Contains(err.Error(), "larger than the broker reads") {
		t.Errorf("huge token response: %v", err)
	}

	oidc := provider.Registration{Type: messages.ProviderOIDC, ClientID: "cid", ClientSecret: "s", Issuer: srv.URL,
		TokenEndpoint: srv.URL + "/token-idt", JWKSURI: srv.URL + "/jwks"}
	_, err = c.Exchange(context.Background(), oidc, provider.ExchangeRequest{Code: "code", Verifier: "v", RedirectURI: "http://127.0.0.1:1/cb", Nonce: "n", Scopes: []string{"openid"}})
	if !errors.As(err, &pe) || pe.Kind != provider.InvalidIDToken || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("huge JWKS: %v", err)
	}
}

// fakeIDToken is a JWT with valid claims and a signature that does not
// matter: verifying it needs the JWKS first.
func fakeIDToken(iss, aud string) string {
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	now := time.Now().Unix()
	return enc(map[string]any{"alg": "RS256", "kid": "k1", "typ": "JWT"}) + "." +
		enc(map[string]any{"iss": iss, "aud": aud, "sub": "u", "exp": now + 300, "iat": now, "nonce": "n"}) + "." +
		base64.RawURLEncoding.EncodeToString(make([]byte, 256))
}

// TestHangingEndpoint: a token endpoint that never answers costs the
// timeout, and is transient (retried later).
func TestHangingEndpoint(t *testing.T) {
	stop := make(chan struct{})
	srv, _ := server(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	})
	defer close(stop)
	c := provider.New(loopback(t, egress.Options{Timeout: 300 * time.Millisecond}), nil)
	start := time.Now()
	_, err := c.Refresh(context.Background(), provider.Registration{Type: messages.ProviderOAuth2, ClientID: "c", ClientSecret: "s",
		TokenEndpoint: srv.URL + "/token"}, secret.Value("rt"))
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.Transient {
		t.Errorf("err = %v, want transient", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %v", d)
	}
}
