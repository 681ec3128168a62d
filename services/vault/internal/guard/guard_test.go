package guard

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/services/vault/internal/provider"
)

var (
	down    = &provider.Error{Kind: provider.Transient, Endpoint: "token", Err: errors.New("timeout")}
	refused = &provider.Error{Kind: provider.Permanent, Endpoint: "token", Code: "invalid_grant"}
)

func TestBreakerOpensOnTransientFailuresOnly(t *testing.T) {
	g := New(Config{Trip: 3, CoolDown: 300 * time.Millisecond})
	ctx := context.Background()
	calls := 0
	fail := func(err error) func() error { return func() error { calls++; return err } }
	// Refusals are answers: they never open it.
	for range 10 {
		if err := g.Do(ctx, "p", "token", fail(refused)); !errors.Is(err, provider.ErrPermanent) {
			t.Fatalf("a refusal came back as %v", err)
		}
	}
	for range 3 {
		_ = g.Do(ctx, "p", "token", fail(down))
	}
	before := calls
	err := g.Do(ctx, "p", "token", fail(nil))
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.Transient || pe.RetryAfter <= 0 || calls != before {
		t.Fatalf("after 3 failures in a row the call went through or was not refused transiently: %v (calls %d -> %d)", err, before, calls)
	}
	// Another provider is not affected.
	if err := g.Do(ctx, "q", "token", fail(nil)); err != nil {
		t.Fatalf("another provider: %v", err)
	}
	time.Sleep(350 * time.Millisecond)
	if err := g.Do(ctx, "p", "token", fail(nil)); err != nil || calls != before+2 {
		t.Fatalf("after the cool-down the probe was refused: %v", err)
	}
	if err := g.Do(ctx, "p", "token", fail(nil)); err != nil {
		t.Fatalf("after a good probe: %v", err)
	}
}

func TestConcurrencyBound(t *testing.T) {
	g := New(Config{Concurrency: 2})
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	for range 2 {
		go func() {
			_ = g.Do(context.Background(), "slow", "token", func() error { started <- struct{}{}; <-release; return nil })
		}()
	}
	<-started
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := g.Do(ctx, "slow", "token", func() error { t.Error("a third call ran past the bound"); return nil })
	if !errors.Is(err, provider.ErrTransient) {
		t.Fatalf("the third call: %v, want a transient refusal", err)
	}
	if err := g.Do(context.Background(), "fast", "token", func() error { return nil }); err != nil {
		t.Fatalf("another provider waited for the slow one: %v", err)
	}
	close(release)
	// The guard's own refusals do not open the breaker.
	for range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		_ = g.Do(ctx, "busy", "token", func() error { return nil })
		cancel()
	}
	if err := g.Do(context.Background(), "busy", "token", func() error { return nil }); err != nil {
		t.Fatalf("the guard's own refusals opened the breaker: %v", err)
	}
}

// TestQueueingLeavesTimeForTheCall: a refresh that waited for a free call to
// a slow provider is not started with less than it needs left (the provider
// would rotate the refresh token and answer too late to store it), and the
// refusal does not count against the provider.
func TestQueueingLeavesTimeForTheCall(t *testing.T) {
	g := New(Config{Concurrency: 1, Trip: 1})
	release := make(chan struct{})
	busy := make(chan struct{})
	go func() {
		_ = g.Do(context.Background(), "p", "token", func() error { close(busy); <-release; return nil })
	}()
	<-busy
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	time.AfterFunc(200*time.Millisecond, func() { close(release) })
	called := false
	err := g.DoWithin(ctx, "p", "token", 300*time.Millisecond, func() error { called = true; return nil })
	if called || !errors.Is(err, provider.ErrTransient) {
		t.Fatalf("started with under 300ms left: called %v, err %v", called, err)
	}
	// With the time it needs, it runs; the refusal above did not trip the breaker.
	if err := g.DoWithin(context.Background(), "p", "token", 300*time.Millisecond, func() error { called = true; return nil }); err != nil || !called {
		t.Fatalf("a call with time enough: called %v, err %v", called, err)
	}
}
