package store

import (
	"context"
	"time"

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
