package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus-broker/nexus/shared/ratelimit"
)

var _ ratelimit.Counter = (*Store)(nil)

// rateLimits are the vault's counts, in vault.rate_limits.
func (s *Store) rateLimits() ratelimit.Postgres {
	return ratelimit.Postgres{Pool: s.pool, Table: pgx.Identifier{"vault", "rate_limits"}}
}

// CountRequest counts one request in every window or in none
// (ratelimit.Postgres), in vault.rate_limits, across replicas.
func (s *Store) CountRequest(ctx context.Context, windows []ratelimit.Window) ([]int, error) {
	return s.rateLimits().CountRequest(ctx, windows)
}

// PruneRateLimits deletes the counts of windows that ended before cutoff, at
// most 10,000 a call, and returns how many it deleted.
func (s *Store) PruneRateLimits(ctx context.Context, cutoff time.Time) (int64, error) {
	return s.rateLimits().Prune(ctx, cutoff)
}
