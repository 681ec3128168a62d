package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/secret"
)

// Consents that wait for the Gateway's confirmation (migration
// 007_confirmation.sql): Stage and StageStatic keep what a consent brought
// aside, Confirm puts it in place, DropStaged throws it away.

// Errors of Confirm.
var (
	// ErrNoConfirmation: nothing of this connection waits for confirmation
	// (never asked, already confirmed, or dropped).
	ErrNoConfirmation = errors.New("store: no consent of this connection waits for confirmation")
	// ErrConfirmationExpired: it waited past its time.
	ErrConfirmationExpired = errors.New("store: the consent was not confirmed in time")
	// ErrConfirmationMismatch: the value is not the one the browser was given.
	ErrConfirmationMismatch = errors.New("store: the confirmation value does not match")
)

// stagedColumns follow secretColumns where a locked row is read.
const stagedColumns = `, c.staged_access_token, c.staged_refresh_token, c.staged_static_credentials,
	coalesce(c.staged_token_type, ''), c.staged_expires_at, c.staged_refresh_expires_at, c.staged_scopes,
	coalesce(c.staged_schema_hash, ''), c.confirmation_hash, c.staged_config`

// wipeStaged is the assignment list that throws staged secrets away.
const wipeStaged = `staged_access_token = null, staged_refresh_token = null, staged_static_credentials = null,
	staged_token_type = null, staged_expires_at = null, staged_refresh_expires_at = null, staged_scopes = null,
	staged_schema_hash = null, confirmation_hash = null, confirm_by = null, staged_config = null`

// stagedSecrets are what a consent waiting for confirmation brought, as read.
type stagedSecrets struct {
	access, refresh, static []byte
	tokenType               string
	expires, refreshExpires *time.Time
	scopes                  []string
	schemaHash              string
	hash                    []byte
	config                  map[string]string
}

func (x *stagedSecrets) dest() []any {
	return []any{&x.access, &x.refresh, &x.static, &x.tokenType, &x.expires, &x.refreshExpires, &x.scopes, &x.schemaHash, &x.hash, &x.config}
}

// Stage keeps the tokens of a consent aside until Confirm. The connection
// is otherwise unchanged: pending stays pending, and a re-consent keeps
// serving the tokens it had. No event: the consent is not complete.
func (l *Locked) Stage(ctx context.Context, t Tokens, c messages.Confirmation) error {
	id := l.Conn.ID
	access, err := l.s.seal(stagedPlace(id, colStagedAccess, c.Hash), t.Access)
	if err != nil {
		return err
	}
	refresh, err := l.s.seal(stagedPlace(id, colStagedRefr, c.Hash), t.Refresh)
	if err != nil {
		return err
	}
	return l.stage(ctx, stagedSecrets{access: access, refresh: refresh, tokenType: t.TokenType, expires: t.ExpiresAt,
		refreshExpires: t.RefreshExpires, scopes: t.Scopes, hash: c.Hash, config: t.Config}, c.By)
}

// StageStatic keeps the static credentials a person typed, and the config
// that comes with them (SetConfig), aside until Confirm; schemaHash as for
// StoreStatic.
func (l *Locked) StageStatic(ctx context.Context, creds secret.Value, schemaHash string, config map[string]string, c messages.Confirmation) error {
	sealed, err := l.s.seal(stagedPlace(l.Conn.ID, colStagedStatic, c.Hash), creds)
	if err != nil {
		return err
	}
	return l.stage(ctx, stagedSecrets{static: sealed, schemaHash: schemaHash, hash: c.Hash, config: config}, c.By)
}

func (l *Locked) stage(ctx context.Context, x stagedSecrets, by time.Time) error {
	if len(x.hash) != sha256.Size {
		return errors.New("store: a confirmation hash is a SHA-256")
	}
	by = by.UTC().Truncate(time.Microsecond)
	if _, err := l.tx.Exec(ctx, `update vault.connections set staged_access_token = $2, staged_refresh_token = $3,
		staged_static_credentials = $4, staged_token_type = $5, staged_expires_at = $6, staged_refresh_expires_at = $7,
		staged_scopes = $8, staged_schema_hash = $9, confirmation_hash = $10, confirm_by = $11, updated_at = $12, staged_config = $13 where id = $1`,
		l.uid, x.access, x.refresh, x.static, x.tokenType, x.expires, x.refreshExpires, x.scopes, x.schemaHash, x.hash, by, l.s.clock(), x.config); err != nil {
		return err
	}
	l.dirty = true
	l.staged = x
	l.Conn.ConfirmBy = &by
	return nil
}

// Confirm puts in place what the consent waiting for confirmation brought,
// as a consent that needed none would have (Activate or StoreStatic, with
// their events), if value is the one whose hash was staged and its time has
// not passed at now.
func (l *Locked) Confirm(ctx context.Context, value string, now time.Time) error {
	x := l.staged
	switch {
	case x.hash == nil:
		return ErrNoConfirmation
	case l.Conn.ConfirmBy != nil && !now.Before(*l.Conn.ConfirmBy):
		return ErrConfirmationExpired
	}
	got := sha256.Sum256([]byte(value))
	if subtle.ConstantTimeCompare(got[:], x.hash) != 1 {
		return ErrConfirmationMismatch
	}
	id := l.Conn.ID
	if x.static != nil {
		creds, err := l.s.open(stagedPlace(id, colStagedStatic, x.hash), x.static)
		if err != nil {
			return err
		}
		if err := l.StoreStatic(ctx, creds, x.schemaHash); err != nil {
			return err
		}
		if err := l.SetConfig(ctx, x.config); err != nil {
			return err
		}
	} else {
		access, err := l.s.open(stagedPlace(id, colStagedAccess, x.hash), x.access)
		if err != nil {
			return err
		}
		refresh, err := l.s.open(stagedPlace(id, colStagedRefr, x.hash), x.refresh)
		if err != nil {
			return err
		}
		if err := l.Activate(ctx, Tokens{Access: access, Refresh: refresh, TokenType: x.tokenType,
			ExpiresAt: x.expires, RefreshExpires: x.refreshExpires, Scopes: x.scopes, Config: x.config}); err != nil {
			return err
		}
	}
	return l.DropStaged(ctx)
}

// DropStaged throws away what waits for confirmation, if anything.
func (l *Locked) DropStaged(ctx context.Context) error {
	if l.staged.hash == nil && l.Conn.ConfirmBy == nil {
		return nil
	}
	if _, err := l.tx.Exec(ctx, `update vault.connections set `+wipeStaged+` where id = $1`, l.uid); err != nil {
		return err
	}
	l.dirty = true
	l.staged, l.Conn.ConfirmBy = stagedSecrets{}, nil
	return nil
}

// ConfirmationsDue lists up to limit connections whose consent waited for
// confirmation past its time at now.
func (s *Store) ConfirmationsDue(ctx context.Context, now time.Time, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `select id::text from vault.connections
		where confirmation_hash is not null and confirm_by <= $1 order by confirm_by limit $2`, now.UTC(), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// Unconfirmed is the reason a consent that was never confirmed fails with.
var Unconfirmed = messages.Reason{Code: "unconfirmed", Message: "The consent was not confirmed by the app in time."}

// ExpireConfirmation ends a consent that waited for confirmation past now:
// its staged secrets are wiped, and a pending connection fails
// (Unconfirmed); a re-consent leaves the connection as it was. They are not
// revoked at the provider: at some providers that ends the person's whole
// grant to the client, the live tokens of a re-consented connection and the
// person's other connections included (docs/INTERNALS.md).
func (l *Locked) ExpireConfirmation(ctx context.Context, now time.Time) error {
	if l.Conn.ConfirmBy == nil || now.Before(*l.Conn.ConfirmBy) {
		return nil
	}
	if l.Conn.Status == messages.StatusPending {
		return l.Fail(ctx, Unconfirmed)
	}
	return l.DropStaged(ctx)
}
