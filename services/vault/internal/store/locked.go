package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/secret"
)

// Locked is a connection whose row is locked (select ... for update) for the
// length of a WithLock call. It is how every replica serialises the changes
// of one connection: refresh, exchange, failure and revocation.
type Locked struct {
	s   *Store
	tx  pgx.Tx
	uid uuid.UUID
	// Conn is the connection as read after the lock was taken, updated by
	// each change made through Locked.
	Conn   Connection
	sealed sealedSecrets
	staged stagedSecrets
	dirty  bool // something was written: commit
	served bool // what is served changed: tell the caches (Options.Changed)
	events int  // outbox rows written
}

// WithLock locks connection id, calls fn, and commits whatever fn changed
// through l, even when fn returns an error (so a permanent refresh failure is
// recorded and reported). With no change it rolls back. After a commit it
// tells the caches (Options.Changed) and the relay (Options.OnOutbox). It
// returns the connection as fn left it and fn's error.
func (s *Store) WithLock(ctx context.Context, id string, fn func(ctx context.Context, l *Locked) error) (Connection, error) {
	uid, ok := parseID(id)
	if !ok {
		return Connection{}, ErrNotFound
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Connection{}, err
	}
	defer rollback(ctx, tx)
	l := &Locked{s: s, tx: tx, uid: uid}
	l.Conn, err = scanConnection(tx.QueryRow(ctx, "select "+connectionColumns+secretColumns+stagedColumns+connectionFrom+" where c.id = $1 for update of c", uid),
		append(l.sealed.dest(), l.staged.dest()...)...)
	if err != nil {
		return Connection{}, err
	}
	ferr := fn(ctx, l)
	if !l.dirty {
		return l.Conn, ferr
	}
	var c Change
	if l.served {
		c.ConnectionID = l.Conn.ID
		if err := notifyChange(ctx, tx, c); err != nil {
			return Connection{}, fmt.Errorf("notify: %w", err)
		}
	}
	if err := commit(ctx, tx); err != nil {
		return Connection{}, fmt.Errorf("commit: %w", err)
	}
	s.committed(c, l.events)
	return l.Conn, ferr
}

// Tokens opens the locked connection's tokens.
func (l *Locked) Tokens() (Tokens, error) {
	return l.s.openTokens(l.Conn, l.sealed)
}

// Activate stores the tokens of a completed consent: status active, event
// recovered when the connection needed attention, else active.
func (l *Locked) Activate(ctx context.Context, t Tokens) error {
	ev := messages.EventActive
	if l.Conn.Status == messages.StatusAttentionRequired {
		ev = messages.EventRecovered
	}
	if t.Scopes == nil {
		t.Scopes = l.Conn.RequestedScopes
	}
	return l.saveTokens(ctx, t, ev, false)
}

// SaveRefreshed stores refreshed tokens (the refresh token only when the
// provider sent a new one) with a refreshed event.
func (l *Locked) SaveRefreshed(ctx context.Context, t Tokens) error {
	if t.Scopes == nil {
		t.Scopes = l.Conn.Scopes
	}
	return l.saveTokens(ctx, t, messages.EventRefreshed, true)
}

func (l *Locked) saveTokens(ctx context.Context, t Tokens, ev messages.EventType, refreshed bool) error {
	id, from, to := l.Conn.ID, l.Conn.TokenVersion, l.Conn.TokenVersion+1
	access, err := l.s.seal(connectionPlace(id, colAccess, to), t.Access)
	if err != nil {
		return err
	}
	var refresh []byte
	switch {
	case !t.Refresh.IsZero():
		if refresh, err = l.s.seal(connectionPlace(id, colRefresh, to), t.Refresh); err != nil {
			return err
		}
	case refreshed || l.Conn.Status == messages.StatusActive:
		// The stored refresh token stays, sealed again for the new token
		// version. A vault that cannot open it (a key it does not hold,
		// during a rotation) fails here and changes nothing: keeping the
		// old ciphertext would leave it bound to a version the row no
		// longer has.
		if refresh, _, err = l.s.reseal(connectionPlace(id, colRefresh, from), connectionPlace(id, colRefresh, to), l.sealed.refresh); err != nil {
			return err
		}
	default:
		// A consent that brings no refresh token: keep the old one only if
		// the connection was working; after attention_required it is dead.
	}
	// Static credentials are not a token connection's; any left are sealed
	// again for the new version as well, so they never stop opening.
	static, _, err := l.s.reseal(connectionPlace(id, colStatic, from), connectionPlace(id, colStatic, to), l.sealed.static)
	if err != nil {
		return err
	}
	now := l.s.clock()
	last := l.Conn.LastRefreshedAt
	if refreshed {
		last = &now
	}
	if t.Scopes == nil {
		t.Scopes = []string{}
	}
	if t.Refresh.IsZero() && refresh != nil && t.RefreshExpires == nil {
		// The old refresh token is kept, and with it its expiry.
		t.RefreshExpires = l.Conn.RefreshExpires
	}
	due := RefreshDue(now, t, refresh != nil, l.s.lead)
	// token_version is set to the version the values were sealed for.
	_, err = l.tx.Exec(ctx, `update vault.connections set status = 'active', access_token = $2, refresh_token = $3, token_type = $4,
		expires_at = $5, refresh_expires_at = $6, scopes = $7, last_refreshed_at = $8, token_version = $11, static_credentials = $12,
		attention_code = null, attention_message = null, attention_since = null, failure_code = null, failure_message = null, failure_since = null,
		refresh_due_at = $10, refresh_attempts = 0, refresh_lease_owner = null,
		refresh_inflight_owner = null, refresh_inflight_until = null,
		refusal_code = null, refusal_count = 0, refusal_since = null, retry_not_before = null,
		updated_at = $9 where id = $1`,
		l.uid, access, refresh, t.TokenType, t.ExpiresAt, t.RefreshExpires, t.Scopes, last, now, due, to, static)
	if err != nil {
		return err
	}
	l.dirty, l.served = true, true
	c := &l.Conn
	c.Status, c.TokenType, c.ExpiresAt, c.RefreshExpires, c.Scopes, c.LastRefreshedAt = messages.StatusActive, t.TokenType, utc(t.ExpiresAt), utc(t.RefreshExpires), t.Scopes, last
	c.TokenVersion = to
	c.Attention, c.Failure, c.UpdatedAt, c.HasRefreshToken = nil, nil, now, refresh != nil
	c.RefreshDue, c.RefreshAttempts = due, 0
	c.RefreshInFlightOwner, c.RefreshInFlightUntil = "", nil
	l.sealed = sealedSecrets{access: access, refresh: refresh, static: static}
	if err := l.SetConfig(ctx, t.Config); err != nil {
		return err
	}
	return l.event(ctx, ev, nil, now)
}

// Fail marks the connection failed with a reason (event failed).
func (l *Locked) Fail(ctx context.Context, reason messages.Reason) error {
	now := l.s.clock()
	if _, err := l.tx.Exec(ctx, `update vault.connections set status = 'failed', failure_code = $2, failure_message = $3,
		failure_since = $4, updated_at = $4, `+wipeStaged+` where id = $1`,
		l.uid, reason.Code, reason.Message, now); err != nil {
		return err
	}
	l.dirty, l.served = true, true
	l.Conn.Status, l.Conn.UpdatedAt, l.Conn.ConfirmBy = messages.StatusFailed, now, nil
	l.Conn.Failure = &messages.Attention{Code: reason.Code, Message: reason.Message, Since: now}
	l.staged = stagedSecrets{}
	return l.event(ctx, messages.EventFailed, &reason, now)
}

// RequireAttention records a permanent failure: the user must consent again
// (event attention_required). The tokens are kept: a re-read shows what
// failed, and revocation can still present them to the provider.
func (l *Locked) RequireAttention(ctx context.Context, reason messages.Reason) error {
	now := l.s.clock()
	if _, err := l.tx.Exec(ctx, `update vault.connections set status = 'attention_required', attention_code = $2, attention_message = $3,
		attention_since = $4, updated_at = $4, refresh_due_at = null, refresh_lease_owner = null,
		refresh_inflight_owner = null, refresh_inflight_until = null where id = $1`,
		l.uid, reason.Code, reason.Message, now); err != nil {
		return err
	}
	l.dirty, l.served = true, true
	l.Conn.Status, l.Conn.UpdatedAt, l.Conn.RefreshDue = messages.StatusAttentionRequired, now, nil
	l.Conn.RefreshInFlightOwner, l.Conn.RefreshInFlightUntil = "", nil
	l.Conn.Attention = &messages.Attention{Code: reason.Code, Message: reason.Message, Since: now}
	return l.event(ctx, messages.EventAttentionRequired, &reason, now)
}

// StoreStatic seals a static connection's credentials (a JSON object),
// replacing any stored, and activates it: event recovered when it needed
// attention, else active. schemaHash names the provider schema they were
// validated against. Static credentials do not expire: nothing is scheduled
// for refresh.
func (l *Locked) StoreStatic(ctx context.Context, creds secret.Value, schemaHash string) error {
	if creds.IsZero() {
		return fmt.Errorf("store: empty static credentials")
	}
	ev := messages.EventActive
	if l.Conn.Status == messages.StatusAttentionRequired {
		ev = messages.EventRecovered
	}
	version := l.Conn.TokenVersion + 1
	sealed, err := l.s.seal(connectionPlace(l.Conn.ID, colStatic, version), creds)
	if err != nil {
		return err
	}
	now := l.s.clock()
	scopes := l.Conn.RequestedScopes
	if scopes == nil {
		scopes = []string{}
	}
	_, err = l.tx.Exec(ctx, `update vault.connections set status = 'active', static_credentials = $2, credential_schema_hash = $3,
		access_token = null, refresh_token = null, token_type = '', expires_at = null, refresh_expires_at = null,
		scopes = $4, token_version = $6,
		attention_code = null, attention_message = null, attention_since = null, failure_code = null, failure_message = null, failure_since = null,
		refresh_due_at = null, refresh_attempts = 0, refresh_lease_owner = null, updated_at = $5 where id = $1`,
		l.uid, sealed, schemaHash, scopes, now, version)
	if err != nil {
		return err
	}
	l.dirty, l.served = true, true
	c := &l.Conn
	c.Status, c.TokenType, c.ExpiresAt, c.RefreshExpires, c.Scopes = messages.StatusActive, "", nil, nil, scopes
	c.TokenVersion = version
	c.Attention, c.Failure, c.UpdatedAt, c.HasRefreshToken = nil, nil, now, false
	c.HasStaticCredentials, c.CredentialSchemaHash = true, schemaHash
	c.RefreshDue, c.RefreshAttempts = nil, 0
	l.sealed = sealedSecrets{static: sealed}
	return l.event(ctx, ev, nil, now)
}

// Revoke wipes the connection's secrets and marks it revoked (event revoked).
func (l *Locked) Revoke(ctx context.Context) error {
	now := l.s.clock()
	if _, err := l.tx.Exec(ctx, `update vault.connections set status = 'revoked', access_token = null, refresh_token = null,
		static_credentials = null, credential_schema_hash = null,
		attention_code = null, attention_message = null, attention_since = null, refresh_due_at = null, refresh_lease_owner = null,
		refresh_inflight_owner = null, refresh_inflight_until = null, `+wipeStaged+`, updated_at = $2 where id = $1`, l.uid, now); err != nil {
		return err
	}
	l.dirty, l.served = true, true
	l.Conn.Status, l.Conn.Attention, l.Conn.UpdatedAt, l.Conn.HasRefreshToken, l.Conn.RefreshDue = messages.StatusRevoked, nil, now, false, nil
	l.Conn.HasStaticCredentials, l.Conn.CredentialSchemaHash, l.Conn.ConfirmBy = false, "", nil
	l.Conn.RefreshInFlightOwner, l.Conn.RefreshInFlightUntil = "", nil
	l.sealed, l.staged = sealedSecrets{}, stagedSecrets{}
	return l.event(ctx, messages.EventRevoked, nil, now)
}

// SetConfig merges cfg into the connection's non-secret config
// (messages.Connection.Config): a key given replaces the stored value, the
// others stay. Every writer of config goes through it (static fields here,
// values a provider returns with its tokens or on the callback).
func (l *Locked) SetConfig(ctx context.Context, cfg map[string]string) error {
	if len(cfg) == 0 {
		return nil
	}
	var merged map[string]string
	now := l.s.clock()
	if err := l.tx.QueryRow(ctx, "update vault.connections set config = config || $2, updated_at = $3 where id = $1 returning config",
		l.uid, cfg, now).Scan(&merged); err != nil {
		return err
	}
	l.dirty, l.served = true, true
	l.Conn.Config, l.Conn.UpdatedAt = merged, now
	return nil
}

// event writes the locked connection's lifecycle event to the outbox, in
// the lock's transaction.
func (l *Locked) event(ctx context.Context, t messages.EventType, reason *messages.Reason, at time.Time) error {
	if err := insertEvent(ctx, l.tx, l.Conn, t, reason, at); err != nil {
		return err
	}
	l.events++
	return nil
}
