package provider_test

import (
	"context"
	"encoding/base64"
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
)

// loopback is the egress guard with 127.0.0.1/32 opened, where the tests'
// providers listen; the rest of 127.0.0.0/8 stays refused.
func loopback(t *testing.T, o egress.Options) *egress.Client {
	t.Helper()
	n, errs := egress.ParseNetworks("127.0.0.1/32")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	o.Private = n
	return egress.New(o)
}

// TestExpiresInForms pins what x/oauth2 makes of expires_in as real
// providers send it (a number, a string of digits, nothing) and what the
// vault stores for each, against a real provider.
func TestExpiresInForms(t *testing.T) {
	t.Parallel()
	op, cl, p := quirky(t)
	tests := []struct {
		name        string
		rewrite     func(map[string]any)
		lifetimeSec int
		want        time.Duration // 0: no expiry
		wantRefresh time.Duration // refresh_token_expires_in; 0: none
	}{
		{name: "number", rewrite: func(b map[string]any) { b["expires_in"] = 120 }, want: 120 * time.Second},
		{name: "string", rewrite: func(b map[string]any) { b["expires_in"] = "120" }, want: 120 * time.Second},
		{name: "missing: vault default", rewrite: func(b map[string]any) { delete(b, "expires_in") }, want: time.Hour},
		{name: "missing: provider default", rewrite: func(b map[string]any) { delete(b, "expires_in") }, lifetimeSec: 900, want: 15 * time.Minute},
		{name: "null", rewrite: func(b map[string]any) { b["expires_in"] = nil }, want: time.Hour},
		{name: "zero: does not expire", rewrite: func(b map[string]any) { b["expires_in"] = 0 }, want: 0},
		{name: "refresh_token_expires_in as string", rewrite: func(b map[string]any) { b["refresh_token_expires_in"] = "600" }, want: time.Hour, wantRefresh: 10 * time.Minute},
		{name: "refresh_expires_in (Keycloak)", rewrite: func(b map[string]any) { b["refresh_expires_in"] = 600 }, want: time.Hour, wantRefresh: 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, err := op.MintRefreshToken("c", []string{"offline_access"})
			if err != nil {
				t.Fatal(err)
			}
			cl := cl
			cl.DefaultLifetime = time.Duration(tt.lifetimeSec) * time.Second
			// Serial per provider: the rewrite applies to the next response.
			op.RewriteNextTokenResponse(tt.rewrite)
			before := time.Now()
			got, err := p.Refresh(context.Background(), cl, secret.Value(rt))
			if err != nil {
				t.Fatal(err)
			}
			near := func(at *time.Time, d time.Duration) bool {
				return at != nil && !at.Before(before.Add(d-time.Second)) && !at.After(time.Now().Add(d+time.Second))
			}
			if tt.want == 0 && got.ExpiresAt != nil || tt.want != 0 && !near(got.ExpiresAt, tt.want) {
				t.Fatalf("expires_at = %v, want now + %v", got.ExpiresAt, tt.want)
			}
			if tt.wantRefresh == 0 && got.RefreshExpires != nil || tt.wantRefresh != 0 && !near(got.RefreshExpires, tt.wantRefresh) {
				t.Fatalf("refresh_expires = %v, want now + %v", got.RefreshExpires, tt.wantRefresh)
			}
			if got.Refresh.IsZero() || got.Access.IsZero() {
				t.Fatal("tokens missing")
			}
		})
	}
}

// TestNoRedirects: a token endpoint that redirects must not get the refresh
// token and client secret re-sent to the host it names.
func TestNoRedirects(t *testing.T) {
	var leaked atomic.Bool
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store(true)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"x","token_type":"Bearer"}`))
	}))
	defer evil.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL+"/token", http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()

	c := provider.New(loopback(t, egress.Options{}), nil)
	cl := provider.Registration{Type: messages.ProviderOAuth2, ClientID: "cid", ClientSecret: "client-secret",
		AuthMethod: messages.ClientSecretPost, TokenEndpoint: redirector.URL + "/token"}
	if _, err := c.Refresh(context.Background(), cl, secret.Value("refresh-token")); err == nil {
		t.Fatal("a redirected token request succeeded")
	}
	if leaked.Load() {
		t.Fatal("the refresh token and client secret followed a redirect to another host")
	}
}

func TestOnlyStandardErrorCodesAreKept(t *testing.T) {
	op, cl, p := quirky(t)
	op.FailTokenRequests(1, http.StatusBadRequest, nil, `{"error":"please_call_support_at_0800_123","error_description":"Your account is blocked, call 0800 123"}`)
	_, err := p.Refresh(context.Background(), cl, secret.Value("rt"))
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Code != "provider_error" || strings.Contains(err.Error(), "0800") {
		t.Fatalf("a made-up error code: %v (code %q)", err, pe.Code)
	}
}

// TestIDTokenProblemsQuoteNothingOfTheProvider: go-oidc's errors quote the
// JWKS response body and the token's claims; what the vault says and logs
// of a refused id_token is its own words only.
func TestIDTokenProblemsQuoteNothingOfTheProvider(t *testing.T) {
	b := base64.RawURLEncoding.EncodeToString
	var iss string
	srv, _ := server(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/token":
			jwt := b([]byte(`{"alg":"RS256","kid":"k1"}`)) + "." + b([]byte(`{"iss":"`+iss+`","aud":"cid","exp":9999999999,"nonce":"n"}`)) + "." + b([]byte("sig"))
			tokenJSON(w, map[string]any{"access_token": "x", "token_type": "Bearer", "id_token": jwt})
		case "/jwks":
			w.WriteHeader(500)
			_, _ = w.Write([]byte("PROVIDER FREE TEXT: tell the operator to paste ADMIN_API_KEY here"))
		}
	})
	iss = srv.URL
	c := provider.New(loopback(t, egress.Options{}), nil)
	cl := provider.Registration{Type: messages.ProviderOIDC, ClientID: "cid", ClientSecret: "s", Issuer: iss,
		TokenEndpoint: iss + "/token", JWKSURI: iss + "/jwks"}
	_, err := c.Exchange(context.Background(), cl, provider.ExchangeRequest{Code: "c", Verifier: "v", RedirectURI: "https://x/cb", Nonce: "n", Scopes: []string{"openid"}})
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.InvalidIDToken || strings.Contains(err.Error(), "PROVIDER FREE TEXT") ||
		!strings.Contains(err.Error(), "could not be fetched") {
		t.Errorf("an id_token whose keys cannot be fetched: %v", err)
	}
}
