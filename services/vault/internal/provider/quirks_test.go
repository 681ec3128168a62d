package provider_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/provider"
	"github.com/nexus-broker/nexus/services/vault/internal/secret"
	"github.com/nexus-broker/nexus/shared/egress"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// quirky is a real provider (fosite) and a registration of one client at it.
func quirky(t *testing.T) (*oidcprovider.Server, provider.Registration, *provider.Client) {
	t.Helper()
	op, err := oidcprovider.New(oidcprovider.Options{AlwaysIssueRefreshToken: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Close)
	if err := op.AddClient(oidcprovider.Client{ID: "c", Secret: "s", RedirectURIs: []string{"http://127.0.0.1:1/cb"}}); err != nil {
		t.Fatal(err)
	}
	cl := provider.Registration{Type: messages.ProviderOAuth2, ClientID: "c", ClientSecret: "s", TokenEndpoint: op.Issuer() + "/token"}
	return op, cl, provider.New(loopback(t, egress.Options{}), nil)
}

// TestTokenResponseQuirks: responses as real providers shape them, each
// read as the registration's quirks say, against a real provider whose
// answers are rewritten to that shape.
func TestTokenResponseQuirks(t *testing.T) {
	t.Parallel()
	op, base, p := quirky(t)
	tests := []struct {
		name    string
		quirks  messages.Quirks
		rewrite func(map[string]any) // nil: the provider's own response
		form    bool
		check   func(t *testing.T, got provider.Tokens, issuedAccess string)
	}{
		{
			name:    "expires_in in milliseconds",
			quirks:  messages.Quirks{ExpiresInUnit: "ms"},
			rewrite: func(b map[string]any) { b["expires_in"] = 1_800_000 },
			check:   expiresIn(30 * time.Minute),
		},
		{
			name:    "expires_in in milliseconds, as a string",
			quirks:  messages.Quirks{ExpiresInUnit: "ms"},
			rewrite: func(b map[string]any) { b["expires_in"] = "120000" },
			check:   expiresIn(2 * time.Minute),
		},
		{
			name:    "expires_in 0: the provider says it does not expire",
			rewrite: func(b map[string]any) { b["expires_in"] = 0 },
			check:   expiresIn(0),
		},
		{
			name:    "expires_in absent: the default lifetime",
			rewrite: func(b map[string]any) { delete(b, "expires_in") },
			check:   expiresIn(time.Hour),
		},
		{
			name:    "expires_in unreadable: as if absent",
			rewrite: func(b map[string]any) { b["expires_in"] = "soon" },
			check:   expiresIn(time.Hour),
		},
		{
			name:    "expires_in hostile: bounded",
			rewrite: func(b map[string]any) { b["expires_in"] = 1e300 },
			check: func(t *testing.T, got provider.Tokens, _ string) {
				if got.ExpiresAt == nil || got.ExpiresAt.Before(time.Now().Add(9*365*24*time.Hour)) || got.ExpiresAt.After(time.Now().Add(11*365*24*time.Hour)) {
					t.Fatalf("expires_at = %v, want about ten years ahead", got.ExpiresAt)
				}
			},
		},
		{
			name:   "tokens under another path (Slack user token)",
			quirks: messages.Quirks{TokenPath: "authed_user", ConfigFromToken: map[string]string{"team_id": "team.id", "user_id": "authed_user.id"}},
			rewrite: func(b map[string]any) {
				user := map[string]any{"id": "U123", "access_token": b["access_token"], "refresh_token": b["refresh_token"], "expires_in": 43200, "scope": "chat:write,users:read", "token_type": "user"}
				for _, k := range []string{"access_token", "refresh_token", "expires_in", "scope"} {
					delete(b, k)
				}
				b["ok"] = true
				b["access_token"] = "xoxb-bot-token-not-this-one"
				b["team"] = map[string]any{"id": "T9"}
				b["authed_user"] = user
			},
			check: func(t *testing.T, got provider.Tokens, issued string) {
				if got.Access.Reveal() != issued || got.Refresh.IsZero() {
					t.Fatalf("access token = %q..., want the user's (nested) one", got.Access.Reveal()[:8])
				}
				expiresIn(12*time.Hour)(t, got, issued)
				if strings.Join(got.Scopes, " ") != "chat:write users:read" {
					t.Fatalf("scopes = %q", got.Scopes)
				}
				if got.Config["team_id"] != "T9" || got.Config["user_id"] != "U123" || len(got.Config) != 2 {
					t.Fatalf("config = %v", got.Config)
				}
			},
		},
		{
			name:    "config from the token response (Salesforce instance_url), never a token",
			quirks:  messages.Quirks{ConfigFromToken: map[string]string{"instance_url": "instance_url", "leak": "refresh_token", "leak2": "client_secret"}},
			rewrite: func(b map[string]any) { b["instance_url"] = "https://acme.my.salesforce.com"; b["client_secret"] = "x" },
			check: func(t *testing.T, got provider.Tokens, _ string) {
				if got.Config["instance_url"] != "https://acme.my.salesforce.com" || len(got.Config) != 1 {
					t.Fatalf("config = %v", got.Config)
				}
			},
		},
		{
			// expires_in unlike the default lifetime, so it must come from the form.
			name:    "a form body (GitHub without JSON)",
			form:    true,
			rewrite: func(b map[string]any) { b["expires_in"] = 120 },
			check:   expiresIn(2 * time.Minute),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, err := op.MintRefreshToken("c", []string{"offline_access"})
			if err != nil {
				t.Fatal(err)
			}
			cl := base
			cl.Quirks = tt.quirks
			if tt.rewrite != nil {
				op.RewriteNextTokenResponse(tt.rewrite)
			}
			if tt.form {
				op.FormNextTokenResponse()
			}
			before := len(op.Issued().AccessTokens)
			got, err := p.Refresh(context.Background(), cl, secret.Value(rt))
			if err != nil {
				t.Fatal(err)
			}
			issued := op.Issued().AccessTokens
			if len(issued) != before+1 {
				t.Fatalf("issued %d access tokens, want 1", len(issued)-before)
			}
			tt.check(t, got, issued[len(issued)-1])
		})
	}
}

func expiresIn(d time.Duration) func(*testing.T, provider.Tokens, string) {
	return func(t *testing.T, got provider.Tokens, _ string) {
		t.Helper()
		if d == 0 {
			if got.ExpiresAt != nil {
				t.Fatalf("expires_at = %v, want none", got.ExpiresAt)
			}
			return
		}
		now := time.Now()
		if got.ExpiresAt == nil || got.ExpiresAt.Before(now.Add(d-5*time.Second)) || got.ExpiresAt.After(now.Add(d+time.Second)) {
			t.Fatalf("expires_at = %v, want now + %v", got.ExpiresAt, d)
		}
	}
}

// TestRefusalClasses: what each way a provider says no means, as the
// provider writes it (status, body), and with quirks that add codes.
func TestRefusalClasses(t *testing.T) {
	t.Parallel()
	op, base, p := quirky(t)
	slack := messages.Quirks{OKField: true, PermanentErrors: []string{"invalid_refresh_token", "token_revoked"}}
	tests := []struct {
		name    string
		quirks  messages.Quirks
		status  int
		header  http.Header
		body    string
		kind    provider.Kind
		code    string
		refusal bool
	}{
		{name: "invalid_grant", status: 400, body: `{"error":"invalid_grant"}`, kind: provider.Permanent, code: "invalid_grant", refusal: true},
		{name: "unauthorized_client", status: 400, body: `{"error":"unauthorized_client"}`, kind: provider.Permanent, code: "unauthorized_client", refusal: true},
		{name: "invalid_request (already claimed)", status: 400, body: `{"error":"invalid_request","error_description":"refresh token is invalid or has already been claimed"}`, kind: provider.Rejected, code: "invalid_request", refusal: true},
		{name: "invalid_client: the operator's", status: 401, body: `{"error":"invalid_client"}`, kind: provider.Misconfigured, code: "invalid_client", refusal: true},
		{name: "429", status: 429, header: http.Header{"Retry-After": {"7"}}, body: `{"error":"slow_down"}`, kind: provider.Transient, code: "provider_error"},
		{name: "503", status: 503, body: `<html>down</html>`, kind: provider.Transient},
		{name: "temporarily_unavailable on 400", status: 400, body: `{"error":"temporarily_unavailable"}`, kind: provider.Transient, code: "temporarily_unavailable", refusal: true},
		{name: "Slack ok:false, a permanent code of its template", quirks: slack, status: 200, body: `{"ok":false,"error":"invalid_refresh_token"}`, kind: provider.Permanent, code: "invalid_refresh_token", refusal: true},
		{name: "Slack ok:false, another code", quirks: slack, status: 200, body: `{"ok":false,"error":"invalid_arguments"}`, kind: provider.Rejected, code: "provider_error", refusal: true},
		{name: "Slack ok:false without the quirk: no access token", status: 200, body: `{"ok":false,"error":"invalid_refresh_token"}`, kind: provider.Rejected, code: "provider_error"},
		{name: "a quirk's code stays unknown to another provider", status: 400, body: `{"error":"invalid_refresh_token"}`, kind: provider.Rejected, code: "provider_error", refusal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := base
			cl.Quirks = tt.quirks
			op.FailTokenRequests(1, tt.status, tt.header, tt.body)
			_, err := p.Refresh(context.Background(), cl, secret.Value("rt"))
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *provider.Error", err)
			}
			if pe.Kind != tt.kind || pe.Code != tt.code || pe.Refusal() != tt.refusal {
				t.Fatalf("kind %d code %q refusal %v, want kind %d code %q refusal %v (%v)", pe.Kind, pe.Code, pe.Refusal(), tt.kind, tt.code, tt.refusal, err)
			}
			if strings.Contains(err.Error(), "claimed") {
				t.Fatalf("the provider's description reached the error: %v", err)
			}
		})
	}
}
