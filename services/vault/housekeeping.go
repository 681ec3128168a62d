package vault

import (
	"context"
	"log/slog"
	"time"

	"github.com/nexus-broker/nexus/services/vault/internal/cache"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
)

// Intervals of the vault's background loops. Every replica runs them; each
// step is idempotent.
const (
	cacheSweepInterval   = 5 * time.Second
	housekeepingInterval = time.Minute
	auditPruneInterval   = time.Hour
)

// runCacheSweep drops expired cache entries every interval until ctx ends,
// so the cache's memory stays bounded by what was read recently.
func runCacheSweep(ctx context.Context, c *cache.Cache, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Sweep()
		}
	}
}

// housekeepingStore is what housekeeping changes.
type housekeepingStore interface {
	ExpirePending(ctx context.Context, cutoff time.Time) (int64, error)
	PruneOutbox(ctx context.Context, cutoff time.Time) (int64, error)
}

var _ housekeepingStore = (*store.Store)(nil)

// runHousekeeping runs housekeep at once and then every interval until ctx
// ends, reading the time from now.
func runHousekeeping(ctx context.Context, st housekeepingStore, every time.Duration, now func() time.Time, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		housekeep(ctx, st, now(), log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// housekeep is one pass at time now: consents started and never finished
// become expired once no flow can still complete them
// (store.PendingLifetime), and events published longer ago than
// store.PublishedRetention leave the outbox.
func housekeep(ctx context.Context, st housekeepingStore, now time.Time, log *slog.Logger) {
	if n, err := st.ExpirePending(ctx, now.Add(-store.PendingLifetime)); err != nil && ctx.Err() == nil {
		log.Warn("expiring pending connections failed", "err", err)
	} else if n > 0 {
		log.Info("pending connections expired", "count", n)
	}
	if _, err := st.PruneOutbox(ctx, now.Add(-store.PublishedRetention)); err != nil && ctx.Err() == nil {
		log.Warn("pruning the outbox failed", "err", err)
	}
}

// auditStore is what the audit prune changes.
type auditStore interface {
	PruneAudit(ctx context.Context, cutoff time.Time) (int64, error)
}

var _ auditStore = (*store.Store)(nil)

// runAuditPrune runs pruneAudit at once and then every interval until ctx
// ends, reading the time from now.
func runAuditPrune(ctx context.Context, st auditStore, every, retention time.Duration, now func() time.Time, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		pruneAudit(ctx, st, now(), retention, log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pruneAudit is one pass at time now: audit records older than retention
// (AUDIT_RETENTION) are deleted.
func pruneAudit(ctx context.Context, st auditStore, now time.Time, retention time.Duration, log *slog.Logger) {
	if n, err := st.PruneAudit(ctx, now.Add(-retention)); err != nil && ctx.Err() == nil {
		log.Warn("pruning audit records failed", "err", err)
	} else if n > 0 {
		log.Info("audit records pruned", "count", n, "retention", retention)
	}
}
