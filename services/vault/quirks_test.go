package vault_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
)

// TestQuirksEndToEnd: a provider whose tokens come under another path and
// who returns values the Gateway needs (an API host with the tokens, an
// account id on the callback), from consent through refresh to tokens.get.
func TestQuirksEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.putClient(e.registration("", &messages.Quirks{
		TokenPath:          "authed_user",
		ExpiresInUnit:      "ms",
		ConfigFromToken:    map[string]string{"instance_url": "instance_url", "team_id": "team.id"},
		ConfigFromCallback: map[string]string{"realm_id": "realmId"},
	}))
	// Slack's shape: the user's tokens nested, a bot token at the top, and
	// expires_in in milliseconds (the quirk says so).
	nest := func(instance string) func(map[string]any) {
		return func(b map[string]any) {
			user := map[string]any{}
			for _, k := range []string{"access_token", "refresh_token", "id_token", "scope", "token_type"} {
				if v, ok := b[k]; ok {
					user[k] = v
					delete(b, k)
				}
			}
			user["expires_in"] = 7_200_000
			b["access_token"] = "xoxb-the-bot-token"
			b["authed_user"] = user
			b["team"] = map[string]any{"id": "T42"}
			b["instance_url"] = instance
		}
	}
	c := e.create(workspace)
	a := e.authorize(c.Scopes)
	e.op.RewriteNextTokenResponse(nest("https://eu1.example.com"))
	var got messages.Connection
	e.mustCall(messages.SubjectVaultExchange, messages.VaultExchange{ConnectionID: c.ConnectionID, Code: a.code, CodeVerifier: a.verifier,
		RedirectURI: redirectURI, Nonce: a.nonce, CallbackParams: map[string]string{"realmId": "9130", "unasked": "dropped"}}, &got)
	if got.Status != messages.StatusActive {
		t.Fatalf("status = %s", got.Status)
	}
	want := map[string]string{"instance_url": "https://eu1.example.com", "team_id": "T42", "realm_id": "9130"}
	if !equalConfig(got.Config, want) || !equalConfig(e.get(c.ConnectionID).Config, want) {
		t.Fatalf("config = %v, want %v", got.Config, want)
	}
	cred, err := e.token(c.ConnectionID, nil)
	if err != nil {
		t.Fatal(err)
	}
	issued := e.op.Issued().AccessTokens
	if cred.AccessToken != issued[len(issued)-1] || cred.AccessToken == "xoxb-the-bot-token" || !equalConfig(cred.Config, want) {
		t.Fatalf("credential: user token %v, config %v", cred.AccessToken == issued[len(issued)-1], cred.Config)
	}
	// 7,200,000 ms: two hours.
	if cred.ExpiresAt == nil || cred.ExpiresAt.Before(time.Now().Add(119*time.Minute)) || cred.ExpiresAt.After(time.Now().Add(121*time.Minute)) {
		t.Fatalf("expires_at = %v, want two hours ahead", cred.ExpiresAt)
	}

	// A refresh in the same shape, with a new API host: the config follows.
	e.op.RewriteNextTokenResponse(nest("https://eu2.example.com"))
	if err := e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, &cred); err != nil {
		t.Fatal(err)
	}
	want["instance_url"] = "https://eu2.example.com"
	if !equalConfig(cred.Config, want) {
		t.Fatalf("config after refresh = %v", cred.Config)
	}
}

func equalConfig(got, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// TestKeepAliveRefresh: a provider that kills refresh tokens left unused
// has its connections refreshed every keep_alive_seconds, although their
// access tokens live far longer.
func TestKeepAliveRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.putClient(e.registration("", &messages.Quirks{KeepAliveSeconds: 3600}))
	e.op.RewriteNextTokenResponse(func(b map[string]any) { b["expires_in"] = 30 * 24 * 3600 })
	c := e.connect(workspace)
	near(t, "refresh due", e.schedule(c.ConnectionID).due, time.Now().Add(time.Hour), time.Minute)
}

// TestConfigFromRequest: values only the provider's API gives (here the
// real provider's userinfo, as Xero's connections or Atlassian's
// accessible resources) are read once after the consent with the new
// access token and kept as config. A request URL on another site than the
// token endpoint's is refused at registration: it would carry the token.
func TestConfigFromRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.putClient(e.registration("", &messages.Quirks{ConfigFromRequest: &messages.ConfigRequest{
		URL: e.op.Issuer() + "/userinfo", Config: map[string]string{"user_id": "sub"}}}))
	c := e.connect(workspace)
	if got := e.get(c.ConnectionID).Config; !equalConfig(got, map[string]string{"user_id": e.op.Subject()}) {
		t.Fatalf("config = %v, want the user's id %q", got, e.op.Subject())
	}
	err := e.call(messages.SubjectVaultClientsPut, e.registration("", &messages.Quirks{ConfigFromRequest: &messages.ConfigRequest{
		URL: "https://tokens.example.com/collect", Config: map[string]string{"x": "y"}}}), nil)
	wantCode(t, err, messages.ErrInvalidRequest)
	if !strings.Contains(err.Error(), "token endpoint's site") {
		t.Fatalf("error = %v", err)
	}
}
