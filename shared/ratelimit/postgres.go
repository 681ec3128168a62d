package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres counts requests in a table of PostgreSQL, where every replica of
// a service sees the same counts: (key text primary key, window_start,
// window_end timestamptz, count int), as the vault's vault.rate_limits and
// admin's admin.rate_limits are.
type Postgres struct {
	Pool *pgxpool.Pool
	// Table is the counts' table, schema-qualified: a constant of the
	// service's, never input.
	Table pgx.Identifier
}

var _ Counter = Postgres{}

// countSQL counts a request in window $1 [$2, $3) unless it already holds
// $4; no row comes back when it does. A row of an older window starts again
// from 1; a replica whose clock is a little behind counts into the newer
// window it finds.
const countSQL = `insert into %s as r (key, window_start, window_end, count) values ($1, $2, $3, 1)
	on conflict (key) do update set
		count = case when r.window_start < excluded.window_start then 1 else r.count + 1 end,
		window_start = greatest(r.window_start, excluded.window_start),
		window_end = greatest(r.window_end, excluded.window_end)
	where r.window_start < excluded.window_start or r.count < $4
	returning count`

// CountRequest counts one request in every window or in none (one
// transaction: one upsert per window, rolled back when any is full), and
// returns the indexes of the full ones. Callers give the windows in the same
// order of scopes, so that concurrent requests lock the rows in one order.
func (p Postgres) CountRequest(ctx context.Context, windows []Window) ([]int, error) {
	tx, err := p.Pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()
	query := fmt.Sprintf(countSQL, p.Table.Sanitize())
	var full []int
	for i, w := range windows {
		var n int
		err := tx.QueryRow(ctx, query, w.Key, w.Start.UTC(), w.End.UTC(), w.Limit).Scan(&n)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			full = append(full, i)
		case err != nil:
			return nil, err
		}
	}
	if len(full) > 0 {
		return full, nil // rolled back: nothing counted
	}
	return nil, tx.Commit(ctx)
}

// Prune deletes the counts of windows that ended before cutoff, at most
// 10,000 a call, and returns how many it deleted.
func (p Postgres) Prune(ctx context.Context, cutoff time.Time) (int64, error) {
	t := p.Table.Sanitize()
	tag, err := p.Pool.Exec(ctx, `delete from `+t+` where key in (
		select key from `+t+` where window_end < $1 limit 10000)`, cutoff.UTC())
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
