package store

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/nexus-broker/nexus/messages"
)

// insertEvent adds a lifecycle event to the outbox inside the transaction
// that makes the change, so the event exists if and only if the change does.
// A relay publishes it later with Nats-Msg-Id = its id.
func insertEvent(ctx context.Context, tx pgx.Tx, c Connection, t messages.EventType, reason *messages.Reason, at time.Time) error {
	id, err := NewID()
	if err != nil {
		return err
	}
	ev := messages.Event{
		ID:           id,
		Type:         t.FullType(),
		ConnectionID: c.ID,
		Provider:     c.ProviderName,
		WorkspaceID:  c.WorkspaceID,
		OccurredAt:   at,
		Reason:       reason,
	}
	_, err = tx.Exec(ctx, "insert into vault.outbox (id, connection_id, type, payload, created_at) values ($1, $2, $3, $4, $5)",
		id, c.ID, string(t), ev, at)
	return err
}

// claimOutboxSQL leases up to $2 unpublished events to $1 for $3 seconds
// at time $4, oldest first. An event leased to a relay that died is handed
// out again once its lease runs out; one leased to $1 itself, at once (a
// relay claims one batch at a time, so its own lease is of a batch it gave
// up: a publish that failed, or a claim whose reply never reached it).
const claimOutboxSQL = `with c as (
	select id from vault.outbox
	where published_at is null and (lease_until is null or lease_until < $4 or lease_owner = $1)
	order by created_at, id limit $2
	for update skip locked
), leased as (
	update vault.outbox o set lease_until = $4 + make_interval(secs => $3), lease_owner = $1
	from c where o.id = c.id
	returning o.id, o.created_at, o.type, o.payload
)
select type, payload from leased order by created_at, id`

// ClaimOutbox leases up to limit unpublished events to owner for lease and
// returns them, oldest first: connection lifecycle events, and provider
// events apart.
func (s *Store) ClaimOutbox(ctx context.Context, owner string, limit int, lease time.Duration) ([]messages.Event, []messages.ProviderEvent, error) {
	rows, err := s.pool.Query(ctx, claimOutboxSQL, owner, limit, lease.Seconds(), s.clock())
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var (
		out       = make([]messages.Event, 0, limit)
		providers []messages.ProviderEvent
	)
	for rows.Next() {
		var (
			typ     string
			payload []byte
		)
		if err := rows.Scan(&typ, &payload); err != nil {
			return nil, nil, err
		}
		if strings.HasPrefix(typ, messages.ProviderEventSubjectPrefix) {
			var ev messages.ProviderEvent
			if err := json.Unmarshal(payload, &ev); err != nil {
				return nil, nil, err
			}
			ev.OccurredAt = ev.OccurredAt.UTC()
			providers = append(providers, ev)
			continue
		}
		var ev messages.Event
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, nil, err
		}
		ev.OccurredAt = ev.OccurredAt.UTC()
		out = append(out, ev)
	}
	return out, providers, rows.Err()
}

// AckOutbox marks events published and returns how many were not already.
// Ids that are not event ids are ignored.
func (s *Store) AckOutbox(ctx context.Context, ids []string) (int, error) {
	uids := make([]uuid.UUID, 0, len(ids))
	for _, id := range ids {
		if u, ok := parseID(id); ok {
			uids = append(uids, u)
		}
	}
	if len(uids) == 0 {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, `update vault.outbox set published_at = $2, lease_until = null
		where id = any($1) and published_at is null`, uids, s.clock())
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}
