package vault

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/secret"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/services/vault/internal/store/storetest"
	"github.com/nexus-broker/nexus/shared/logging"
)

// clockedStore is a store on a fresh database whose clock is *now, with an
// OAuth2 provider "p" and a static provider "s" registered.
func clockedStore(t *testing.T, now *time.Time) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	st, pool := storetest.Open(t, store.Options{Now: func() time.Time { return *now }})
	for _, c := range []store.Client{
		{ProviderID: "p", ProviderName: "p", Type: messages.ProviderOAuth2, ClientID: "c", TokenEndpoint: "https://p.example/token"},
		{ProviderID: "s", ProviderName: "s", Type: messages.ProviderStatic, CredentialSchema: json.RawMessage(`{"type":"object"}`),
			Strategy: &messages.Strategy{Type: messages.StrategyHeader, Config: map[string]any{"header": "X-Key"}}},
	} {
		if _, err := st.PutClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	return st, pool
}

// TestHousekeepPrunesEndedConnections: failed, expired and revoked
// connections, their secrets long wiped, stay for the retention and are
// deleted with their events after it; one whose event is not yet published
// waits for it; active, pending and attention_required connections stay
// whatever their age.
func TestHousekeepPrunesEndedConnections(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	st, pool := clockedStore(t, &clock)
	// Shorter than a published event's day in the outbox: the prune itself
	// takes the events with the connection.
	const retention = 2 * time.Hour
	pass := func() { housekeep(ctx, st, clock, retention, logging.Discard()) }

	create := func(provider string) string {
		t.Helper()
		c, err := st.CreateConnection(ctx, store.NewConnection{ProviderID: provider, WorkspaceID: "w"})
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	change := func(id string, fn func(ctx context.Context, l *store.Locked) error) {
		t.Helper()
		if _, err := st.WithLock(ctx, id, fn); err != nil {
			t.Fatal(err)
		}
	}
	tokens := store.Tokens{Access: "at-secret", Refresh: "rt-secret", TokenType: "Bearer"}
	activate := func(ctx context.Context, l *store.Locked) error { return l.Activate(ctx, tokens) }
	revoke := func(ctx context.Context, l *store.Locked) error { return l.Revoke(ctx) }

	active, attention, revoked, revokedStatic, failed, expired, waiting := create("p"), create("p"), create("p"), create("s"), create("p"), create("p"), create("p")
	change(active, activate)
	change(attention, activate)
	change(attention, func(ctx context.Context, l *store.Locked) error {
		return l.RequireAttention(ctx, messages.Reason{Code: "invalid_grant"})
	})
	change(revoked, activate)
	change(revokedStatic, func(ctx context.Context, l *store.Locked) error {
		return l.StoreStatic(ctx, secret.Value(`{"key":"static-secret"}`), "h")
	})
	change(waiting, activate)

	// An hour and more later every step has happened: the consent never
	// finished is expired by the pass, the others end now.
	clock = clock.Add(store.PendingLifetime + time.Second)
	pass()
	change(revoked, revoke)
	change(revokedStatic, revoke)
	change(failed, func(ctx context.Context, l *store.Locked) error {
		return l.Fail(ctx, messages.Reason{Code: "access_denied"})
	})
	// Every event is published but the revocation of waiting.
	change(waiting, revoke)
	evs, _, err := st.ClaimOutbox(ctx, "relay", 1000, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	var held string
	for _, ev := range evs {
		if ev.ConnectionID == waiting && ev.Type == messages.EventRevoked.FullType() {
			held = ev.ID
			continue
		}
		ids = append(ids, ev.ID)
	}
	if _, err := st.AckOutbox(ctx, ids); err != nil || held == "" {
		t.Fatalf("ack: %v (held %q)", err, held)
	}

	ended := map[string]string{"revoked": revoked, "revoked static": revokedStatic, "failed": failed, "expired": expired, "waiting": waiting}
	// What ended keeps no secret, long before it is pruned.
	for name, id := range ended {
		var secrets int
		if err := pool.QueryRow(ctx, `select num_nonnulls(access_token, refresh_token, static_credentials) from vault.connections where id = $1`, id).Scan(&secrets); err != nil || secrets != 0 {
			t.Errorf("%s connection holds %d secret column(s) (%v)", name, secrets, err)
		}
	}
	exists := func(id string) bool {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, "select count(*) from vault.connections where id = $1", id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	events := func(id string) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, "select count(*) from vault.outbox where connection_id = $1", id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// Just inside the retention: everything stays.
	end := clock
	clock = end.Add(retention - time.Second)
	pass()
	for name, id := range ended {
		if !exists(id) {
			t.Fatalf("the %s connection was pruned within the retention", name)
		}
	}

	// Just beyond it: the ended ones go, with their events; the one whose
	// event is unpublished waits; the others stay, a consent begun now too.
	clock = end.Add(retention + time.Second)
	pending := create("p")
	pass()
	for name, id := range ended {
		if name == "waiting" {
			continue
		}
		if exists(id) || events(id) != 0 {
			t.Errorf("the %s connection (or its %d events) outlived the retention", name, events(id))
		}
	}
	if !exists(waiting) || events(waiting) != 3 {
		t.Fatalf("the connection with an unpublished event: exists %v, %d events", exists(waiting), events(waiting))
	}
	for name, id := range map[string]string{"active": active, "attention_required": attention, "pending": pending} {
		if !exists(id) {
			t.Errorf("the %s connection was pruned", name)
		}
	}
	if _, err := st.AckOutbox(ctx, []string{held}); err != nil {
		t.Fatal(err)
	}
	pass()
	if exists(waiting) || events(waiting) != 0 {
		t.Fatal("the connection whose events are all published is still there")
	}
	if !exists(active) || !exists(attention) || !exists(pending) {
		t.Fatal("a live connection was pruned")
	}
}

// A failed or expired connection reopened for a new consent is kept for as
// long as that consent may take, even with the shortest retention.
func TestHousekeepKeepsAReopenedConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	st, _ := clockedStore(t, &clock)
	c, err := st.CreateConnection(ctx, store.NewConnection{ProviderID: "p", WorkspaceID: "w"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.WithLock(ctx, c.ID, func(ctx context.Context, l *store.Locked) error {
		return l.Fail(ctx, messages.Reason{Code: "access_denied"})
	}); err != nil {
		t.Fatal(err)
	}
	evs, _, _ := st.ClaimOutbox(ctx, "relay", 10, time.Minute)
	for _, ev := range evs {
		if _, err := st.AckOutbox(ctx, []string{ev.ID}); err != nil {
			t.Fatal(err)
		}
	}
	clock = clock.Add(3 * time.Hour)
	if _, err := st.ReopenConnection(ctx, c.ID, store.NewConnection{ProviderID: "p", WorkspaceID: "w"}); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(store.PendingLifetime - time.Second)
	housekeep(ctx, st, clock, store.MinEndedRetention, logging.Discard())
	if _, err := st.GetConnection(ctx, c.ID); err != nil {
		t.Fatalf("a connection reopened %s ago was pruned: %v", store.PendingLifetime-time.Second, err)
	}
	clock = clock.Add(2 * time.Second)
	housekeep(ctx, st, clock, store.MinEndedRetention, logging.Discard())
	if _, err := st.GetConnection(ctx, c.ID); err == nil {
		t.Fatal("the failed connection outlived its consent and the retention")
	}
}
