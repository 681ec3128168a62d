package vault

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/services/vault/internal/store/storetest"
	"github.com/nexus-broker/nexus/shared/logging"
)

// TestHousekeep: one pass at a given time expires consents that no flow can
// still finish and prunes events published more than a day before, and
// leaves everything else alone. The clock is the store's and the pass's:
// nothing is backdated, nothing waits.
func TestHousekeep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	st, pool := storetest.Open(t, store.Options{Now: func() time.Time { return clock }})
	if _, err := st.PutClient(ctx, store.Client{ProviderID: "p", ProviderName: "p", Type: messages.ProviderOAuth2, ClientID: "c", TokenEndpoint: "https://p.example/token"}); err != nil {
		t.Fatal(err)
	}
	newPending := func() string {
		c, err := st.CreateConnection(ctx, store.NewConnection{ProviderID: "p", WorkspaceID: "w"})
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	outbox := func(published bool) int {
		var n int
		q := "select count(*) from vault.outbox where published_at is null"
		if published {
			q = "select count(*) from vault.outbox where published_at is not null"
		}
		if err := pool.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	stale := newPending()
	evs, _, err := st.ClaimOutbox(ctx, "relay", 10, time.Minute)
	if err != nil || len(evs) != 1 {
		t.Fatalf("claim: %v, %d events", err, len(evs))
	}
	if _, err := st.AckOutbox(ctx, []string{evs[0].ID}); err != nil {
		t.Fatal(err)
	}

	// Just inside both lifetimes: nothing changes.
	housekeep(ctx, st, clock.Add(store.PendingLifetime-time.Second), store.DefaultEndedRetention, logging.Discard())
	if c, _ := st.GetConnection(ctx, stale); c.Status != messages.StatusPending {
		t.Fatalf("a consent within its lifetime is %s", c.Status)
	}
	if outbox(true) != 1 {
		t.Fatal("an event published less than a day ago was pruned")
	}

	clock = clock.Add(store.PublishedRetention + time.Second)
	fresh := newPending() // its created event stays unpublished
	housekeep(ctx, st, clock, store.DefaultEndedRetention, logging.Discard())
	for id, want := range map[string]messages.ConnectionStatus{stale: messages.StatusExpired, fresh: messages.StatusPending} {
		if c, err := st.GetConnection(ctx, id); err != nil || c.Status != want {
			t.Errorf("connection is %s (%v), want %s", c.Status, err, want)
		}
	}
	if outbox(true) != 0 {
		t.Error("an event published more than a day ago is still in the outbox")
	}
	if outbox(false) != 2 { // fresh's created, stale's expired
		t.Error("the prune removed an unpublished event")
	}
}

// TestHousekeepExpiresAtTheLinksExpiry: a pending consent expires when its
// link does (with the grace for an exchange in flight), with an expired
// event and the reason on the row; one whose link's expiry the vault was
// not told keeps the fixed lifetime; a re-consent of an active connection
// that is never finished leaves it active.
func TestHousekeepExpiresAtTheLinksExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	st, pool := storetest.Open(t, store.Options{Now: func() time.Time { return clock }})
	if _, err := st.PutClient(ctx, store.Client{ProviderID: "p", ProviderName: "p-name", Type: messages.ProviderOAuth2, ClientID: "c", TokenEndpoint: "https://p.example/token"}); err != nil {
		t.Fatal(err)
	}
	link := clock.Add(10 * time.Minute)
	create := func(expires *time.Time) store.Connection {
		c, err := st.CreateConnection(ctx, store.NewConnection{ProviderID: "p", WorkspaceID: "w", ExpiresAt: expires})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	timed, untimed, again := create(&link), create(nil), create(nil)
	if _, err := st.WithLock(ctx, again.ID, func(ctx context.Context, l *store.Locked) error {
		return l.Activate(ctx, store.Tokens{Access: "access"})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ReopenConnection(ctx, again.ID, store.NewConnection{ProviderID: "p", WorkspaceID: "w", ExpiresAt: &link}); err != nil {
		t.Fatal(err)
	}
	status := func(c store.Connection) store.Connection {
		t.Helper()
		got, err := st.GetConnection(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	housekeep(ctx, st, link.Add(store.ExpiryGrace-time.Second), store.DefaultEndedRetention, logging.Discard())
	if got := status(timed); got.Status != messages.StatusPending {
		t.Fatalf("a consent within the grace after its link is %s", got.Status)
	}

	clock = link.Add(store.ExpiryGrace + time.Second)
	housekeep(ctx, st, clock, store.DefaultEndedRetention, logging.Discard())
	got := status(timed)
	want := &messages.Attention{Code: "consent_expired", Message: "The consent was not finished before its link expired.", Since: clock}
	if got.Status != messages.StatusExpired || !reflect.DeepEqual(got.Failure, want) || !reflect.DeepEqual(got.Message().Failure, want) {
		t.Fatalf("expired consent: %s %+v", got.Status, got.Failure)
	}
	if s := status(untimed).Status; s != messages.StatusPending {
		t.Fatalf("a consent without a link's expiry is %s before its lifetime", s)
	}
	if s := status(again).Status; s != messages.StatusActive {
		t.Fatalf("an unfinished re-consent left the connection %s", s)
	}
	var payload messages.Event
	if err := pool.QueryRow(ctx, "select payload from vault.outbox where connection_id = $1 and type = 'expired'", timed.ID).Scan(&payload); err != nil {
		t.Fatalf("expired event: %v", err)
	}
	if payload.Type != messages.EventExpired.FullType() || payload.Provider != "p-name" || payload.WorkspaceID != "w" ||
		payload.Reason == nil || payload.Reason.Code != "consent_expired" || !payload.OccurredAt.Equal(clock) {
		t.Fatalf("expired event = %+v", payload)
	}

	clock = clock.Add(store.PendingLifetime)
	housekeep(ctx, st, clock, store.DefaultEndedRetention, logging.Discard())
	if s := status(untimed).Status; s != messages.StatusExpired {
		t.Fatalf("a consent without a link's expiry is %s after its lifetime", s)
	}
	if s := status(again).Status; s != messages.StatusActive {
		t.Fatalf("an unfinished re-consent left the connection %s", s)
	}
	var n int
	if err := pool.QueryRow(ctx, "select count(*) from vault.outbox where type = 'expired'").Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d expired events (%v), want one per expired consent", n, err)
	}
}

// TestHousekeepEndsUnconfirmedConsents: past its deadline, a first consent
// waiting for confirmation fails and a re-consent keeps what it had; both
// lose what waited. Before it, nothing changes.
func TestHousekeepEndsUnconfirmedConsents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	st, pool := storetest.Open(t, store.Options{Now: func() time.Time { return clock }})
	if _, err := st.PutClient(ctx, store.Client{ProviderID: "p", ProviderName: "p", Type: messages.ProviderOAuth2, ClientID: "c", TokenEndpoint: "https://p.example/token"}); err != nil {
		t.Fatal(err)
	}
	by := clock.Add(10 * time.Minute)
	wait := messages.Confirmation{Hash: make([]byte, 32), By: by}
	first, err := st.CreateConnection(ctx, store.NewConnection{ProviderID: "p", WorkspaceID: "w"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := st.CreateConnection(ctx, store.NewConnection{ProviderID: "p", WorkspaceID: "w"})
	if err != nil {
		t.Fatal(err)
	}
	lock := func(id string, fn func(ctx context.Context, l *store.Locked) error) store.Connection {
		c, err := st.WithLock(ctx, id, fn)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	lock(again.ID, func(ctx context.Context, l *store.Locked) error {
		return l.Activate(ctx, store.Tokens{Access: "old-access"})
	})
	for _, id := range []string{first.ID, again.ID} {
		lock(id, func(ctx context.Context, l *store.Locked) error {
			return l.Stage(ctx, store.Tokens{Access: "staged-access"}, wait)
		})
	}

	housekeep(ctx, st, by.Add(-time.Second), store.DefaultEndedRetention, logging.Discard())
	for _, id := range []string{first.ID, again.ID} {
		if c, _ := st.GetConnection(ctx, id); c.ConfirmBy == nil {
			t.Fatalf("a consent within its deadline was ended: %+v", c)
		}
	}
	housekeep(ctx, st, by, store.DefaultEndedRetention, logging.Discard())
	for id, want := range map[string]messages.ConnectionStatus{first.ID: messages.StatusFailed, again.ID: messages.StatusActive} {
		c, err := st.GetConnection(ctx, id)
		if err != nil || c.Status != want || c.ConfirmBy != nil {
			t.Errorf("after the deadline: %s, waiting until %v (%v); want %s, nothing waiting", c.Status, c.ConfirmBy, err, want)
		}
	}
	if _, tok, err := st.GetWithTokens(ctx, again.ID); err != nil || tok.Access != "old-access" {
		t.Fatalf("the re-consent lost its own token: %v", err)
	}
	var staged int
	if err := pool.QueryRow(ctx, "select count(*) from vault.connections where staged_access_token is not null or confirmation_hash is not null").Scan(&staged); err != nil || staged != 0 {
		t.Fatalf("%d rows keep staged secrets (%v)", staged, err)
	}
}

// TestPruneAudit: one pass at a given time deletes the audit records older
// than the retention, however many (the prune goes in batches), and keeps
// the rest.
func TestPruneAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, pool := storetest.Open(t, store.Options{})
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	retention := 90 * 24 * time.Hour
	entries := func(n int, at time.Time) []store.AuditEntry {
		out := make([]store.AuditEntry, n)
		for i := range out {
			id, err := store.NewID()
			if err != nil {
				t.Fatal(err)
			}
			out[i] = store.AuditEntry{ID: id, At: at, LastAt: at, Count: 1, Principal: "gateway", KeyID: "0123456789abcdef",
				Action: messages.SubjectConnectionsRevoke, Target: "c", Outcome: messages.OutcomeOK}
		}
		return out
	}
	old := 10005 // more than one batch
	if err := st.InsertAudit(ctx, append(entries(old, now.Add(-retention-time.Second)), entries(3, now.Add(-retention+time.Second))...)); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		var n int
		if err := pool.QueryRow(ctx, "select count(*) from vault.audit").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	pruneAudit(ctx, st, now, retention, logging.Discard())
	if n := count(); n != 3 {
		t.Fatalf("%d audit records left, want the 3 within the retention", n)
	}
	pruneAudit(ctx, st, now.Add(2*time.Second), retention, logging.Discard())
	if n := count(); n != 0 {
		t.Fatalf("%d audit records left, want none", n)
	}
}
