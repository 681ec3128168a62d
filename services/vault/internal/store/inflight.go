package store

import (
	"context"
	"time"
)

// A refresh calls the provider with no transaction open (a slow provider
// must cost nothing but its own connections): under the row lock it takes
// the refresh (TakeRefresh) and commits, it calls the provider, and under
// the row lock again it stores the result only if the token it presented is
// still the stored one (the token version did not move), releasing the
// refresh either way. Another replica that needs the refresh meanwhile sees
// it in flight (Connection.RefreshInFlightOwner, RefreshInFlightUntil) and
// waits for its result. A replica that dies holding one leaves it to run
// out at RefreshInFlightUntil.

// InFlight reports whether another owner than owner holds the connection's
// refresh at now.
func (c Connection) InFlight(owner string, now time.Time) bool {
	return c.RefreshInFlightUntil != nil && now.Before(*c.RefreshInFlightUntil) && c.RefreshInFlightOwner != owner
}

// TakeRefresh records that owner calls the provider for this connection
// until until. It changes nothing that is served.
func (l *Locked) TakeRefresh(ctx context.Context, owner string, until time.Time) error {
	until = until.UTC().Truncate(time.Microsecond)
	if _, err := l.tx.Exec(ctx, `update vault.connections set refresh_inflight_owner = $2, refresh_inflight_until = $3 where id = $1`,
		l.uid, owner, until); err != nil {
		return err
	}
	l.dirty = true
	l.Conn.RefreshInFlightOwner, l.Conn.RefreshInFlightUntil = owner, &until
	return nil
}

// ReleaseRefresh gives up owner's refresh of this connection, if it holds
// it (a refresh that failed transiently, or whose result another refresh
// made useless).
func (l *Locked) ReleaseRefresh(ctx context.Context, owner string) error {
	if l.Conn.RefreshInFlightOwner != owner {
		return nil
	}
	if _, err := l.tx.Exec(ctx, `update vault.connections set refresh_inflight_owner = null, refresh_inflight_until = null where id = $1`, l.uid); err != nil {
		return err
	}
	l.dirty = true
	l.Conn.RefreshInFlightOwner, l.Conn.RefreshInFlightUntil = "", nil
	return nil
}
