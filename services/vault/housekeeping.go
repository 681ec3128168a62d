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
	ExpirePending(ctx context.Context, now time.Time) (int64, error)
	PruneOutbox(ctx context.Context, cutoff time.Time) (int64, error)
	ConfirmationsDue(ctx context.Context, now time.Time, limit int) ([]string, error)
	WithLock(ctx context.Context, id string, fn func(ctx context.Context, l *store.Locked) error) (store.Connection, error)
	PruneEnded(ctx context.Context, cutoff time.Time) (int64, error)
	PruneRateLimits(ctx context.Context, cutoff time.Time) (int64, error)
}

var _ housekeepingStore = (*store.Store)(nil)

// runHousekeeping runs housekeep at once and then every interval until ctx
// ends, reading the time from now.
func runHousekeeping(ctx context.Context, st housekeepingStore, every time.Duration, now func() time.Time, ended time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		housekeep(ctx, st, now(), ended, log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// housekeep is one pass at time now: consents started and never finished
// become expired once their link has expired (store.ExpiryGrace after it;
// store.PendingLifetime after they began when the vault was not told when
// it expires), with event expired, events published longer ago than
// store.PublishedRetention leave the outbox, consents that waited for
// confirmation past their time end, connections that ended (failed,
// expired, revoked) longer than ended ago are deleted, at most a batch a
// pass, and rate-limit windows that are over are dropped.
func housekeep(ctx context.Context, st housekeepingStore, now time.Time, ended time.Duration, log *slog.Logger) {
	if n, err := st.ExpirePending(ctx, now); err != nil && ctx.Err() == nil {
		log.Warn("expiring pending connections failed", "err", err)
	} else if n > 0 {
		log.Info("pending connections expired", "count", n)
	}
	if _, err := st.PruneOutbox(ctx, now.Add(-store.PublishedRetention)); err != nil && ctx.Err() == nil {
		log.Warn("pruning the outbox failed", "err", err)
	}
	// A failed or expired connection reopened by a new consent is kept at
	// least as long as that consent may take, whatever the retention.
	if n, err := st.PruneEnded(ctx, now.Add(-max(ended, store.PendingLifetime))); err != nil && ctx.Err() == nil {
		log.Warn("pruning ended connections failed", "err", err)
	} else if n > 0 {
		log.Info("ended connections pruned", "count", n, "retention", ended)
	}
	if _, err := st.PruneRateLimits(ctx, now); err != nil && ctx.Err() == nil {
		log.Warn("pruning rate-limit windows failed", "err", err)
	}
	expireConfirmations(ctx, st, now, log)
}

// confirmationBatch bounds the consents ended per pass.
const confirmationBatch = 500

// expireConfirmations ends the consents that waited for the Gateway's
// confirmation past their time: their staged secrets are wiped, and a first
// consent fails (a re-consent keeps what it had).
func expireConfirmations(ctx context.Context, st housekeepingStore, now time.Time, log *slog.Logger) {
	ids, err := st.ConfirmationsDue(ctx, now, confirmationBatch)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("finding unconfirmed consents failed", "err", err)
		}
		return
	}
	for _, id := range ids {
		if _, err := st.WithLock(ctx, id, func(ctx context.Context, l *store.Locked) error {
			return l.ExpireConfirmation(ctx, now)
		}); err != nil && ctx.Err() == nil {
			log.Warn("ending an unconfirmed consent failed", "connection_id", id, "err", err)
		}
	}
	if len(ids) > 0 {
		log.Info("unconfirmed consents ended", "count", len(ids))
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
