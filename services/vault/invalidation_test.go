package vault_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
)

// TestEveryStateChangeInvalidates: every change to what tokens.get serves
// empties the caches of every replica, from the store's commit, whatever
// handler made it. The test listens where other replicas do (the database's
// change channel) and checks this replica serves the new state at once.
func TestEveryStateChangeInvalidates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	listener, err := pgx.Connect(context.Background(), e.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = listener.Close(context.Background()) })
	if _, err := listener.Exec(context.Background(), "listen "+store.ChangesChannel); err != nil {
		t.Fatal(err)
	}
	next := func(d time.Duration) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		n, err := listener.WaitForNotification(ctx)
		if err != nil {
			return "", err
		}
		return n.Payload, nil
	}
	expect := func(what, body string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, err := next(time.Until(deadline))
			if err != nil {
				t.Fatalf("%s: no invalidation of %q: %v", what, body, err)
			}
			if got == body {
				return
			}
		}
	}
	none := func(what string) {
		t.Helper()
		if got, err := next(200 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: unexpected invalidation %q (%v)", what, got, err)
		}
	}
	cached := func(id string) messages.Credential {
		t.Helper()
		cr, err := e.token(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		return cr
	}

	c := e.create("ws-inv")
	id := c.ConnectionID
	none("created") // a new connection is in no cache
	a := e.authorize(c.Scopes)
	if _, err := e.exchange(id, a); err != nil {
		t.Fatal(err)
	}
	expect("activate", id)
	first := cached(id)

	var refreshed messages.Credential
	e.mustCall(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: id}, &refreshed)
	expect("refresh", id)
	if got := cached(id); got.AccessToken == first.AccessToken || got.AccessToken != refreshed.AccessToken {
		t.Fatal("tokens.get served the token from before the refresh")
	}

	// Re-consent: re-opening, then the new tokens.
	var reopened messages.Connection
	e.mustCall(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ConnectionID: id, ProviderID: providerID, WorkspaceID: "ws-inv", Scopes: c.Scopes}, &reopened)
	expect("re-open for consent", id)
	if _, err := e.exchange(id, e.authorize(c.Scopes)); err != nil {
		t.Fatal(err)
	}
	expect("re-consent", id)
	if got := cached(id); got.AccessToken == refreshed.AccessToken {
		t.Fatal("tokens.get served the token from before the re-consent")
	}

	// Attention: the provider forgets the grant; a forced refresh finds out.
	e.op.RevokeAllGrants()
	err = e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: id}, nil)
	wantCode(t, err, messages.ErrAttentionRequired)
	expect("attention_required", id)
	_, err = e.token(id, nil)
	wantCode(t, err, messages.ErrAttentionRequired)

	// Revocation.
	live := e.connect("ws-inv")
	expect("activate", live.ConnectionID)
	cached(live.ConnectionID)
	e.mustCall(messages.SubjectConnectionsRevoke, messages.ConnectionRef{ConnectionID: live.ConnectionID}, nil)
	expect("revoke", live.ConnectionID)
	_, err = e.token(live.ConnectionID, nil)
	wantCode(t, err, messages.ErrNotActive)

	// A failed consent.
	pending := e.create("ws-inv")
	e.mustCall(messages.SubjectVaultConnectionsFail, messages.VaultFailConnection{ConnectionID: pending.ConnectionID, Reason: messages.Reason{Code: "access_denied"}}, nil)
	expect("fail", pending.ConnectionID)

	// Static credentials, and a change of the provider's registration.
	e.putClient(apiKeyClient("prov-static", "static-provider"))
	expect("provider registered", "provider:prov-static")
	s := e.connectStatic("prov-static", map[string]any{"api_key": "sk-first-key-1"})
	expect("static store", s.ConnectionID)
	cached(s.ConnectionID)
	if _, err := e.storeStatic(s.ConnectionID, map[string]any{"api_key": "sk-second-key-2"}); err != nil {
		t.Fatal(err)
	}
	expect("static re-consent", s.ConnectionID)
	if got := cached(s.ConnectionID); got.Credentials["api_key"] != "sk-second-key-2" {
		t.Fatalf("tokens.get served %v after new credentials", got.Credentials)
	}
	e.putClient(apiKeyClient("prov-static", "renamed-provider"))
	expect("provider changed", "provider:prov-static")
	if got := cached(s.ConnectionID); got.Provider != "renamed-provider" {
		t.Fatalf("tokens.get served provider %q after a rename", got.Provider)
	}
}
