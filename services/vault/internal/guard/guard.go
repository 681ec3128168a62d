// Package guard keeps one provider's trouble to that provider: a bound on
// the calls in flight to each provider from this replica, and a circuit
// breaker per provider that, after repeated transient failures (timeouts,
// 5xx, 429), fails calls at once for a cool-down instead of letting every
// caller wait for a provider that is down, then lets one call through to
// probe it.
package guard

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/nexus-broker/nexus/services/vault/internal/provider"
)

// Defaults.
const (
	DefaultConcurrency = 16
	DefaultTrip        = 5
	DefaultCoolDown    = 30 * time.Second
)

// Config sizes a Guard; zero values take the defaults.
type Config struct {
	// Concurrency bounds the calls in flight to one provider.
	Concurrency int
	// Trip is how many transient failures in a row open the breaker.
	Trip int
	// CoolDown is how long an open breaker fails calls before it lets a
	// probe through.
	CoolDown time.Duration
	Log      *slog.Logger
}

// Guard guards calls per provider. It is safe for concurrent use.
type Guard struct {
	cfg Config
	mu  sync.Mutex
	per map[string]*entry
}

type entry struct {
	slots   chan struct{}
	breaker *gobreaker.CircuitBreaker[struct{}]
	mu      sync.Mutex
	openAt  time.Time
}

// New returns a Guard.
func New(cfg Config) *Guard {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Trip <= 0 {
		cfg.Trip = DefaultTrip
	}
	if cfg.CoolDown <= 0 {
		cfg.CoolDown = DefaultCoolDown
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Guard{cfg: cfg, per: map[string]*entry{}}
}

func (g *Guard) entry(providerID string) *entry {
	g.mu.Lock()
	defer g.mu.Unlock()
	e, ok := g.per[providerID]
	if !ok {
		e = &entry{slots: make(chan struct{}, g.cfg.Concurrency)}
		e.breaker = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        providerID,
			MaxRequests: 1,
			Timeout:     g.cfg.CoolDown,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(g.cfg.Trip) },
			// Only a provider that does not answer, or answers 5xx/429,
			// counts against it: a refusal is an answer.
			IsSuccessful: func(err error) bool {
				return err == nil || !errors.Is(err, provider.ErrTransient) || errors.Is(err, errGuard)
			},
			OnStateChange: func(name string, from, to gobreaker.State) {
				e.mu.Lock()
				if to == gobreaker.StateOpen {
					e.openAt = time.Now()
				}
				e.mu.Unlock()
				g.cfg.Log.Warn("provider circuit breaker", "provider_id", name, "from", from.String(), "to", to.String())
			},
		})
		g.per[providerID] = e
	}
	return e
}

// errGuard marks the guard's own refusals, which say nothing of the provider.
var errGuard = errors.New("guard")

// Do runs call for providerID unless the provider's breaker is open or its
// calls in flight stay at the bound until ctx ends; both refusals are
// transient *provider.Error values (unavailable to callers, retried later by
// the refresher), the first with the cool-down left as RetryAfter.
func (g *Guard) Do(ctx context.Context, providerID, endpoint string, call func() error) error {
	return g.DoWithin(ctx, providerID, endpoint, 0, call)
}

// DoWithin is Do for a call that must not start with less than need left
// before ctx's deadline once a slot is free: a refresh whose provider may
// rotate the refresh token must have time to read the answer and store it,
// so queueing behind a slow provider must not eat that time.
func (g *Guard) DoWithin(ctx context.Context, providerID, endpoint string, need time.Duration, call func() error) error {
	e := g.entry(providerID)
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		return &provider.Error{Kind: provider.Transient, Endpoint: endpoint, Err: errors.Join(errGuard, errors.New("too many calls to this provider in flight"))}
	}
	defer func() { <-e.slots }()
	if dl, ok := ctx.Deadline(); ok && need > 0 && time.Until(dl) < need {
		return &provider.Error{Kind: provider.Transient, Endpoint: endpoint,
			Err: errors.Join(errGuard, errors.New("waited for a free call to this provider until too little time was left; not called"))}
	}
	_, err := e.breaker.Execute(func() (struct{}, error) { return struct{}{}, call() })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		e.mu.Lock()
		left := g.cfg.CoolDown - time.Since(e.openAt)
		e.mu.Unlock()
		return &provider.Error{Kind: provider.Transient, Endpoint: endpoint, RetryAfter: max(left, time.Second),
			Err: errors.Join(errGuard, errors.New("the provider failed repeatedly; calls are paused for a moment"))}
	}
	return err
}
