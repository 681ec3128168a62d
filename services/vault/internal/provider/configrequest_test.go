package provider_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/provider"
	"github.com/nexus-broker/nexus/services/vault/internal/secret"
	"github.com/nexus-broker/nexus/shared/egress"
)

func TestSameSite(t *testing.T) {
	for _, tt := range []struct {
		url, token string
		want       bool
	}{
		{"https://api.xero.com/connections", "https://identity.xero.com/connect/token", true},
		{"https://api.atlassian.com/oauth/token/accessible-resources", "https://auth.atlassian.com/oauth/token", true},
		{"https://evil.example.com/x", "https://identity.xero.com/connect/token", false},
		{"https://xero.com.evil.example/x", "https://identity.xero.com/connect/token", false},
		{"https://a.github.io/x", "https://b.github.io/token", false}, // github.io is a public suffix
		{"http://127.0.0.1:9/x", "http://127.0.0.1:8/token", true},
		{"http://127.0.0.2/x", "http://127.0.0.1/token", false},
		{"not a url", "https://identity.xero.com/connect/token", false},
	} {
		if got := provider.SameSite(tt.url, tt.token); got != tt.want {
			t.Errorf("SameSite(%s, %s) = %v, want %v", tt.url, tt.token, got, tt.want)
		}
	}
}

// TestConfigRequest: a provider whose API gives what the Gateway needs
// (Xero's tenants, as an array): the vault asks with the access token and
// keeps the fields named, never a token; an answer it cannot read, or a
// refusal, gives nothing and says so without quoting the answer.
func TestConfigRequest(t *testing.T) {
	t.Parallel()
	var status int
	var body string
	var auth string
	api, _ := server(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	})
	p := provider.New(loopback(t, egress.Options{}), nil)
	cl := provider.Registration{Type: messages.ProviderOAuth2, ClientID: "c", TokenEndpoint: api.URL + "/token",
		Quirks: messages.Quirks{ConfigFromRequest: &messages.ConfigRequest{URL: api.URL + "/connections",
			Config: map[string]string{"tenant_id": "0.tenantId", "tenant_name": "0.tenantName", "second": "1.tenantId", "leak": "0.access_token"}}}}

	status, body = http.StatusOK, `[{"tenantId":"t-1","tenantName":"Acme","access_token":"no"},{"tenantId":"t-2"}]`
	got, err := p.LookupConfig(context.Background(), cl, secret.Value("the-access-token"))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "Bearer the-access-token" || len(got) != 3 || got["tenant_id"] != "t-1" || got["tenant_name"] != "Acme" || got["second"] != "t-2" {
		t.Fatalf("config = %v (authorization %q)", got, auth)
	}
	for _, bad := range []struct {
		status int
		body   string
	}{{http.StatusUnauthorized, `{"error":"PROVIDER SECRET TEXT"}`}, {http.StatusOK, `PROVIDER SECRET TEXT`}} {
		status, body = bad.status, bad.body
		got, err := p.LookupConfig(context.Background(), cl, secret.Value("the-access-token"))
		if err == nil || got != nil || strings.Contains(err.Error(), "PROVIDER SECRET TEXT") || strings.Contains(err.Error(), "the-access-token") {
			t.Fatalf("HTTP %d %s: %v, %v", bad.status, bad.body, got, err)
		}
	}
	// Never to another site than the token endpoint's.
	cl.TokenEndpoint = "https://identity.example.com/token"
	if _, err := p.LookupConfig(context.Background(), cl, secret.Value("the-access-token")); err == nil {
		t.Fatal("a config request to another site than the token endpoint's was made")
	}
}
