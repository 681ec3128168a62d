package store

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ChangesChannel is the PostgreSQL notification channel on which every
// transaction that changes what the vault serves names what it changed,
// before it commits: PostgreSQL delivers the notification to every listening
// replica if and only if the transaction commits, in commit order, even when
// the vault that made the change dies right after. The payload is a
// connection id, or ProviderChange and a provider id.
const ChangesChannel = "nexus_vault_changes"

// ProviderChange prefixes a provider id in a ChangesChannel payload.
const ProviderChange = "provider:"

// ParseChange reads a ChangesChannel payload.
func ParseChange(payload string) Change {
	if id, ok := strings.CutPrefix(payload, ProviderChange); ok {
		return Change{ProviderID: id}
	}
	return Change{ConnectionID: payload}
}

// notifyChange queues c's notification in tx, sent when tx commits.
func notifyChange(ctx context.Context, tx pgx.Tx, c Change) error {
	payload := c.ConnectionID
	if payload == "" {
		payload = ProviderChange + c.ProviderID
	}
	_, err := tx.Exec(ctx, "select pg_notify($1, $2)", ChangesChannel, payload)
	return err
}
