package soak

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// lagSQL is how far behind the refreshers are, from the vault's table:
// the active connections due and not claimed (a claim moves
// refresh_due_at to the end of its lease), how long the oldest of them has
// waited, and the least life left in any stored access token (negative:
// one expired in the database before it was renewed).
const lagSQL = `select count(*) filter (where refresh_due_at <= now()),
	coalesce(extract(epoch from now() - min(refresh_due_at) filter (where refresh_due_at <= now())), 0)::float8,
	coalesce(extract(epoch from min(expires_at) - now()), 0)::float8
	from vault.connections where status = 'active'`

// Lag is the worst the watch saw.
type Lag struct {
	// Backlog: most connections due and unclaimed at one look.
	Backlog int
	// Overdue: longest a due connection had waited for a claim.
	Overdue time.Duration
	// Margin: least life left in a stored access token.
	Margin time.Duration
	Looks  int
}

// watch looks at the table every interval until ctx ends, keeping the
// worst lag, and writes a progress line for each look.
type watch struct {
	pool     *pgxpool.Pool
	provider *oidcprovider.Server
	every    time.Duration
	progress func(string, ...any)
	lag      Lag
}

func (w *watch) run(ctx context.Context, l *load) error {
	w.lag.Margin = time.Duration(1<<63 - 1)
	t := time.NewTicker(w.every)
	defer t.Stop()
	start, grants, served := time.Now(), w.provider.RefreshGrants(), 0
	last := start
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		var backlog int
		var overdue, margin float64
		if err := w.pool.QueryRow(ctx, lagSQL).Scan(&backlog, &overdue, &margin); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("soak: lag query: %w", err)
		}
		w.lag.Looks++
		w.lag.Backlog = max(w.lag.Backlog, backlog)
		w.lag.Overdue = max(w.lag.Overdue, seconds(overdue))
		w.lag.Margin = min(w.lag.Margin, seconds(margin))
		now := time.Now()
		g, s := w.provider.RefreshGrants(), l.served()
		dt := now.Sub(last).Seconds()
		w.progress("%6.0fs  refreshes %6.1f/s  tokens.get %6.1f/s  due unclaimed %6d  oldest due %6.1fs  least life left %7.1fs",
			now.Sub(start).Seconds(), float64(g-grants)/dt, float64(s-served)/dt, backlog, overdue, margin)
		last, grants, served = now, g, s
	}
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
