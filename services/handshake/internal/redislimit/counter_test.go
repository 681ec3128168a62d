package redislimit

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/shared/ratelimit"
	"github.com/nexus-broker/nexus/shared/redisx"
	"github.com/nexus-broker/nexus/shared/testkit"
)

// TestCountRequest against the real Redis: a window takes its limit and no
// more, a request is counted in every window or in none, two counters (two
// replicas) share the counts, and the keys live under the prefix for as long
// as their window.
func TestCountRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, err := redisx.Connect(ctx, testkit.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	prefix := "nexus:test:" + testkit.RandomHex(t, 6) + ":"
	now := time.Date(2030, 1, 1, 12, 0, 15, 0, time.UTC)
	clock := func() time.Time { return now }
	a, b := New(rdb, prefix, clock), New(rdb, prefix, clock)

	start := now.Truncate(time.Minute)
	win := func(key string, limit int) ratelimit.Window {
		return ratelimit.Window{Key: key, Start: start, End: start.Add(time.Minute), Limit: limit}
	}
	key, ws := win("handshake.begin:key:k1", 3), win("handshake.begin:workspace:ws-1", 2)
	count := func(c *Counter, ws ...ratelimit.Window) []int {
		t.Helper()
		full, err := c.CountRequest(ctx, ws)
		if err != nil {
			t.Fatal(err)
		}
		return full
	}
	if full := count(a, key, ws); len(full) != 0 {
		t.Fatalf("first request: full %v", full)
	}
	if full := count(b, key, ws); len(full) != 0 { // the other replica
		t.Fatalf("second request: full %v", full)
	}
	if full := count(a, key, ws); !slices.Equal(full, []int{1}) {
		t.Fatalf("third request: full %v, want the workspace's window", full)
	}
	// The refused request was given back to the key's window: one more
	// fits there, in another workspace, and then it is full too.
	if full := count(b, key, win("handshake.begin:workspace:ws-2", 2)); len(full) != 0 {
		t.Fatalf("the key's third request: full %v", full)
	}
	if full := count(a, key, ws); !slices.Equal(full, []int{0, 1}) {
		t.Fatalf("full %v, want both", full)
	}
	for k, want := range map[string]string{a.Key(key): "3", a.Key(ws): "2"} {
		if got, err := rdb.Get(ctx, k).Result(); err != nil || got != want {
			t.Errorf("%s = %q (%v), want %q", k, got, err, want)
		}
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil || ttl <= 45*time.Second || ttl > 45*time.Second+skew {
			t.Errorf("%s lives %v (%v), want the window's remaining 45s and %v", k, ttl, err, skew)
		}
	}
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil || len(keys) != 3 {
		t.Fatalf("keys under the prefix: %v (%v)", keys, err)
	}

	// The next window starts from nothing.
	next := key
	next.Start, next.End = key.End, key.End.Add(time.Minute)
	if full := count(a, next); len(full) != 0 {
		t.Fatalf("next window: full %v", full)
	}
}
