package vault_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
)

// schedule is a connection's background-refresh columns.
type schedule struct {
	due       *time.Time
	attempts  int
	owner     *string
	expiresAt *time.Time
}

func (e *env) schedule(id string) schedule {
	e.t.Helper()
	var s schedule
	if err := e.pool.QueryRow(context.Background(), `select refresh_due_at, refresh_attempts, refresh_lease_owner, expires_at
		from vault.connections where id = $1`, id).Scan(&s.due, &s.attempts, &s.owner, &s.expiresAt); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// makeDue makes a connection's refresh due now.
func (e *env) makeDue(id string) {
	e.t.Helper()
	if _, err := e.pool.Exec(context.Background(), "update vault.connections set refresh_due_at = now() - interval '1 second' where id = $1", id); err != nil {
		e.t.Fatal(err)
	}
}

// seedDue inserts n active connections (without tokens: a claim needs none)
// whose refresh is due.
func (e *env) seedDue(n int) {
	e.t.Helper()
	if _, err := e.pool.Exec(context.Background(), `insert into vault.connections (id, provider_id, workspace_id, status, expires_at, refresh_due_at)
		select gen_random_uuid(), $1, 'ws-seed', 'active', now() + interval '1 minute', now() - i * interval '1 millisecond'
		from generate_series(1, $2) i`, providerID, n); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) claim(owner string, limit, lease int) []messages.RefreshItem {
	e.t.Helper()
	var r messages.RefreshClaimReply
	e.mustCall(messages.SubjectVaultRefreshClaim, messages.RefreshClaim{Owner: owner, Limit: limit, LeaseSeconds: lease}, &r)
	return r.Items
}

func (e *env) run(id string, version int64) messages.RefreshRunReply {
	e.t.Helper()
	var r messages.RefreshRunReply
	e.mustCall(messages.SubjectVaultRefreshRun, messages.RefreshRun{ConnectionID: id, TokenVersion: version}, &r)
	if r.ConnectionID != id {
		e.t.Fatalf("run reply for %s names %s", id, r.ConnectionID)
	}
	return r
}

// claimOne makes id due, claims it and returns its item.
func (e *env) claimOne(id string) messages.RefreshItem {
	e.t.Helper()
	e.makeDue(id)
	items := e.claim("test", 10, 60)
	if len(items) != 1 || items[0].ConnectionID != id {
		e.t.Fatalf("claimed %+v, want only %s", items, id)
	}
	return items[0]
}

func near(t *testing.T, what string, got *time.Time, want time.Time, tolerance time.Duration) {
	t.Helper()
	if got == nil || got.Sub(want).Abs() > tolerance {
		t.Fatalf("%s = %v, want %v (± %v)", what, got, want, tolerance)
	}
}

// TestRefreshSchedule follows the scheduling rule through a real consent
// for each shape of token response (and each form of expires_in).
func TestRefreshSchedule(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	tests := []struct {
		name        string
		rewrite     func(map[string]any)
		lifetimeSec int           // the provider's default_token_lifetime_seconds
		wantExpires time.Duration // from now
		wantDue     time.Duration // from now; 0: never
	}{
		{name: "long-lived, expires_in number", rewrite: func(b map[string]any) { b["expires_in"] = 3600 }, wantExpires: time.Hour, wantDue: 55 * time.Minute},
		{name: "expires_in string", rewrite: func(b map[string]any) { b["expires_in"] = "3600" }, wantExpires: time.Hour, wantDue: 55 * time.Minute},
		{name: "short-lived 2s: due at half its life", rewrite: func(b map[string]any) { b["expires_in"] = 2 }, wantExpires: 2 * time.Second, wantDue: time.Second},
		{name: "expires_in missing: the vault's default hour", rewrite: func(b map[string]any) { delete(b, "expires_in") }, wantExpires: time.Hour, wantDue: 55 * time.Minute},
		{name: "expires_in missing: the provider's default", rewrite: func(b map[string]any) { delete(b, "expires_in") }, lifetimeSec: 600, wantExpires: 10 * time.Minute, wantDue: 5 * time.Minute},
		{name: "refresh_token_expires_in sooner", rewrite: func(b map[string]any) { b["refresh_token_expires_in"] = 400 }, wantExpires: time.Hour, wantDue: 200 * time.Second},
		{name: "no refresh token: never due", rewrite: func(b map[string]any) { delete(b, "refresh_token") }, wantExpires: time.Hour},
	}
	for _, tt := range tests {
		// Serial: the provider rewrites the next response, whoever asks.
		t.Run(tt.name, func(t *testing.T) {
			e.putClient(messages.VaultClient{
				ProviderID: providerID, ProviderName: "test-provider", Type: messages.ProviderOIDC, ClientID: clientID, ClientSecret: secret,
				Issuer: e.op.Issuer(), TokenEndpoint: e.op.Issuer() + "/token", RevocationEndpoint: e.op.Issuer() + "/revoke", JWKSURI: e.op.Issuer() + "/jwks",
				DefaultTokenLifetimeSeconds: tt.lifetimeSec,
			})
			c := e.create(workspace)
			a := e.authorize(c.Scopes)
			e.op.RewriteNextTokenResponse(tt.rewrite)
			now := time.Now()
			if _, err := e.exchange(c.ConnectionID, a); err != nil {
				t.Fatal(err)
			}
			s := e.schedule(c.ConnectionID)
			near(t, "expires_at", s.expiresAt, now.Add(tt.wantExpires), 2*time.Second)
			if tt.wantDue == 0 {
				if s.due != nil {
					t.Fatalf("refresh_due_at = %v, want never", s.due)
				}
				return
			}
			near(t, "refresh_due_at", s.due, now.Add(tt.wantDue), time.Second)
			if !s.due.After(now) {
				t.Fatal("due the instant it was stored")
			}
		})
	}
}

func TestRefreshClaimValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noProvider: true})
	for _, r := range []messages.RefreshClaim{
		{Owner: "a", Limit: 0, LeaseSeconds: 30}, {Owner: "a", Limit: 1001, LeaseSeconds: 30},
		{Owner: "a", Limit: 10, LeaseSeconds: 0}, {Owner: "a", Limit: 10, LeaseSeconds: 3601}, {Owner: "", Limit: 10, LeaseSeconds: 30},
	} {
		wantCode(t, e.call(messages.SubjectVaultRefreshClaim, r, &messages.RefreshClaimReply{}), messages.ErrInvalidRequest)
		wantCode(t, e.call(messages.SubjectVaultOutboxClaim, messages.OutboxClaim(r), &messages.OutboxClaimReply{}), messages.ErrInvalidRequest)
	}
	for _, ok := range []messages.RefreshClaim{{Owner: "a", Limit: 1, LeaseSeconds: 1}, {Owner: "a", Limit: 1000, LeaseSeconds: 3600}} {
		if err := e.call(messages.SubjectVaultRefreshClaim, ok, &messages.RefreshClaimReply{}); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, e.call(messages.SubjectVaultRefreshDefer, messages.RefreshDefer{ConnectionID: "01900000-0000-7000-8000-000000000000", Until: time.Now()}, &struct{}{}), messages.ErrNotFound)
	wantCode(t, e.call(messages.SubjectVaultRefreshDefer, messages.RefreshDefer{ConnectionID: "01900000-0000-7000-8000-000000000000"}, &struct{}{}), messages.ErrInvalidRequest)
	wantCode(t, e.call(messages.SubjectVaultRefreshRun, messages.RefreshRun{ConnectionID: "nope"}, &messages.RefreshRunReply{}), messages.ErrNotFound)
}

func TestRefreshClaimIsDisjointAcrossConcurrentClaimers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noProvider: true})
	e.start(e.key) // two replicas answer the claims
	e.seedDue(200)
	var (
		wg      sync.WaitGroup
		claimed [2][]messages.RefreshItem
	)
	for i := range claimed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := []string{"refresher-a", "refresher-b"}[i]
			for {
				var r messages.RefreshClaimReply
				if err := e.call(messages.SubjectVaultRefreshClaim, messages.RefreshClaim{Owner: owner, Limit: 7, LeaseSeconds: 600}, &r); err != nil {
					t.Error(err)
					return
				}
				if len(r.Items) == 0 {
					return
				}
				claimed[i] = append(claimed[i], r.Items...)
			}
		}()
	}
	wg.Wait()
	seen := map[string]int{}
	for _, items := range claimed {
		for _, it := range items {
			seen[it.ConnectionID]++
			if it.ProviderID != providerID || it.ExpiresAt.IsZero() {
				t.Fatalf("item %+v", it)
			}
		}
	}
	if len(seen) != 200 || len(claimed[0])+len(claimed[1]) != 200 {
		t.Fatalf("claimed %d + %d items, %d distinct; want 200 disjoint", len(claimed[0]), len(claimed[1]), len(seen))
	}
	t.Logf("claimer a: %d, claimer b: %d", len(claimed[0]), len(claimed[1]))
	var leased int
	if err := e.pool.QueryRow(context.Background(), `select count(*) from vault.connections
		where refresh_due_at > now() + interval '500 seconds' and refresh_lease_owner in ('refresher-a', 'refresher-b')`).Scan(&leased); err != nil {
		t.Fatal(err)
	}
	if leased != 200 {
		t.Fatalf("%d leases recorded, want 200", leased)
	}
}

func TestRefreshClaimMostUrgentFirstAndLeaseExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noProvider: true})
	e.seedDue(5)
	var urgent []string
	rows, err := e.pool.Query(context.Background(), "select id::text from vault.connections order by refresh_due_at limit 3")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		urgent = append(urgent, id)
	}
	rows.Close()
	first := e.claim("a", 3, 1)
	var got []string
	for _, it := range first {
		got = append(got, it.ConnectionID)
	}
	if !slices.Equal(got, urgent) {
		t.Fatalf("claimed %v, want the most overdue first %v", got, urgent)
	}
	if rest := e.claim("b", 10, 1); len(rest) != 2 {
		t.Fatalf("second claimer got %d, want the 2 left", len(rest))
	}
	if got := e.claim("b", 10, 1); len(got) != 0 {
		t.Fatalf("leased rows claimed again: %d", len(got))
	}
	time.Sleep(1100 * time.Millisecond) // the 1-second leases run out: as if both claimers died
	if again := e.claim("c", 10, 60); len(again) != 5 {
		t.Fatalf("after the leases ran out, claimed %d, want 5", len(again))
	}
}

func TestRefreshRunRefreshes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	rt0 := e.storedRefreshToken(c.ConnectionID)
	it := e.claimOne(c.ConnectionID)
	if s := e.schedule(c.ConnectionID); s.owner == nil || *s.owner != "test" || !s.due.After(time.Now().Add(50*time.Second)) {
		t.Fatalf("lease not recorded: %+v", s)
	}
	now := time.Now()
	r := e.run(c.ConnectionID, it.TokenVersion)
	if r.Outcome != messages.RefreshDone || r.ExpiresAt == nil || r.Attempts != 0 || r.Reason != nil {
		t.Fatalf("run = %+v", r)
	}
	if body := mustJSON(t, r); strings.Contains(body, rt0) || strings.Contains(body, e.storedRefreshToken(c.ConnectionID)) || strings.Contains(body, "token\"") {
		t.Fatalf("run reply carries a token: %s", body)
	}
	for _, tok := range e.op.Issued().AccessTokens {
		if strings.Contains(mustJSON(t, r), tok) {
			t.Fatal("run reply carries an access token")
		}
	}
	if e.op.RefreshGrants() != 1 || e.storedRefreshToken(c.ConnectionID) == rt0 {
		t.Fatal("not refreshed at the provider, or rotation not stored")
	}
	s := e.schedule(c.ConnectionID)
	near(t, "refresh_due_at after refresh", s.due, now.Add(55*time.Minute), 2*time.Second)
	if s.owner != nil || s.attempts != 0 {
		t.Fatalf("after refresh: %+v", s)
	}
	// The claim's version is stale now: another caller refreshed.
	if r := e.run(c.ConnectionID, it.TokenVersion); r.Outcome != messages.RefreshNotNeeded {
		t.Fatalf("stale run = %+v", r)
	}
	if e.op.RefreshGrants() != 1 {
		t.Fatal("a stale run refreshed")
	}
	if got := eventTypes(e.events(c.ConnectionID)); !slices.Equal(got, []string{"created", "active", "refreshed"}) {
		t.Fatalf("events = %v", got)
	}
}

func TestRefreshRunVersionMovedByTokensRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	it := e.claimOne(c.ConnectionID)
	var cred messages.Credential
	e.mustCall(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, &cred)
	if r := e.run(c.ConnectionID, it.TokenVersion); r.Outcome != messages.RefreshNotNeeded {
		t.Fatalf("run = %+v", r)
	}
	if e.op.RefreshGrants() != 1 {
		t.Fatalf("refresh grants = %d, want 1", e.op.RefreshGrants())
	}
	// The forced refresh rescheduled it, and dropped the claimer's lease.
	if s := e.schedule(c.ConnectionID); s.owner != nil || !s.due.After(time.Now().Add(50*time.Minute)) {
		t.Fatalf("schedule = %+v", s)
	}
}

func TestRefreshRunAttentionRequired(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	it := e.claimOne(c.ConnectionID)
	e.op.RevokeAllGrants()
	r := e.run(c.ConnectionID, it.TokenVersion)
	if r.Outcome != messages.RefreshAttention || r.Reason == nil || r.Reason.Code != "invalid_grant" || r.Reason.Message == "" {
		t.Fatalf("run = %+v", r)
	}
	got := e.get(c.ConnectionID)
	if got.Status != messages.StatusAttentionRequired || got.Attention == nil || got.Attention.Code != "invalid_grant" {
		t.Fatalf("connection = %+v", got)
	}
	var att []messages.Event
	for _, ev := range e.events(c.ConnectionID) {
		if ev.Type == messages.EventAttentionRequired.FullType() {
			att = append(att, ev)
		}
	}
	if len(att) != 1 || att[0].Reason == nil || *att[0].Reason != *r.Reason {
		t.Fatalf("attention_required events = %+v, want one with reason %+v", att, r.Reason)
	}
	if _, err := e.token(c.ConnectionID, intp(0)); err == nil {
		t.Fatal("still served")
	}
	if s := e.schedule(c.ConnectionID); s.due != nil {
		t.Fatalf("still scheduled: %+v", s)
	}
	// Another run (a duplicate claim) changes nothing and writes no event.
	if r := e.run(c.ConnectionID, it.TokenVersion); r.Outcome != messages.RefreshNotNeeded {
		t.Fatalf("second run = %+v", r)
	}
	if got := eventTypes(e.events(c.ConnectionID)); !slices.Equal(got, []string{"created", "active", "attention_required"}) {
		t.Fatalf("events = %v", got)
	}
	if items := e.claim("test", 10, 60); len(items) != 0 {
		t.Fatalf("an attention_required connection was claimed: %+v", items)
	}
}

func TestRefreshRunTransient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	it := e.claimOne(c.ConnectionID)
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		wantRetry  int
		wantReason bool
	}{
		{name: "429 with Retry-After", status: http.StatusTooManyRequests, header: http.Header{"Retry-After": {"7"}}, body: `{"error":"slow_down"}`, wantRetry: 7},
		{name: "503", status: http.StatusServiceUnavailable, header: http.Header{"Retry-After": {"7"}}, wantRetry: 7},
		{name: "500 without Retry-After", status: http.StatusInternalServerError, body: `{"error":"server_error"}`},
		{name: "invalid_client: not the user's to fix", status: http.StatusUnauthorized, body: `{"error":"invalid_client"}`, wantReason: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.backoffPassed(c.ConnectionID)
			e.op.FailTokenRequests(1, tt.status, tt.header, tt.body)
			r := e.run(c.ConnectionID, it.TokenVersion)
			// The wait is the provider's Retry-After or the vault's own
			// backoff, whichever is longer.
			backoff := int(store.RetryDelay(i+1, 0).Seconds())
			if r.Outcome != messages.RefreshTransient || r.RetryAfterSeconds < max(tt.wantRetry, backoff) || r.Attempts != i+1 || (r.Reason != nil) != tt.wantReason {
				t.Fatalf("run = %+v", r)
			}
			if got := e.get(c.ConnectionID); got.Status != messages.StatusActive {
				t.Fatalf("status = %s", got.Status)
			}
			if s := e.schedule(c.ConnectionID); s.attempts != i+1 || s.owner == nil {
				t.Fatalf("schedule = %+v, want %d attempts, still leased", s, i+1)
			}
		})
	}
	// The refresher backs off: the next attempt is due when it says.
	until := time.Now().Add(42 * time.Second).UTC().Truncate(time.Microsecond)
	e.mustCall(messages.SubjectVaultRefreshDefer, messages.RefreshDefer{ConnectionID: c.ConnectionID, Until: until}, &struct{}{})
	if s := e.schedule(c.ConnectionID); s.due == nil || !s.due.Equal(until) || s.owner != nil {
		t.Fatalf("after defer: %+v", s)
	}
	if items := e.claim("test", 10, 60); len(items) != 0 {
		t.Fatal("a deferred connection was claimed early")
	}
	// A success resets the count.
	e.backoffPassed(c.ConnectionID)
	r := e.run(c.ConnectionID, it.TokenVersion)
	if r.Outcome != messages.RefreshDone {
		t.Fatalf("run = %+v", r)
	}
	if s := e.schedule(c.ConnectionID); s.attempts != 0 {
		t.Fatalf("attempts after success = %d", s.attempts)
	}
	if got := eventTypes(e.events(c.ConnectionID)); !slices.Equal(got, []string{"created", "active", "refreshed"}) {
		t.Fatalf("events = %v", got)
	}
}

func TestRefreshRunWithoutRefreshToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.create(workspace)
	a := e.authorize(c.Scopes)
	e.op.RewriteNextTokenResponse(func(b map[string]any) { delete(b, "refresh_token") })
	if _, err := e.exchange(c.ConnectionID, a); err != nil {
		t.Fatal(err)
	}
	c = e.get(c.ConnectionID)
	e.makeDue(c.ConnectionID) // as if scheduled before
	items := e.claim("test", 10, 60)
	if len(items) != 1 {
		t.Fatalf("claimed %+v", items)
	}
	if r := e.run(c.ConnectionID, items[0].TokenVersion); r.Outcome != messages.RefreshNotNeeded {
		t.Fatalf("run = %+v", r)
	}
	if s := e.schedule(c.ConnectionID); s.due != nil {
		t.Fatalf("still scheduled: %+v", s)
	}
	if got := e.get(c.ConnectionID); got.Status != messages.StatusActive {
		t.Fatalf("status = %s", got.Status)
	}
}

func (e *env) claimEvents(owner string, limit, lease int) []messages.Event {
	e.t.Helper()
	var r messages.OutboxClaimReply
	e.mustCall(messages.SubjectVaultOutboxClaim, messages.OutboxClaim{Owner: owner, Limit: limit, LeaseSeconds: lease}, &r)
	return r.Events
}

func (e *env) ack(ids ...string) int {
	e.t.Helper()
	var r messages.OutboxAckReply
	e.mustCall(messages.SubjectVaultOutboxAck, messages.OutboxAck{IDs: ids}, &r)
	return r.Acked
}

func ids(evs []messages.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.ID)
	}
	return out
}

func TestOutboxClaimAndAck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for range 3 {
		e.connect(workspace) // created + active each
	}
	first := e.claimEvents("relay-a", 4, 1)
	if len(first) != 4 {
		t.Fatalf("claimed %d, want 4", len(first))
	}
	second := e.claimEvents("relay-b", 100, 1)
	if len(second) != 2 {
		t.Fatalf("second relay got %d, want the 2 unleased", len(second))
	}
	if got := e.claimEvents("relay-c", 100, 60); len(got) != 0 {
		t.Fatalf("leased events handed out again: %d", len(got))
	}
	// Oldest first, and in order across the two claims.
	all := append(slices.Clone(first), second...)
	for i := 1; i < len(all); i++ {
		if all[i].OccurredAt.Before(all[i-1].OccurredAt) {
			t.Fatalf("not oldest first: %v then %v", all[i-1].OccurredAt, all[i].OccurredAt)
		}
	}
	// relay-a published two of its four, relay-b both of its own.
	if n := e.ack(first[0].ID, first[1].ID, second[0].ID, second[1].ID, "not-an-id"); n != 4 {
		t.Fatalf("acked %d", n)
	}
	if n := e.ack(first[0].ID); n != 0 {
		t.Fatalf("acked twice: %d", n)
	}
	time.Sleep(1100 * time.Millisecond) // relay-a's lease runs out
	again := e.claimEvents("relay-c", 100, 60)
	if !slices.Equal(ids(again), ids(first[2:])) {
		t.Fatalf("after the lease ran out: %v, want the 2 unacked %v", ids(again), ids(first[2:]))
	}
	if n := e.ack(ids(again)...); n != 2 {
		t.Fatalf("acked %d", n)
	}
	time.Sleep(1100 * time.Millisecond)
	if got := e.claimEvents("relay-d", 100, 60); len(got) != 0 {
		t.Fatalf("acked events handed out again: %v", ids(got))
	}
	wantCode(t, e.call(messages.SubjectVaultOutboxAck, messages.OutboxAck{IDs: make([]string, 1001)}, &messages.OutboxAckReply{}), messages.ErrInvalidRequest)
}

// TestLifecycleEventsAndNotifications walks a connection through every
// lifecycle event and checks each reaches the outbox in the contract's
// shape, with a notification on the bus after each change.
func TestLifecycleEventsAndNotifications(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	sub, err := e.nc.SubscribeSync(messages.Subject(messages.DefaultPrefix, messages.SubjectVaultOutboxNotify))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	notified := func(step string) {
		t.Helper()
		if _, err := sub.NextMsg(5 * time.Second); err != nil {
			t.Fatalf("%s: no outbox notification: %v", step, err)
		}
	}
	c := e.create(workspace) // created
	notified("created")
	a := e.authorize(c.Scopes)
	if _, err := e.exchange(c.ConnectionID, a); err != nil { // active
		t.Fatal(err)
	}
	notified("active")
	it := e.claimOne(c.ConnectionID)
	if r := e.run(c.ConnectionID, it.TokenVersion); r.Outcome != messages.RefreshDone { // refreshed
		t.Fatalf("run = %+v", r)
	}
	notified("refreshed")
	e.op.RevokeAllGrants()
	it = e.claimOne(c.ConnectionID)
	if r := e.run(c.ConnectionID, it.TokenVersion); r.Outcome != messages.RefreshAttention { // attention_required
		t.Fatalf("run = %+v", r)
	}
	notified("attention_required")
	var re messages.Connection
	e.mustCall(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ConnectionID: c.ConnectionID, ProviderID: providerID, WorkspaceID: workspace, Scopes: c.Scopes}, &re)
	if _, err := e.exchange(c.ConnectionID, e.authorize(c.Scopes)); err != nil { // recovered
		t.Fatal(err)
	}
	notified("recovered")
	e.mustCall(messages.SubjectConnectionsRevoke, messages.ConnectionRef{ConnectionID: c.ConnectionID}, &re) // revoked
	notified("revoked")
	f := e.create(workspace)
	notified("created")
	e.mustCall(messages.SubjectVaultConnectionsFail, messages.VaultFailConnection{ConnectionID: f.ConnectionID, Reason: messages.Reason{Code: "access_denied", Message: "no"}}, &re) // failed
	notified("failed")
	x := e.create(workspace)
	notified("created")
	// Housekeeping runs when a vault starts: one whose clock is past the
	// consent's lifetime expires it.
	e.configure = func(c *vault.Config) { c.Now = func() time.Time { return time.Now().Add(2 * time.Hour) } }
	_ = e.svc.Close(context.Background())
	e.svc = e.start(e.key)
	notified("expired")

	evs := e.claimEvents("relay", 100, 60)
	var types []string
	seen := map[string]bool{}
	for _, ev := range evs {
		types = append(types, strings.TrimSuffix(strings.TrimPrefix(ev.Type, "nexus.connection."), ".v1"))
		if ev.ID == "" || seen[ev.ID] || ev.Provider != "test-provider" || ev.WorkspaceID != workspace || ev.OccurredAt.IsZero() ||
			!strings.HasPrefix(ev.Type, "nexus.connection.") || (ev.ConnectionID != c.ConnectionID && ev.ConnectionID != f.ConnectionID && ev.ConnectionID != x.ConnectionID) {
			t.Fatalf("event %s", mustJSON(t, ev))
		}
		seen[ev.ID] = true
		wantReason := ev.Type == messages.EventAttentionRequired.FullType() || ev.Type == messages.EventFailed.FullType() || ev.Type == messages.EventExpired.FullType()
		if (ev.Reason != nil) != wantReason {
			t.Fatalf("event %s: reason", mustJSON(t, ev))
		}
	}
	want := []string{"created", "active", "refreshed", "attention_required", "recovered", "revoked", "created", "failed", "created", "expired"}
	if !slices.Equal(types, want) {
		t.Fatalf("events = %v, want %v", types, want)
	}
	for _, typ := range messages.EventTypes {
		if !slices.Contains(types, string(typ)) {
			t.Fatalf("no %s event", typ)
		}
	}
}
