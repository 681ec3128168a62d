package ratelimit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-broker/nexus/messages"
)

// memCounter is the Counter contract kept in memory, so that the limiter's
// own rules can be checked alone; the services test theirs (Redis,
// PostgreSQL) with the real servers.
type memCounter struct {
	mu     sync.Mutex
	counts map[string]int // key and window start
	err    error
	calls  int
}

func (m *memCounter) CountRequest(_ context.Context, ws []Window) ([]int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.err != nil {
		return nil, m.err
	}
	if m.counts == nil {
		m.counts = map[string]int{}
	}
	var full []int
	for i, w := range ws {
		if m.counts[w.Key+w.Start.String()] >= w.Limit {
			full = append(full, i)
		}
	}
	if len(full) == 0 {
		for _, w := range ws {
			m.counts[w.Key+w.Start.String()]++
		}
	}
	return full, nil
}

// counter is the value of the counter name in reg with labels, and how many
// series of that name there are.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (value float64, series int) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			series++
			match := true
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					match = false
				}
			}
			if match {
				value = m.GetCounter().GetValue()
			}
		}
	}
	return value, series
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newLimiter(t *testing.T, limits Limits, c Counter, clock *testClock, reg prometheus.Registerer, log *slog.Logger) *Limiter {
	t.Helper()
	l, err := New(Options{Endpoint: "test.endpoint", Limits: limits, Counter: c, Now: clock.now, Registerer: reg, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func wantRetry(t *testing.T, err error, seconds int) {
	t.Helper()
	var me *messages.Error
	if !errors.As(err, &me) || me.Code != messages.CodeRateLimited || me.RetryAfterSeconds != seconds {
		t.Fatalf("error = %#v, want rate_limited retrying after %ds", err, seconds)
	}
}

func TestLimiterScopes(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{t: time.Date(2030, 1, 1, 12, 0, 10, 0, time.UTC)}
	reg := prometheus.NewRegistry()
	l := newLimiter(t, Limits{PerKey: Rate{5, time.Minute}, PerWorkspace: Rate{3, time.Minute}}, &memCounter{}, clock, reg, nil)
	refused := func(scope string) float64 {
		v, _ := counter(t, reg, "nexus_rate_limited_total", map[string]string{"endpoint": "test.endpoint", "scope": scope})
		return v
	}

	for i := range 3 {
		if err := l.Allow(ctx, "k1", "ws-1"); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	err := l.Allow(ctx, "k1", "ws-1")
	wantRetry(t, err, 50)
	if !strings.Contains(err.Error(), "this workspace") {
		t.Errorf("message %q does not name the scope", err)
	}
	if refused(ScopeWorkspace) != 1 || refused(ScopeKey) != 0 {
		t.Errorf("refusals: workspace %v, key %v", refused(ScopeWorkspace), refused(ScopeKey))
	}
	// The refused request did not count against the key: two more fit in
	// other workspaces, and the third is the key's sixth.
	for _, ws := range []string{"ws-2", "ws-3"} {
		if err := l.Allow(ctx, "k1", ws); err != nil {
			t.Fatalf("%s: %v", ws, err)
		}
	}
	wantRetry(t, l.Allow(ctx, "k1", "ws-4"), 50)
	if refused(ScopeKey) != 1 {
		t.Errorf("key refusals = %v", refused(ScopeKey))
	}
	// Another key still reaches another workspace; not ws-1, which is full.
	if err := l.Allow(ctx, "k2", "ws-4"); err != nil {
		t.Fatal(err)
	}
	wantRetry(t, l.Allow(ctx, "k2", "ws-1"), 50)

	// The next window opens at 12:01.
	clock.advance(49 * time.Second)
	wantRetry(t, l.Allow(ctx, "k1", "ws-1"), 1)
	clock.advance(time.Second)
	if err := l.Allow(ctx, "k1", "ws-1"); err != nil {
		t.Fatalf("in the next window: %v", err)
	}
	// A caller without a key id or a workspace is counted in the other scope only.
	for range 2 {
		if err := l.Allow(ctx, "", "ws-1"); err != nil {
			t.Fatal(err)
		}
	}
	wantRetry(t, l.Allow(ctx, "", "ws-1"), 60)
}

// When both limits are reached, the hint is the later of the two.
func TestLimiterRetryNamesTheLastLimitToOpen(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{t: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}
	l := newLimiter(t, Limits{PerKey: Rate{1, time.Minute}, PerWorkspace: Rate{1, time.Hour}}, &memCounter{}, clock, nil, nil)
	if err := l.Allow(ctx, "k", "ws"); err != nil {
		t.Fatal(err)
	}
	wantRetry(t, l.Allow(ctx, "k", "ws"), 3600)
}

func TestLimiterOff(t *testing.T) {
	c := &memCounter{}
	l := newLimiter(t, Limits{}, c, &testClock{t: time.Now()}, nil, nil)
	for range 10 {
		if err := l.Allow(context.Background(), "k", "ws"); err != nil {
			t.Fatal(err)
		}
	}
	if c.calls != 0 {
		t.Fatalf("the counter was asked %d times with no limit set", c.calls)
	}
}

// A store that fails lets requests through, counted and logged: at most one
// warning every 10 seconds, saying how many went through unchecked.
func TestLimiterFailsOpenLoudly(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	clock := &testClock{t: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}
	c := &memCounter{err: errors.New("redis: connection refused")}
	reg := prometheus.NewRegistry()
	l := newLimiter(t, Limits{PerKey: Rate{1, time.Minute}}, c, clock, reg, log)
	for range 5 {
		if err := l.Allow(context.Background(), "k", "ws"); err != nil {
			t.Fatalf("a failed check refused the request: %v", err)
		}
	}
	clock.advance(warnEvery)
	if err := l.Allow(context.Background(), "k", "ws"); err != nil {
		t.Fatal(err)
	}
	if n, _ := counter(t, reg, "nexus_rate_limit_unchecked_total", map[string]string{"endpoint": "test.endpoint"}); n != 6 {
		t.Errorf("unchecked = %v, want 6", n)
	}
	if n := strings.Count(logs.String(), "rate limits not checked"); n != 2 {
		t.Errorf("%d warnings, want 2:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "unchecked=5") || !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("the warnings do not say how many went through and why:\n%s", logs.String())
	}

	// A request whose own context has ended is not let through.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Allow(ctx, "k", "ws"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Allow with a cancelled request = %v", err)
	}
}

// Limiters of one registry share its counters.
func TestLimitersShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	clock := &testClock{t: time.Now()}
	for _, ep := range []string{"a.one", "b.two"} {
		if _, err := New(Options{Endpoint: ep, Limits: Limits{PerKey: Rate{1, time.Second}}, Counter: &memCounter{}, Now: clock.now, Registerer: reg}); err != nil {
			t.Fatalf("%s: %v", ep, err)
		}
	}
	if _, n := counter(t, reg, "nexus_rate_limited_total", nil); n != 4 {
		t.Fatalf("series = %d, want 2 endpoints x 2 scopes", n)
	}
}
