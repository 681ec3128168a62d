package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-broker/nexus/messages"
)

// The scopes a request is counted in.
const (
	// ScopeKey counts the requests of one Gateway key, by its KeyID (a
	// fingerprint, never the key).
	ScopeKey = "key"
	// ScopeWorkspace counts the requests for one workspace, whichever key
	// makes them.
	ScopeWorkspace = "workspace"
)

// Limits are an endpoint's rates per Gateway key and per workspace; a zero
// Rate is no limit in that scope.
type Limits struct {
	PerKey, PerWorkspace Rate
}

// Window is one counter a request is counted in: the counter of Key (the
// endpoint, scope and subject, such as "tokens.refresh:workspace:ws-1") for
// the window [Start, End), which may hold at most Limit requests.
type Window struct {
	Key        string
	Start, End time.Time
	Limit      int
}

// Counter keeps the windows' counts where every replica sees them.
// CountRequest counts one request in every window or in none: when some
// are already at their limit it counts nothing and returns their indexes,
// otherwise it adds one to each and returns none. A request refused does
// not count, so a caller that keeps retrying is let in again when the
// window ends.
type Counter interface {
	CountRequest(ctx context.Context, windows []Window) (full []int, err error)
}

// checkTimeout bounds a check, so that a store that hangs costs a request
// this much at most before it goes ahead unchecked.
const checkTimeout = 2 * time.Second

// warnEvery spaces the warnings about unchecked requests.
const warnEvery = 10 * time.Second

// Options configure a Limiter.
type Options struct {
	// Endpoint names what is limited, in keys, messages and metrics:
	// "handshake.begin", "tokens.refresh".
	Endpoint string
	Limits   Limits
	Counter  Counter
	// Now is the clock (time.Now when nil); windows are read from it.
	Now func() time.Time
	Log *slog.Logger
	// Registerer receives the counters of refusals and of unchecked
	// requests; nil for none. Limiters of one registry share them.
	Registerer prometheus.Registerer
}

// Limiter checks an endpoint's requests against its limits.
type Limiter struct {
	o         Options
	refused   *prometheus.CounterVec
	unchecked prometheus.Counter

	mu           sync.Mutex
	lastWarn     time.Time
	quietFailing int // unchecked requests since the last warning
}

// New returns the limiter for o.Endpoint.
func New(o Options) (*Limiter, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Endpoint == "" || (o.Counter == nil && (o.Limits.PerKey.On() || o.Limits.PerWorkspace.On())) {
		return nil, errors.New("ratelimit: a limiter needs an endpoint and, with limits, a counter")
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nexus_rate_limited_total",
		Help: "Requests refused with rate_limited, by endpoint and by the scope whose limit was reached (key: one Gateway key; workspace).",
	}, []string{"endpoint", "scope"})
	unchecked := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nexus_rate_limit_unchecked_total",
		Help: "Requests let through without a rate-limit check because the store holding the counts failed (Redis, PostgreSQL): while this grows, the endpoint's limits are off.",
	}, []string{"endpoint"})
	if o.Registerer != nil {
		var err error
		if refused, err = register(o.Registerer, refused); err != nil {
			return nil, err
		}
		if unchecked, err = register(o.Registerer, unchecked); err != nil {
			return nil, err
		}
	}
	l := &Limiter{o: o, refused: refused, unchecked: unchecked.WithLabelValues(o.Endpoint)}
	// Every series exists from the start, at 0, for dashboards and alerts.
	l.refused.WithLabelValues(o.Endpoint, ScopeKey)
	l.refused.WithLabelValues(o.Endpoint, ScopeWorkspace)
	return l, nil
}

// register registers c with r, or returns the one of the same name already
// there (another limiter's).
func register(r prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	err := r.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing, nil
		}
	}
	return c, err
}

// Allow counts a request of the Gateway key keyID (its KeyID) for
// workspace. Over a limit it returns a *messages.Error rate_limited whose
// RetryAfterSeconds says when the limit reached opens again (the latest,
// when both are reached); an empty keyID or workspace is not counted in
// that scope.
//
// When the store of the counts fails, the request goes ahead (fail open)
// and the failure is counted (nexus_rate_limit_unchecked_total) and logged.
// The limits keep a Gateway from exhausting a provider or the vault; a
// Redis or PostgreSQL failure must not also stop every consent and refresh
// that would otherwise succeed. A PostgreSQL outage stops the vault, and a
// Redis outage handshake.begin, anyway; what fail open lets through is a
// partial failure, such as one Redis Cluster shard down or a check timing
// out, and it is not silent: alert on the counter.
func (l *Limiter) Allow(ctx context.Context, keyID, workspace string) error {
	now := l.o.Now()
	var (
		windows []Window
		scopes  []string
	)
	for _, s := range []struct {
		scope, subject string
		rate           Rate
	}{{ScopeKey, keyID, l.o.Limits.PerKey}, {ScopeWorkspace, workspace, l.o.Limits.PerWorkspace}} {
		if !s.rate.On() || s.subject == "" {
			continue
		}
		start, end := s.rate.window(now)
		windows = append(windows, Window{Key: l.o.Endpoint + ":" + s.scope + ":" + s.subject, Start: start, End: end, Limit: s.rate.Limit})
		scopes = append(scopes, s.scope)
	}
	if len(windows) == 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	full, err := l.o.Counter.CountRequest(cctx, windows)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // the request itself is over
		}
		l.failedOpen(now, err)
		return nil
	}
	if len(full) == 0 {
		return nil
	}
	// The answer names the limit that opens last: retrying sooner would
	// be refused again.
	worst := full[0]
	for _, i := range full[1:] {
		if windows[i].End.After(windows[worst].End) {
			worst = i
		}
	}
	l.refused.WithLabelValues(l.o.Endpoint, scopes[worst]).Inc()
	retry := retryAfter(now, windows[worst].End)
	what := "this key"
	if scopes[worst] == ScopeWorkspace {
		what = "this workspace"
	}
	return &messages.Error{
		Code:              messages.CodeRateLimited,
		Message:           fmt.Sprintf("too many %s requests for %s; retry in %d seconds", l.o.Endpoint, what, retry),
		RetryAfterSeconds: retry,
	}
}

// failedOpen counts a request let through unchecked and warns, at most
// once every warnEvery, with how many went through since the last warning.
func (l *Limiter) failedOpen(now time.Time, err error) {
	l.unchecked.Inc()
	l.mu.Lock()
	l.quietFailing++
	n := l.quietFailing
	warn := l.lastWarn.IsZero() || now.Sub(l.lastWarn) >= warnEvery || now.Before(l.lastWarn)
	if warn {
		l.lastWarn, l.quietFailing = now, 0
	}
	l.mu.Unlock()
	if warn {
		l.o.Log.Warn("rate limits not checked: the store of the counts failed, so requests go ahead unlimited",
			"endpoint", l.o.Endpoint, "unchecked", n, "err", err)
	}
}
