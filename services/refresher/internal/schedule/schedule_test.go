package schedule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/refresher/internal/backoff"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// fakeVault answers from memory; these tests are about the loop's decisions,
// the real vault is exercised by the refresher package's tests.
type fakeVault struct {
	mu       sync.Mutex
	claims   [][]messages.RefreshItem // returned in turn, then empty
	claimReq []messages.RefreshClaim
	run      func(messages.RefreshRun) (messages.RefreshRunReply, error)
	defers   []messages.RefreshDefer
	inFlight int
	maxIn    int
	// runTimeout is the claims' RunTimeoutSeconds; runTimeouts what the
	// runs were given to wait.
	runTimeout  int
	runTimeouts []time.Duration
}

func (f *fakeVault) ClaimRefresh(_ context.Context, r messages.RefreshClaim) (messages.RefreshClaimReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.claimReq = append(f.claimReq, r)
	if len(f.claims) == 0 {
		return messages.RefreshClaimReply{}, nil
	}
	items := f.claims[0]
	f.claims = f.claims[1:]
	return messages.RefreshClaimReply{Items: items, RunTimeoutSeconds: f.runTimeout}, nil
}

func (f *fakeVault) RunRefresh(ctx context.Context, r messages.RefreshRun, timeout time.Duration) (messages.RefreshRunReply, error) {
	f.mu.Lock()
	f.inFlight++
	f.maxIn = max(f.maxIn, f.inFlight)
	f.runTimeouts = append(f.runTimeouts, timeout)
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.inFlight--; f.mu.Unlock() }()
	return f.run(r)
}

func (f *fakeVault) DeferRefresh(_ context.Context, r messages.RefreshDefer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.defers = append(f.defers, r)
	return nil
}

func items(n int) []messages.RefreshItem {
	out := make([]messages.RefreshItem, n)
	for i := range out {
		out[i] = messages.RefreshItem{ConnectionID: fmt.Sprintf("c%d", i), TokenVersion: int64(i)}
	}
	return out
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newScheduler(v Vault, cfg Config) *Scheduler {
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return t0 }
	}
	if cfg.Backoff.Base == 0 {
		cfg.Backoff = backoff.Policy{Base: 2 * time.Second, Max: 10 * time.Minute, Rand: func() float64 { return 0 }}
	}
	return New(v, cfg)
}

func TestTransientFailureIsDeferred(t *testing.T) {
	tests := []struct {
		name      string
		item      messages.RefreshItem
		reply     messages.RefreshRunReply
		wantDelay time.Duration
	}{
		{"first failure waits half the base at least", messages.RefreshItem{}, messages.RefreshRunReply{Attempts: 1}, time.Second},
		{"third failure", messages.RefreshItem{}, messages.RefreshRunReply{Attempts: 3}, 4 * time.Second},
		{"Retry-After longer than backoff wins", messages.RefreshItem{}, messages.RefreshRunReply{Attempts: 1, RetryAfterSeconds: 120}, 2 * time.Minute},
		{"Retry-After beyond the cap still wins", messages.RefreshItem{}, messages.RefreshRunReply{Attempts: 30, RetryAfterSeconds: 3600}, time.Hour},
		{"cap", messages.RefreshItem{}, messages.RefreshRunReply{Attempts: 30}, 5 * time.Minute},
		{"attempts missing: the claim's count plus one", messages.RefreshItem{Attempts: 2}, messages.RefreshRunReply{}, 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := tt.item
			it.ConnectionID = "c1"
			v := &fakeVault{claims: [][]messages.RefreshItem{{it}}, run: func(r messages.RefreshRun) (messages.RefreshRunReply, error) {
				rep := tt.reply
				rep.ConnectionID, rep.Outcome = r.ConnectionID, messages.RefreshTransient
				return rep, nil
			}}
			s := newScheduler(v, Config{})
			if n, err := s.RunOnce(context.Background()); err != nil || n != 1 {
				t.Fatalf("RunOnce = %d, %v", n, err)
			}
			if len(v.defers) != 1 || v.defers[0].ConnectionID != "c1" {
				t.Fatalf("defers = %+v", v.defers)
			}
			if got := v.defers[0].Until.Sub(t0); got != tt.wantDelay {
				t.Fatalf("deferred by %v, want %v", got, tt.wantDelay)
			}
			if got := testutil.ToFloat64(s.cfg.Metrics.Outcomes.WithLabelValues("transient")); got != 1 {
				t.Fatalf("transient outcomes = %v", got)
			}
			if got := testutil.CollectAndCount(s.cfg.Metrics.Backoff); got != 1 {
				t.Fatalf("backoff histogram series = %d", got)
			}
		})
	}
}

func TestOutcomesThatAreNotDeferred(t *testing.T) {
	tests := []struct {
		name    string
		reply   messages.RefreshRunReply
		err     error
		outcome string
	}{
		{"refreshed", messages.RefreshRunReply{Outcome: messages.RefreshDone}, nil, "refreshed"},
		{"not needed", messages.RefreshRunReply{Outcome: messages.RefreshNotNeeded}, nil, "not_needed"},
		{"attention", messages.RefreshRunReply{Outcome: messages.RefreshAttention, Reason: &messages.Reason{Code: "invalid_grant"}}, nil, "attention_required"},
		{"vault answers unavailable", messages.RefreshRunReply{}, messages.Errorf(messages.CodeUnavailable, "no answer"), OutcomeError},
		{"vault error", messages.RefreshRunReply{}, errors.New("boom"), OutcomeError},
		{"unknown outcome", messages.RefreshRunReply{Outcome: "weird"}, nil, OutcomeError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &fakeVault{claims: [][]messages.RefreshItem{items(3)}, run: func(messages.RefreshRun) (messages.RefreshRunReply, error) { return tt.reply, tt.err }}
			s := newScheduler(v, Config{Concurrency: 2})
			if _, err := s.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if len(v.defers) != 0 {
				t.Fatalf("deferred: %+v", v.defers)
			}
			if got := testutil.ToFloat64(s.cfg.Metrics.Outcomes.WithLabelValues(tt.outcome)); got != 3 {
				t.Fatalf("%s outcomes = %v, want 3", tt.outcome, got)
			}
		})
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	release := make(chan struct{})
	v := &fakeVault{claims: [][]messages.RefreshItem{items(20)}, run: func(messages.RefreshRun) (messages.RefreshRunReply, error) {
		<-release
		return messages.RefreshRunReply{Outcome: messages.RefreshDone}, nil
	}}
	s := newScheduler(v, Config{Concurrency: 4, Batch: 20, Owner: "o1"})
	done := make(chan struct{})
	go func() { defer close(done); _, _ = s.RunOnce(context.Background()) }()
	// Let the workers pile up on release, then open it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		v.mu.Lock()
		n := v.inFlight
		v.mu.Unlock()
		if n == 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	<-done
	if v.maxIn != 4 {
		t.Fatalf("max runs in flight = %d, want 4", v.maxIn)
	}
	if got := testutil.ToFloat64(s.cfg.Metrics.Outcomes.WithLabelValues("refreshed")); got != 20 {
		t.Fatalf("refreshed = %v", got)
	}
	if r := v.claimReq[0]; r.Limit != 20 || r.LeaseSeconds != 60 || r.Owner != "o1" {
		t.Fatalf("claim = %+v", r)
	}
}

func TestItemsWhoseLeaseRanOutAreSkipped(t *testing.T) {
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	v := &fakeVault{claims: [][]messages.RefreshItem{items(3)}, run: func(messages.RefreshRun) (messages.RefreshRunReply, error) {
		mu.Lock()
		now = now.Add(time.Minute) // a slow provider: the lease is gone after the first
		mu.Unlock()
		return messages.RefreshRunReply{Outcome: messages.RefreshDone}, nil
	}}
	s := newScheduler(v, Config{Concurrency: 1, Lease: time.Minute, Now: clock})
	if _, err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(s.cfg.Metrics.Outcomes.WithLabelValues("refreshed")); got != 1 {
		t.Fatalf("refreshed = %v, want 1", got)
	}
	if got := testutil.ToFloat64(s.cfg.Metrics.Outcomes.WithLabelValues(OutcomeLeaseExpired)); got != 2 {
		t.Fatalf("lease_expired = %v, want 2", got)
	}
}

func TestRunClaimsAgainAtOnceAfterAFullBatch(t *testing.T) {
	v := &fakeVault{claims: [][]messages.RefreshItem{items(5), items(5), items(2)}, run: func(messages.RefreshRun) (messages.RefreshRunReply, error) {
		return messages.RefreshRunReply{Outcome: messages.RefreshDone}, nil
	}}
	// An hour between polls: only "claim again when full" can reach the third batch.
	s := newScheduler(v, Config{Batch: 5, PollInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(s.cfg.Metrics.Outcomes.WithLabelValues("refreshed")) < 12 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if got := testutil.ToFloat64(s.cfg.Metrics.Outcomes.WithLabelValues("refreshed")); got != 12 {
		t.Fatalf("refreshed = %v, want 12", got)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.claimReq) != 3 {
		t.Fatalf("claims = %d, want 3 (the one after a short batch waits for the poll)", len(v.claimReq))
	}
}

// A run that gets no answer (the vault died mid-run, or none is there) is
// retried within seconds, not left leased until the lease ends; an error
// the vault answered is not.
func TestRunWithoutAnswerIsRetriedSoon(t *testing.T) {
	for _, tt := range []struct {
		name     string
		err      error
		deferred bool
	}{
		{"no answer", natsx.ErrNoAnswer, true},
		{"an answer", messages.ErrUnavailable, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := &fakeVault{claims: [][]messages.RefreshItem{{{ConnectionID: "c1", Attempts: 7}}}, run: func(messages.RefreshRun) (messages.RefreshRunReply, error) {
				return messages.RefreshRunReply{}, tt.err
			}}
			s := newScheduler(v, Config{Lease: time.Minute})
			if _, err := s.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !tt.deferred {
				if len(v.defers) != 0 {
					t.Fatalf("defers = %+v", v.defers)
				}
				return
			}
			// The backoff's first delay, whatever the connection's attempts.
			if len(v.defers) != 1 || v.defers[0].ConnectionID != "c1" || v.defers[0].Until.Sub(t0) != time.Second {
				t.Fatalf("defers = %+v", v.defers)
			}
			if got := testutil.ToFloat64(s.cfg.Metrics.Outcomes.WithLabelValues(OutcomeNoAnswer)); got != 1 {
				t.Fatalf("no_answer outcomes = %v", got)
			}
		})
	}
}

// The run's deadline is the vault's budget plus a margin when the vault
// names one, else vaultapi.DefaultTimeout.
func TestRunTimeoutFollowsTheVaultsBudget(t *testing.T) {
	for _, tt := range []struct {
		budget int
		want   time.Duration
	}{
		{20, 20*time.Second + runMargin},
		{0, 0}, // the client's default (vaultapi.DefaultTimeout)
	} {
		v := &fakeVault{runTimeout: tt.budget, claims: [][]messages.RefreshItem{{{ConnectionID: "c1"}}}, run: func(messages.RefreshRun) (messages.RefreshRunReply, error) {
			return messages.RefreshRunReply{Outcome: messages.RefreshDone}, nil
		}}
		if _, err := newScheduler(v, Config{}).RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := v.runTimeouts[0]; got != tt.want {
			t.Fatalf("budget %ds: run timeout %v, want %v", tt.budget, got, tt.want)
		}
	}
}
