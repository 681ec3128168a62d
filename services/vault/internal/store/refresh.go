package store

import (
	"context"
	"time"
)

// DueConnection is a connection leased to a background refresher.
type DueConnection struct {
	ID           string
	ProviderID   string
	TokenVersion int64
	ExpiresAt    *time.Time
	Attempts     int
}

// claimRefreshSQL leases up to $2 due connections to $1 for $3 seconds at
// time $4 in one statement: skip locked hands each row to exactly one
// claimer (and passes over a row a refresh holds right now), and moving
// refresh_due_at to the end of the lease is the lease: when it runs out
// the row is due again. The partial index connections_refresh_due makes
// it O(due rows), whatever the number of connections.
const claimRefreshSQL = `with due as (
	select id, refresh_due_at from vault.connections
	where status = 'active' and refresh_due_at <= $4
	order by refresh_due_at limit $2
	for update skip locked
), claimed as (
	update vault.connections c set refresh_due_at = $4 + make_interval(secs => $3), refresh_lease_owner = $1
	from due where c.id = due.id
	returning c.id, c.provider_id, c.token_version, c.expires_at, c.refresh_attempts, due.refresh_due_at as was_due
)
select id::text, provider_id, token_version, expires_at, refresh_attempts from claimed order by was_due, id`

// ClaimRefreshSQL is the claim statement, for EXPLAIN in the benchmark.
// Its parameters: owner, limit, lease seconds, now.
const ClaimRefreshSQL = claimRefreshSQL

// ClaimRefresh leases up to limit connections whose refresh is due to owner
// for lease, most urgent first.
func (s *Store) ClaimRefresh(ctx context.Context, owner string, limit int, lease time.Duration) ([]DueConnection, error) {
	rows, err := s.pool.Query(ctx, claimRefreshSQL, owner, limit, lease.Seconds(), s.clock())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]DueConnection, 0, limit)
	for rows.Next() {
		var d DueConnection
		if err := rows.Scan(&d.ID, &d.ProviderID, &d.TokenVersion, &d.ExpiresAt, &d.Attempts); err != nil {
			return nil, err
		}
		d.ExpiresAt = utc(d.ExpiresAt)
		out = append(out, d)
	}
	return out, rows.Err()
}

// DeferRefresh sets when an active connection's refresh is due next (the
// refresher's backoff after a transient failure). It is a no-op for a
// connection that is no longer active.
func (s *Store) DeferRefresh(ctx context.Context, id string, until time.Time) error {
	uid, ok := parseID(id)
	if !ok {
		return ErrNotFound
	}
	tag, err := s.pool.Exec(ctx, `update vault.connections set refresh_due_at = $2, refresh_lease_owner = null
		where id = $1 and status = 'active'`, uid, until.UTC())
	if err != nil || tag.RowsAffected() == 1 {
		return err
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, "select exists (select from vault.connections where id = $1)", uid).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return ErrNotFound
	}
	return nil
}

// ClearRefreshDue stops background refreshes of a connection that has
// nothing to renew them with.
func (s *Store) ClearRefreshDue(ctx context.Context, id string) error {
	uid, ok := parseID(id)
	if !ok {
		return ErrNotFound
	}
	_, err := s.pool.Exec(ctx, "update vault.connections set refresh_due_at = null, refresh_lease_owner = null where id = $1", uid)
	return err
}
