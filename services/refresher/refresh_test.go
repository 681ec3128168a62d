package refresher

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

func outcomes(t *testing.T, s *Service, o string) float64 {
	return counter(t, s, "nexus_refresher_refresh_outcomes_total", map[string]string{"outcome": o})
}

func TestShortLivedTokensAreRefreshedBeforeTheyExpire(t *testing.T) {
	t.Parallel()
	// 4 s tokens, due at half their life: the refresher has 2 s to renew
	// each one, which a 2-core machine running the other packages' tests
	// beside this one gives it (with 2 s tokens, a second's stall of the
	// whole machine failed the test).
	e := newEnv(t, envOptions{provider: oidcprovider.Options{AccessTokenLifespan: 4 * time.Second}})
	s := e.startRefresher(e.testConfig(nil))
	c := e.connect()

	// A reader that never asks for a refresh itself (min_valid_seconds 0)
	// must always get a token that is still valid.
	var reads int
	minLeft := time.Hour
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(25 * time.Millisecond) {
		cred, err := e.token(c.ConnectionID, 0)
		now := time.Now()
		if err != nil {
			t.Fatalf("tokens.get after %d reads: %v", reads, err)
		}
		if cred.ExpiresAt == nil || !cred.ExpiresAt.After(now) {
			t.Fatalf("read %d: token expired at %v (now %v)", reads, cred.ExpiresAt, now)
		}
		minLeft = min(minLeft, cred.ExpiresAt.Sub(now))
		reads++
	}
	grants := e.op.RefreshGrants()
	// A 4 s token is due after half its life: about 4 refreshes in 8 s.
	if grants < 3 {
		t.Fatalf("provider saw %d refresh grants in 8s, want at least 3", grants)
	}
	// Every refresh was the refresher's: the reader never had to. (A run
	// may be in flight at the provider; wait for its reply.)
	eventually(t, 3*time.Second, "as many refreshes by the refresher as grants at the provider", func() bool {
		return int(outcomes(t, s, "refreshed")) == e.op.RefreshGrants()
	})
	if got := e.get(c.ConnectionID); got.Status != messages.StatusActive || got.LastRefreshedAt == nil {
		t.Fatalf("connection = %+v", got)
	}
	t.Logf("%d reads, %d refreshes, least remaining validity seen %v", reads, grants, minLeft)
}

func TestRefreshTokenRotatesAcrossManyCycles(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{provider: oidcprovider.Options{AccessTokenLifespan: 2 * time.Second}})
	s := e.startRefresher(e.testConfig(nil))
	c := e.connect()
	eventually(t, 20*time.Second, "6 refreshes", func() bool { return e.op.RefreshGrants() >= 6 })
	s.Close(t.Context())
	uses := e.op.RefreshTokenUses()
	grants := e.op.RefreshGrants()
	if len(uses) != grants {
		t.Fatalf("%d refresh grants presented %d distinct refresh tokens: %v", grants, len(uses), uses)
	}
	for h, n := range uses {
		if n != 1 {
			t.Fatalf("refresh token %s… redeemed %d times, want exactly once", h[:12], n)
		}
	}
	if got := e.get(c.ConnectionID); got.Status != messages.StatusActive {
		t.Fatalf("status = %s", got.Status)
	}
	if got := outcomes(t, s, "attention_required") + outcomes(t, s, "transient") + outcomes(t, s, "error"); got != 0 {
		t.Fatalf("unexpected outcomes: %v", got)
	}
}

func TestProviderThatOmitsTheRefreshTokenKeepsTheOldOneWorking(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{provider: oidcprovider.Options{AccessTokenLifespan: 2 * time.Second}})
	e.op.OmitRefreshTokenOnRefresh(true)
	s := e.startRefresher(e.testConfig(nil))
	c := e.connect()
	eventually(t, 20*time.Second, "4 refreshes", func() bool { return e.op.RefreshGrants() >= 4 })
	s.Close(t.Context())
	uses := e.op.RefreshTokenUses()
	if len(uses) != 1 {
		t.Fatalf("refresh tokens presented: %v; want the original one only", uses)
	}
	for _, n := range uses {
		if n != e.op.RefreshGrants() {
			t.Fatalf("the original refresh token was used %d times, grants %d", n, e.op.RefreshGrants())
		}
	}
	if got := e.get(c.ConnectionID); got.Status != messages.StatusActive {
		t.Fatalf("status = %s", got.Status)
	}
	if got := outcomes(t, s, "attention_required") + outcomes(t, s, "transient") + outcomes(t, s, "error"); got != 0 {
		t.Fatalf("unexpected outcomes: %v", got)
	}
}

func TestRevokedGrantNeedsAttentionAndPublishesOneEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{provider: oidcprovider.Options{AccessTokenLifespan: 2 * time.Second}})
	s := e.startRefresher(e.testConfig(nil))
	cons := e.consumer("attention-watcher", messages.EventSubject(messages.DefaultPrefix, messages.EventAttentionRequired))
	c := e.connect()
	e.op.RevokeAllGrants()
	eventually(t, 10*time.Second, "connection in attention_required", func() bool {
		return e.get(c.ConnectionID).Status == messages.StatusAttentionRequired
	})
	// Wait past a few more poll intervals and outbox polls: still one event.
	got := fetch(t, cons, 3*time.Second)
	if len(got) != 1 {
		t.Fatalf("attention_required events = %d, want exactly 1: %+v", len(got), got)
	}
	ev := got[0]
	if ev.subject != "nexus.events.connection.attention_required" || ev.msgID != ev.event.ID || ev.event.ID == "" ||
		ev.event.Type != messages.EventAttentionRequired.FullType() || ev.event.ConnectionID != c.ConnectionID ||
		ev.event.WorkspaceID != workspace || ev.event.Provider != "test-provider" || ev.event.OccurredAt.IsZero() {
		t.Fatalf("event = %+v", ev)
	}
	if ev.event.Reason == nil || ev.event.Reason.Code == "" || ev.event.Reason.Message == "" {
		t.Fatalf("event reason = %+v", ev.event.Reason)
	}
	conn := e.get(c.ConnectionID)
	if conn.Attention == nil || conn.Attention.Code != ev.event.Reason.Code {
		t.Fatalf("connection attention = %+v, event reason = %+v", conn.Attention, ev.event.Reason)
	}
	if got := outcomes(t, s, "attention_required"); got != 1 {
		t.Fatalf("attention_required outcomes = %v", got)
	}
}

func TestRateLimitAndOutageBackOffWithoutAttention(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{provider: oidcprovider.Options{AccessTokenLifespan: 2 * time.Second}})
	c := e.connect()
	before := e.op.TokenRequests()
	e.op.FailTokenRequests(1, http.StatusTooManyRequests, http.Header{"Retry-After": {"3"}}, `{"error":"rate_limited"}`)
	s := e.startRefresher(e.testConfig(nil))

	// The refresher's first attempt meets the 429 ...
	eventually(t, 10*time.Second, "the first (rate limited) attempt", func() bool { return e.op.TokenRequests() > before })
	limitedAt := time.Now()
	// ... and the next comes no sooner than Retry-After (the backoff alone,
	// 200ms base, would be far sooner).
	eventually(t, 10*time.Second, "an attempt after Retry-After", func() bool { return e.op.TokenRequests() > before+1 })
	if waited := time.Since(limitedAt); waited < 2900*time.Millisecond {
		t.Fatalf("next attempt after %v, want at least Retry-After (3s)", waited)
	}
	if got := counter(t, s, "nexus_refresher_backoff_delay_seconds", nil); got < 3 {
		t.Fatalf("backoff delays observed sum to %vs, want >= 3", got)
	}
	// The provider counts a request when it arrives and a grant when it has
	// answered: wait for the answer.
	eventually(t, 5*time.Second, "the refresh after Retry-After to be granted", func() bool { return e.op.RefreshGrants() >= 1 })
	if e.op.RefreshGrants() != 1 {
		t.Fatalf("refresh grants after the 429 = %d", e.op.RefreshGrants())
	}

	// A 503 is transient too: backed off, then refreshed.
	grants := e.op.RefreshGrants()
	e.op.FailTokenRequests(2, http.StatusServiceUnavailable, nil, "down for maintenance")
	eventually(t, 15*time.Second, "a refresh after the outage", func() bool { return e.op.RefreshGrants() > grants })
	if got := outcomes(t, s, "transient"); got != 3 {
		t.Fatalf("transient outcomes = %v, want 3 (one 429, two 503)", got)
	}
	if got := outcomes(t, s, "attention_required"); got != 0 {
		t.Fatalf("attention_required outcomes = %v", got)
	}
	if got := e.get(c.ConnectionID); got.Status != messages.StatusActive {
		t.Fatalf("status = %s, attention = %+v", got.Status, got.Attention)
	}
}

func TestTwoReplicasRedeemEveryRefreshTokenOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{vaults: 2, provider: oidcprovider.Options{AccessTokenLifespan: 2 * time.Second}})
	cfg := e.testConfig(map[string]string{"REFRESH_BATCH": "10", "REFRESH_CONCURRENCY": "4"})
	a, b := e.startRefresher(cfg), e.startRefresher(cfg)
	const n = 50
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); ids[i] = e.connect().ConnectionID }()
	}
	wg.Wait()
	// Every connection through at least three refreshes.
	eventually(t, 30*time.Second, "3 refreshes per connection", func() bool { return e.op.RefreshGrants() >= 3*n })
	a.Close(t.Context())
	b.Close(t.Context())

	uses := e.op.RefreshTokenUses()
	for h, k := range uses {
		if k != 1 {
			t.Fatalf("refresh token %s… redeemed %d times, want exactly once", h[:12], k)
		}
	}
	if len(uses) != e.op.RefreshGrants() {
		t.Fatalf("%d grants, %d distinct refresh tokens", e.op.RefreshGrants(), len(uses))
	}
	for _, id := range ids {
		if c := e.get(id); c.Status != messages.StatusActive {
			t.Fatalf("connection %s: %s %+v", id, c.Status, c.Attention)
		}
	}
	ra, rb := outcomes(t, a, "refreshed"), outcomes(t, b, "refreshed")
	if ra == 0 || rb == 0 {
		t.Fatalf("refreshes per replica = %v, %v; the test needs both to take part", ra, rb)
	}
	if got := outcomes(t, a, "attention_required") + outcomes(t, b, "attention_required"); got != 0 {
		t.Fatalf("attention_required outcomes = %v", got)
	}
	t.Logf("refreshes: replica A %v, replica B %v, not needed %v", ra, rb, outcomes(t, a, "not_needed")+outcomes(t, b, "not_needed"))
}

// TestInvalidClientPublishesAProviderEvent: a background refresh the token
// endpoint refuses with invalid_client leaves the connection active and
// publishes one provider event, misconfigured, on its own subject; a
// refresh that succeeds again publishes recovered.
func TestInvalidClientPublishesAProviderEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{provider: oidcprovider.Options{AccessTokenLifespan: 2 * time.Second}})
	c := e.connect()
	e.op.FailTokenRequests(1, http.StatusUnauthorized, nil, `{"error":"invalid_client"}`)
	grants := e.op.RefreshGrants()
	e.startRefresher(e.testConfig(nil))
	cons := e.consumer("provider-watcher", messages.ProviderEventsWildcard(messages.DefaultPrefix))
	eventually(t, 15*time.Second, "a refresh after the refusal", func() bool { return e.op.RefreshGrants() > grants })
	got := fetch(t, cons, 2*time.Second)
	if len(got) != 2 || got[0].subject != "nexus.events.provider.misconfigured" || got[1].subject != "nexus.events.provider.recovered" {
		t.Fatalf("provider events = %+v", got)
	}
	var ev messages.ProviderEvent
	if err := json.Unmarshal(got[0].body, &ev); err != nil {
		t.Fatal(err)
	}
	if got[0].msgID != ev.ID || ev.ID == "" || ev.Type != "nexus.provider.misconfigured.v1" || ev.ProviderID != providerID ||
		ev.Provider != "test-provider" || ev.OccurredAt.IsZero() || ev.Reason == nil || ev.Reason.Code != "invalid_client" {
		t.Fatalf("misconfigured event = %s", got[0].body)
	}
	if s := e.get(c.ConnectionID).Status; s != messages.StatusActive {
		t.Fatalf("status = %s", s)
	}
}
