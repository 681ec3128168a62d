// Package schedule is the refresher's claim/run loop: it leases due
// connections from the vault, has the vault refresh each with bounded
// concurrency, and after a transient failure tells the vault when to try
// again (exponential backoff with jitter, never before Retry-After).
//
// The vault owns the schedule (due time, attempts, leases); this loop holds
// nothing that a restart would lose. A run that got no answer (the vault
// died, or none is there) is deferred to a short retry rather than left
// leased: the vault that comes back, or another replica, takes it then.
package schedule

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/refresher/internal/backoff"
	"github.com/nexus-broker/nexus/services/refresher/internal/vaultapi"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/telemetry"
)

// Vault is what the loop asks of the vault.
type Vault interface {
	ClaimRefresh(ctx context.Context, r messages.RefreshClaim) (messages.RefreshClaimReply, error)
	RunRefresh(ctx context.Context, r messages.RefreshRun, timeout time.Duration) (messages.RefreshRunReply, error)
	DeferRefresh(ctx context.Context, r messages.RefreshDefer) error
}

var _ Vault = (*vaultapi.Client)(nil)

// Config tunes the loop.
type Config struct {
	Owner        string        // this replica's id, the lease holder
	Batch        int           // connections per claim
	Lease        time.Duration // how long a claim keeps them from other replicas
	Concurrency  int           // runs in flight at once
	PollInterval time.Duration // pause between claims that were not full
	Backoff      backoff.Policy
	Now          func() time.Time // nil: time.Now
	Log          *slog.Logger
	Metrics      *Metrics // nil: unregistered collectors
}

// runMargin is added to the vault's run budget (RunTimeoutSeconds) for the
// way over NATS and a busy vault's queue.
const runMargin = 2 * time.Second

// Scheduler runs the loop.
type Scheduler struct {
	cfg   Config
	vault Vault
}

// New returns a Scheduler. Zero values in cfg get sensible defaults.
func New(v Vault, cfg Config) *Scheduler {
	if cfg.Batch <= 0 {
		cfg.Batch = 100
	}
	if cfg.Lease <= 0 {
		cfg.Lease = time.Minute
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics, _ = NewMetrics(nil)
	}
	return &Scheduler{cfg: cfg, vault: v}
}

// Run claims and runs batches until ctx ends: again at once after a full
// batch (there may be more due), otherwise after the poll interval.
func (s *Scheduler) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.RunOnce(ctx)
		if err == nil && n >= s.cfg.Batch {
			t.Reset(0)
			continue
		}
		t.Reset(s.cfg.PollInterval)
	}
}

// RunOnce claims one batch, runs every item in it and returns how many were
// claimed. An error means the claim itself failed.
func (s *Scheduler) RunOnce(ctx context.Context) (int, error) {
	claimedAt := s.cfg.Now()
	claim, err := s.vault.ClaimRefresh(ctx, messages.RefreshClaim{
		Owner:        s.cfg.Owner,
		Limit:        s.cfg.Batch,
		LeaseSeconds: int((s.cfg.Lease + time.Second - 1) / time.Second),
	})
	if err != nil {
		if ctx.Err() == nil {
			s.cfg.Metrics.VaultErrors.WithLabelValues("claim").Inc()
			s.cfg.Log.Warn("refresh claim failed", "err", err)
		}
		return 0, err
	}
	items := claim.Items
	var timeout time.Duration // the client's default when the vault names none
	if claim.RunTimeoutSeconds > 0 {
		timeout = time.Duration(claim.RunTimeoutSeconds)*time.Second + runMargin
	}
	s.cfg.Metrics.Claimed.Add(float64(len(items)))
	// An item still waiting for a worker this close to the end of its lease
	// is left to whoever claims it next: running it now could overlap with
	// them (harmless, the vault is single-flight, but wasted).
	deadline := claimedAt.Add(s.cfg.Lease - min(s.cfg.Lease/10, 5*time.Second))
	sem := make(chan struct{}, s.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		if s.cfg.Now().After(deadline) {
			<-sem
			s.cfg.Metrics.Outcomes.WithLabelValues(OutcomeLeaseExpired).Inc()
			s.cfg.Log.Debug("refresh skipped: lease ran out before a worker was free", "connection_id", it.ConnectionID)
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			s.run(ctx, it, timeout)
		}()
	}
	wg.Wait()
	return len(items), nil
}

func (s *Scheduler) run(ctx context.Context, it messages.RefreshItem, timeout time.Duration) {
	start := time.Now()
	// Each run is a trace of its own (the claim that found it is not).
	ctx, span := telemetry.Start(ctx, "github.com/nexus-broker/nexus/services/refresher/internal/schedule", "refresh",
		trace.WithAttributes(attribute.String("nexus.provider_id", it.ProviderID)))
	defer span.End()
	reply, err := s.vault.RunRefresh(ctx, messages.RefreshRun{ConnectionID: it.ConnectionID, TokenVersion: it.TokenVersion}, timeout)
	outcome := string(reply.Outcome)
	if err != nil {
		outcome = OutcomeError
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return // shutting down; the lease runs out
	case errors.Is(err, natsx.ErrNoAnswer):
		// No answer came (a timeout, no responders): the vault died or is
		// not there. Waiting out the lease would leave the connection
		// unrefreshed longer than many tokens live.
		outcome = OutcomeNoAnswer
		s.cfg.Metrics.VaultErrors.WithLabelValues("run").Inc()
		s.retrySoon(ctx, it, err)
	case err != nil:
		s.cfg.Metrics.VaultErrors.WithLabelValues("run").Inc()
		level := slog.LevelWarn
		if errors.Is(err, messages.ErrNotFound) || errors.Is(err, messages.ErrNotActive) {
			level = slog.LevelInfo
		}
		s.cfg.Log.Log(ctx, level, "refresh run failed; the connection is claimed again when its lease runs out", "connection_id", it.ConnectionID, "err", err)
	case reply.Outcome == messages.RefreshDone, reply.Outcome == messages.RefreshNotNeeded:
		s.cfg.Log.Debug("refresh run", "connection_id", it.ConnectionID, "outcome", reply.Outcome)
	case reply.Outcome == messages.RefreshAttention:
		s.cfg.Log.Warn("connection needs its user again", "connection_id", it.ConnectionID, "provider_id", it.ProviderID, "reason", reasonCode(reply.Reason))
	case reply.Outcome == messages.RefreshTransient:
		s.deferRetry(ctx, it, reply)
	default:
		outcome = OutcomeError
		s.cfg.Log.Error("refresh run: unknown outcome from the vault", "connection_id", it.ConnectionID, "outcome", reply.Outcome)
	}
	s.cfg.Metrics.Outcomes.WithLabelValues(outcome).Inc()
	s.cfg.Metrics.Duration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	span.SetAttributes(attribute.String("nexus.refresh_outcome", outcome))
}

// retrySoon defers a run that got no answer by the backoff's first delay:
// seconds, whatever the connection's attempts (the failure was the vault's,
// not the provider's).
func (s *Scheduler) retrySoon(ctx context.Context, it messages.RefreshItem, cause error) {
	delay := s.cfg.Backoff.Delay(1, 0)
	if err := s.vault.DeferRefresh(ctx, messages.RefreshDefer{ConnectionID: it.ConnectionID, Until: s.cfg.Now().Add(delay)}); err != nil {
		if ctx.Err() == nil {
			s.cfg.Metrics.VaultErrors.WithLabelValues("defer").Inc()
			s.cfg.Log.Warn("refresh run got no answer and its defer failed; the connection is claimed again when its lease runs out", "connection_id", it.ConnectionID, "err", cause, "defer_err", err)
		}
		return
	}
	s.cfg.Log.Warn("refresh run got no answer from the vault; retrying soon", "connection_id", it.ConnectionID, "delay", delay, "err", cause)
}

// deferRetry tells the vault when to try a transiently failed connection again.
func (s *Scheduler) deferRetry(ctx context.Context, it messages.RefreshItem, reply messages.RefreshRunReply) {
	attempts := reply.Attempts
	if attempts < 1 {
		attempts = it.Attempts + 1
	}
	retryAfter := time.Duration(reply.RetryAfterSeconds) * time.Second
	delay := s.cfg.Backoff.Delay(attempts, retryAfter)
	until := s.cfg.Now().Add(delay)
	s.cfg.Metrics.Backoff.Observe(delay.Seconds())
	if err := s.vault.DeferRefresh(ctx, messages.RefreshDefer{ConnectionID: it.ConnectionID, Until: until}); err != nil {
		if ctx.Err() == nil {
			s.cfg.Metrics.VaultErrors.WithLabelValues("defer").Inc()
			s.cfg.Log.Warn("refresh defer failed; the connection is claimed again when its lease runs out", "connection_id", it.ConnectionID, "err", err)
		}
		return
	}
	s.cfg.Log.Info("refresh failed transiently; retrying later", "connection_id", it.ConnectionID, "provider_id", it.ProviderID,
		"attempts", attempts, "retry_after", retryAfter, "delay", delay, "until", until, "reason", reasonCode(reply.Reason))
}

func reasonCode(r *messages.Reason) string {
	if r == nil {
		return ""
	}
	return r.Code
}
