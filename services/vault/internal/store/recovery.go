package store

import (
	"context"
	"strconv"
	"time"
)

// StrandedRefresh is a refresh in flight whose owner may be gone: the
// connection, and the mark (owner, until) as it was found.
type StrandedRefresh struct {
	ID         string
	ProviderID string
	Owner      string
	Until      time.Time
}

// RefreshesLeftBy lists the refreshes in flight of active connections
// whose owner is replica (owners are "<replica>/<boot>/<flight>") in
// another boot than boot: a vault starting again finds what its earlier
// boot left, whatever time the marks have left.
func (s *Store) RefreshesLeftBy(ctx context.Context, replica, boot string, limit int) ([]StrandedRefresh, error) {
	return s.stranded(ctx, `left(refresh_inflight_owner, length($1) + 1) = $1 || '/'
		and left(refresh_inflight_owner, length($1) + length($2) + 2) <> $1 || '/' || $2 || '/'`, limit, replica, boot)
}

// RefreshesRunOut lists the refreshes in flight of active connections whose
// mark ran out before before, oldest first.
func (s *Store) RefreshesRunOut(ctx context.Context, before time.Time, limit int) ([]StrandedRefresh, error) {
	return s.stranded(ctx, `refresh_inflight_until < $1`, limit, before.UTC())
}

func (s *Store) stranded(ctx context.Context, cond string, limit int, args ...any) ([]StrandedRefresh, error) {
	rows, err := s.pool.Query(ctx, `select id::text, provider_id, refresh_inflight_owner, refresh_inflight_until from vault.connections
		where refresh_inflight_owner is not null and status = 'active' and `+cond+`
		order by refresh_inflight_until limit `+strconv.Itoa(limit), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []StrandedRefresh
	for rows.Next() {
		var r StrandedRefresh
		if err := rows.Scan(&r.ID, &r.ProviderID, &r.Owner, &r.Until); err != nil {
			return nil, err
		}
		r.Until = r.Until.UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}
