package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus-broker/nexus/messages"
)

// PendingLifetime is how long a consent whose link's expiry the vault was
// not told may stay pending before it is expired: the longest a handshake
// flow can live (FLOW_TTL is at most an hour), with room to finish the code
// exchange.
const PendingLifetime = time.Hour + 5*time.Minute

// ExpiryGrace is how long after its link expired a pending consent is
// kept: a code exchange or a credential check begun just before the expiry
// may still be under way (the handshake gives the vault 20s).
const ExpiryGrace = time.Minute

// pendingUntil is when a consent begun at now whose link expires at
// expires becomes expired if it is still pending.
func pendingUntil(expires *time.Time, now time.Time) time.Time {
	if expires == nil {
		return now.Add(PendingLifetime)
	}
	return expires.UTC().Truncate(time.Microsecond).Add(ExpiryGrace)
}

// Expired is the reason a consent that was never finished ends with.
var Expired = messages.Reason{Code: "consent_expired", Message: "The consent was not finished before its link expired."}

// expireBatch bounds the connections one transaction of ExpirePending moves.
const expireBatch = 500

// expirePendingSQL moves up to $3 pending connections whose deadline is
// before $2 to expired at $1, and returns what their events need. A consent
// waiting for the Gateway's confirmation is not expired here: its own
// deadline ends it (ExpireConfirmation). Rows locked by a change under way
// are skipped and found by the next pass.
const expirePendingSQL = `with due as (
	select id from vault.connections
	where status = 'pending' and pending_until < $2 and confirmation_hash is null
	order by pending_until limit $3
	for update skip locked
), moved as (
	update vault.connections c set status = 'expired', updated_at = $1,
		failure_code = $4, failure_message = $5, failure_since = $1,
		access_token = null, refresh_token = null, static_credentials = null, credential_schema_hash = null,
		refresh_due_at = null, refresh_lease_owner = null, ` + wipeStaged + `
	from due where c.id = due.id
	returning c.id::text, c.provider_id, c.workspace_id
)
select moved.id, coalesce(p.provider_name, moved.provider_id), moved.workspace_id
from moved left join vault.provider_clients p on p.provider_id = moved.provider_id`

// ExpirePending moves the connections still pending at now past their
// deadline (a consent that was started and never finished) to expired,
// each with its expired event in the same transaction, and returns how many
// it moved. Any replica may run it; it is idempotent. A pending connection
// holds no secret; should one ever, it would not keep it once expired.
func (s *Store) ExpirePending(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	for {
		n, err := s.expireBatch(ctx, now.UTC())
		total += int64(n)
		if err != nil || n < expireBatch {
			return total, err
		}
	}
}

func (s *Store) expireBatch(ctx context.Context, now time.Time) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer rollback(ctx, tx)
	at := s.clock()
	rows, err := tx.Query(ctx, expirePendingSQL, at, now, expireBatch, Expired.Code, Expired.Message)
	if err != nil {
		return 0, err
	}
	conns, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Connection, error) {
		var c Connection
		err := r.Scan(&c.ID, &c.ProviderName, &c.WorkspaceID)
		return c, err
	})
	if err != nil {
		return 0, err
	}
	for _, c := range conns {
		reason := Expired
		if err := insertEvent(ctx, tx, c, messages.EventExpired, &reason, at); err != nil {
			return 0, err
		}
	}
	if len(conns) == 0 {
		return 0, nil
	}
	if err := commit(ctx, tx); err != nil {
		return 0, err
	}
	// A pending connection is in no cache: only the relay needs telling.
	s.committed(Change{}, len(conns))
	return len(conns), nil
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
