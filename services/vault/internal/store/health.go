package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus-broker/nexus/messages"
)

// A provider is misconfigured when its token endpoint refuses the broker's
// client itself (invalid_client): a wrong or rotated client secret, a
// deleted app. That is the operator's to fix, not every user's: the
// provider is marked, once, with a provider event, and its connections
// are left as they are. The mark goes when a token request succeeds again
// (MarkHealthy) or the registration changes (PutClient).

// MarkMisconfigured marks c's provider misconfigured with the token
// endpoint's code, publishing misconfigured the first time. It reports
// whether the mark is new.
func (s *Store) MarkMisconfigured(ctx context.Context, c Client, code string) (bool, error) {
	return s.setHealth(ctx, c, code)
}

// MarkHealthy clears c's provider's misconfigured mark, if any, publishing
// recovered. It reports whether there was one.
func (s *Store) MarkHealthy(ctx context.Context, c Client) (bool, error) {
	return s.setHealth(ctx, c, "")
}

func (s *Store) setHealth(ctx context.Context, c Client, code string) (bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer rollback(ctx, tx)
	now := s.clock()
	var changed bool
	if code != "" {
		err = tx.QueryRow(ctx, `update vault.provider_clients set health_code = $2, health_since = $3
			where provider_id = $1 and health_code is null returning true`, c.ProviderID, code, now).Scan(&changed)
	} else {
		err = tx.QueryRow(ctx, `update vault.provider_clients set health_code = null, health_since = null
			where provider_id = $1 and health_code is not null returning true`, c.ProviderID).Scan(&changed)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	t, reason := messages.ProviderEventRecovered, &messages.Reason{Code: "token_request_succeeded",
		Message: "The provider's token endpoint accepts the broker's client again."}
	if code != "" {
		t, reason = messages.ProviderEventMisconfigured, &messages.Reason{Code: code,
			Message: "The provider's token endpoint refused the broker's client (" + code + "): check the client id and secret registered for it. Its connections are unchanged."}
	}
	if err := insertProviderEvent(ctx, tx, c, t, reason, now); err != nil {
		return false, err
	}
	if err := commit(ctx, tx); err != nil {
		return false, err
	}
	s.committed(Change{}, 1)
	return true, nil
}

// insertProviderEvent adds a provider event to the outbox in tx.
func insertProviderEvent(ctx context.Context, tx pgx.Tx, c Client, t messages.ProviderEventType, reason *messages.Reason, at time.Time) error {
	id, err := NewID()
	if err != nil {
		return err
	}
	ev := messages.ProviderEvent{ID: id, Type: t.FullType(), ProviderID: c.ProviderID, Provider: c.ProviderName, OccurredAt: at, Reason: reason}
	_, err = tx.Exec(ctx, "insert into vault.outbox (id, type, payload, created_at) values ($1, $2, $3, $4)",
		id, messages.ProviderEventSubjectPrefix+string(t), ev, at)
	return err
}

// Health is the health of the registrations of ids that exist.
func (s *Store) Health(ctx context.Context, ids []string) (map[string]messages.ProviderHealth, error) {
	rows, err := s.pool.Query(ctx, `select provider_id, health_code, health_since from vault.provider_clients where provider_id = any($1)`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]messages.ProviderHealth, len(ids))
	for rows.Next() {
		var (
			id    string
			code  *string
			since *time.Time
		)
		if err := rows.Scan(&id, &code, &since); err != nil {
			return nil, err
		}
		h := messages.ProviderHealth{Status: messages.ProviderHealthy}
		if code != nil {
			h = messages.ProviderHealth{Status: messages.ProviderMisconfigured, Code: *code, Since: utc(since)}
		}
		out[id] = h
	}
	return out, rows.Err()
}
