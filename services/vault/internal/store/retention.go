package store

import (
	"context"
	"time"
)

// Ended connections (failed, expired, revoked) serve nothing and hold no
// secret (revocation wipes them; failed and expired come from pending,
// which never had any). They are kept DefaultEndedRetention after their
// last change, so that connections.get and connections.list still tell what
// became of a connection, and then deleted.
const (
	DefaultEndedRetention = 720 * time.Hour
	MinEndedRetention     = time.Hour
)

// pruneBatch bounds the connections one PruneEnded deletes.
const pruneBatch = 1000

// pruneEndedSQL deletes up to $2 connections that ended before $1, oldest
// first, with their events. A connection with an event still unpublished
// stays until the relay has published it: no event is ever lost. Rows
// locked by a change under way are skipped; a change that committed since
// (a re-consent reopening the connection) moved updated_at, which the lock
// re-checks.
const pruneEndedSQL = `with ended as (
	select c.id from vault.connections c
	where c.status in ('failed', 'expired', 'revoked') and c.updated_at < $1
		and not exists (select 1 from vault.outbox o where o.connection_id = c.id and o.published_at is null)
	order by c.updated_at
	limit $2
	for update of c skip locked
), events as (
	delete from vault.outbox o using ended where o.connection_id = ended.id and o.published_at is not null
)
delete from vault.connections c using ended where c.id = ended.id`

// PruneEnded deletes connections that ended (failed, expired or revoked)
// before cutoff, with their published events, at most pruneBatch a call,
// and returns how many connections it deleted. Any replica may run it.
func (s *Store) PruneEnded(ctx context.Context, cutoff time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, pruneEndedSQL, cutoff.UTC(), pruneBatch)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
