package console

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexus-broker/nexus/shared/ratelimit"
)

// pgCounter counts login attempts in admin.rate_limits, where every admin
// replica sees them (the vault's counter, internal/store/ratelimit.go, does
// the same in its schema).
type pgCounter struct{ pool *pgxpool.Pool }

var _ ratelimit.Counter = pgCounter{}

// countSQL counts a request in window $1 [$2, $3) unless it already holds
// $4; no row comes back when it does. A row of an older window starts
// again from 1.
const countSQL = `insert into admin.rate_limits as r (key, window_start, window_end, count) values ($1, $2, $3, 1)
	on conflict (key) do update set
		count = case when r.window_start < excluded.window_start then 1 else r.count + 1 end,
		window_start = greatest(r.window_start, excluded.window_start),
		window_end = greatest(r.window_end, excluded.window_end)
	where r.window_start < excluded.window_start or r.count < $4
	returning count`

// CountRequest counts one request in every window or in none.
func (c pgCounter) CountRequest(ctx context.Context, windows []ratelimit.Window) ([]int, error) {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var full []int
	for i, w := range windows {
		var n int
		err := tx.QueryRow(ctx, countSQL, w.Key, w.Start.UTC(), w.End.UTC(), w.Limit).Scan(&n)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			full = append(full, i)
		case err != nil:
			return nil, err
		}
	}
	if len(full) > 0 {
		return full, nil
	}
	return nil, tx.Commit(ctx)
}
