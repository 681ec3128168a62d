package vault_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

func TestExchangeSealsTokens(t *testing.T) {
	t.Parallel()
	for _, method := range []string{messages.ClientSecretBasic, messages.ClientSecretPost} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{authMethod: method})
			c := e.create(workspace)
			if c.Status != messages.StatusPending || c.Provider != "test-provider" || c.ProviderID != providerID {
				t.Fatalf("created = %+v", c)
			}
			got, err := e.exchange(c.ConnectionID, e.authorize(c.Scopes))
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != messages.StatusActive || got.ExpiresAt == nil || !slices.Contains(got.Scopes, "openid") {
				t.Fatalf("exchanged = %+v", got)
			}
			cred, err := e.token(c.ConnectionID, nil)
			if err != nil {
				t.Fatal(err)
			}
			rt := e.storedRefreshToken(c.ConnectionID)
			if cred.AccessToken == "" || rt == "" {
				t.Fatalf("access %q refresh set %v", cred.AccessToken, rt != "")
			}
			row := e.rawRow(c.ConnectionID)
			for name, secret := range map[string]string{"access token": cred.AccessToken, "refresh token": rt, "client secret": secret} {
				if strings.Contains(row, secret) {
					t.Fatalf("the %s appears in plaintext in the row: %s", name, row)
				}
			}
			if got := eventTypes(e.events(c.ConnectionID)); !slices.Equal(got, []string{"created", "active"}) {
				t.Fatalf("events = %v", got)
			}
			ev := e.events(c.ConnectionID)[1]
			if ev.ConnectionID != c.ConnectionID || ev.WorkspaceID != workspace || ev.Provider != "test-provider" || ev.ID == "" || ev.Type != "nexus.connection.active.v1" {
				t.Fatalf("event = %+v", ev)
			}
		})
	}
}

func TestExchangeFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		arrange    func(e *env, a *authorization)
		wantErr    *messages.Error
		wantReason string
	}{
		{name: "wrong nonce", arrange: func(e *env, a *authorization) {
			e.op.MutateNextIDToken(func(c map[string]any) { c["nonce"] = "another-nonce-value" })
		}, wantErr: messages.ErrProviderError, wantReason: "invalid_id_token"},
		{name: "nonce not what the vault was told", arrange: func(e *env, a *authorization) {
			a.nonce = "some-other-nonce"
		}, wantErr: messages.ErrProviderError, wantReason: "invalid_id_token"},
		{name: "wrong audience", arrange: func(e *env, a *authorization) {
			e.op.MutateNextIDToken(func(c map[string]any) { c["aud"] = []string{"someone-else"} })
		}, wantErr: messages.ErrProviderError, wantReason: "invalid_id_token"},
		{name: "wrong issuer", arrange: func(e *env, a *authorization) {
			e.op.MutateNextIDToken(func(c map[string]any) { c["iss"] = "https://evil.example" })
		}, wantErr: messages.ErrProviderError, wantReason: "invalid_id_token"},
		{name: "expired id_token", arrange: func(e *env, a *authorization) {
			e.op.MutateNextIDToken(func(c map[string]any) { c["exp"] = float64(1000) })
		}, wantErr: messages.ErrProviderError, wantReason: "invalid_id_token"},
		{name: "foreign signature", arrange: func(e *env, a *authorization) {
			e.op.SignNextIDTokenWithForeignKey()
		}, wantErr: messages.ErrProviderError, wantReason: "invalid_id_token"},
		{name: "token endpoint error", arrange: func(e *env, a *authorization) {
			e.op.FailTokenRequests(1, 400, nil, `{"error":"invalid_grant","error_description":"code reused"}`)
		}, wantErr: messages.ErrProviderError, wantReason: "invalid_grant"},
		{name: "wrong verifier", arrange: func(e *env, a *authorization) {
			a.verifier = a.verifier[:len(a.verifier)-4] + "AAAA"
		}, wantErr: messages.ErrProviderError, wantReason: "invalid_grant"},
		{name: "provider down", arrange: func(e *env, a *authorization) {
			e.op.FailTokenRequests(1, 503, nil, "")
		}, wantErr: messages.ErrUnavailable, wantReason: "provider_unavailable"},
	}
	e := newEnv(t, envOptions{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.create(workspace)
			a := e.authorize(c.Scopes)
			tt.arrange(e, &a)
			_, err := e.exchange(c.ConnectionID, a)
			wantCode(t, err, tt.wantErr)
			if strings.Contains(err.Error(), a.code) || strings.Contains(err.Error(), secret) {
				t.Fatalf("error leaks a secret: %v", err)
			}
			if tt.wantReason == "invalid_grant" && !strings.Contains(err.Error(), "invalid_grant") {
				t.Fatalf("error %q does not name the provider's error code", err)
			}
			got := e.get(c.ConnectionID)
			if got.Status != messages.StatusFailed {
				t.Fatalf("status = %s, want failed", got.Status)
			}
			evs := e.events(c.ConnectionID)
			last := evs[len(evs)-1]
			if last.Type != messages.EventFailed.FullType() || last.Reason == nil || last.Reason.Code != tt.wantReason {
				t.Fatalf("last event = %+v, want failed with reason %s", last, tt.wantReason)
			}
			if n := strings.Count(e.rawRow(c.ConnectionID), `"access_token":null`); n != 1 {
				t.Fatalf("a failed exchange stored tokens: %s", e.rawRow(c.ConnectionID))
			}
		})
	}
}

func TestExchangeWithoutIDTokenWhenOpenIDRequestedFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.create(workspace)
	a := e.authorize(c.Scopes)
	// Remove the id_token from the response: a provider that claims OIDC
	// but sends none is refused.
	e.op.FailTokenRequests(1, 200, nil, `{"access_token":"at-123","token_type":"bearer","expires_in":"3600","refresh_token":"rt-123"}`)
	_, err := e.exchange(c.ConnectionID, a)
	wantCode(t, err, messages.ErrProviderError)
	if got := e.get(c.ConnectionID); got.Status != messages.StatusFailed {
		t.Fatalf("status = %s", got.Status)
	}
}

func TestExchangeOAuth2ExpiresInStringAndScope(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.putClient(messages.VaultClient{ProviderID: "plain", ProviderName: "plain-oauth2", Type: messages.ProviderOAuth2, ClientID: clientID, ClientSecret: secret,
		TokenEndpoint: e.op.Issuer() + "/token"})
	var c messages.Connection
	e.mustCall(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ProviderID: "plain", WorkspaceID: workspace, Scopes: []string{"repo"}}, &c)
	e.op.FailTokenRequests(1, 200, nil, `{"access_token":"at-123","token_type":"bearer","expires_in":"3600","refresh_token":"rt-123","scope":"repo,user"}`)
	got, err := e.exchange(c.ConnectionID, authorization{code: "x", verifier: "y", nonce: ""})
	if err != nil {
		t.Fatal(err)
	}
	if got.ExpiresAt == nil || !slices.Equal(got.Scopes, []string{"repo", "user"}) {
		t.Fatalf("got %+v", got)
	}
	cred, err := e.token(c.ConnectionID, intp(0))
	if err != nil || cred.AccessToken != "at-123" || cred.TokenType != "Bearer" {
		t.Fatalf("cred %+v err %v", cred, err)
	}
	// No expiry at all: never refreshed.
	var c2 messages.Connection
	e.mustCall(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ProviderID: "plain", WorkspaceID: workspace, Scopes: []string{"repo"}}, &c2)
	e.op.FailTokenRequests(1, 200, nil, `{"access_token":"at-456","token_type":"bearer"}`)
	got, err = e.exchange(c2.ConnectionID, authorization{code: "x", verifier: "y"})
	if err != nil || got.ExpiresAt != nil || !slices.Equal(got.Scopes, []string{"repo"}) {
		t.Fatalf("got %+v err %v", got, err)
	}
	if cred, err := e.token(c2.ConnectionID, intp(3600)); err != nil || cred.AccessToken != "at-456" || cred.ExpiresAt != nil {
		t.Fatalf("cred %+v err %v", cred, err)
	}
	_ = oidcprovider.TokenHash
}
