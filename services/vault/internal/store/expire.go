package store

import (
	"context"
	"time"
)

// PendingLifetime is how long a consent may stay pending before it is
// expired: the longest a handshake flow can live (FLOW_TTL is at most an
// hour), with room to finish the code exchange.
const PendingLifetime = time.Hour + 5*time.Minute

// ExpirePending moves connections pending since before cutoff (a consent
// that was started and never finished) to expired, and returns how many it
// moved. Any replica may run it; it is idempotent. A pending connection
// holds no secret; should one ever, it would not keep it once expired.
func (s *Store) ExpirePending(ctx context.Context, cutoff time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `update vault.connections set status = 'expired', updated_at = $1,
		access_token = null, refresh_token = null, static_credentials = null, credential_schema_hash = null,
		refresh_due_at = null, refresh_lease_owner = null, `+wipeStaged+`
		where status = 'pending' and updated_at < $2`, s.clock(), cutoff.UTC())
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// PublishedRetention is how long a published event stays in the outbox:
// far longer than JetStream's duplicate window, so a late re-publish is
// still de-duplicated, and short enough that the table does not grow forever.
const PublishedRetention = 24 * time.Hour

// PruneOutbox deletes events published before cutoff, at most 10,000 a
// call, and returns how many it deleted.
func (s *Store) PruneOutbox(ctx context.Context, cutoff time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `delete from vault.outbox where id in (
		select id from vault.outbox where published_at < $1 limit 10000)`, cutoff.UTC())
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
