package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/pg"
)

const connectionColumns = `c.id::text, c.provider_id, coalesce(p.provider_name, c.provider_id), c.workspace_id,
	c.status, c.scopes, c.requested_scopes, c.metadata, c.token_type, c.token_version,
	c.expires_at, c.refresh_expires_at, c.last_refreshed_at,
	c.attention_code, c.attention_message, c.attention_since, c.failure_code, c.failure_message,
	c.refresh_token is not null, c.refresh_due_at, c.refresh_attempts, c.created_at, c.updated_at,
	coalesce(p.type, ''), p.strategy, c.static_credentials is not null, coalesce(c.credential_schema_hash, ''),
	case when c.confirmation_hash is not null then c.confirm_by end,
	coalesce(c.refresh_inflight_owner, ''), c.refresh_inflight_until, c.failure_since, c.config`

// secretColumns follow connectionColumns where the secrets are read.
const secretColumns = `, c.access_token, c.refresh_token, c.static_credentials`

const connectionFrom = ` from vault.connections c left join vault.provider_clients p on p.provider_id = c.provider_id`

// scanConnection reads connectionColumns followed by extra destinations.
func scanConnection(row pgx.Row, extra ...any) (Connection, error) {
	var (
		c                 Connection
		status            string
		attCode, attMsg   *string
		attSince          *time.Time
		failCode, failMsg *string
		failSince         *time.Time
		providerType      string
	)
	dest := []any{&c.ID, &c.ProviderID, &c.ProviderName, &c.WorkspaceID,
		&status, &c.Scopes, &c.RequestedScopes, &c.Metadata, &c.TokenType, &c.TokenVersion,
		&c.ExpiresAt, &c.RefreshExpires, &c.LastRefreshedAt,
		&attCode, &attMsg, &attSince, &failCode, &failMsg,
		&c.HasRefreshToken, &c.RefreshDue, &c.RefreshAttempts, &c.CreatedAt, &c.UpdatedAt,
		&providerType, &c.Strategy, &c.HasStaticCredentials, &c.CredentialSchemaHash, &c.ConfirmBy,
		&c.RefreshInFlightOwner, &c.RefreshInFlightUntil, &failSince, &c.Config}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return Connection{}, ErrNotFound
		}
		return Connection{}, err
	}
	c.Status = messages.ConnectionStatus(status)
	c.ProviderType = messages.ProviderType(providerType)
	if attCode != nil && attSince != nil {
		c.Attention = &messages.Attention{Code: *attCode, Message: deref(attMsg), Since: attSince.UTC()}
	}
	if failCode != nil {
		c.Failure = &messages.Attention{Code: *failCode, Message: deref(failMsg)}
		if failSince != nil {
			c.Failure.Since = failSince.UTC()
		}
	}
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	c.ExpiresAt, c.RefreshExpires, c.LastRefreshedAt, c.RefreshDue = utc(c.ExpiresAt), utc(c.RefreshExpires), utc(c.LastRefreshedAt), utc(c.RefreshDue)
	c.ConfirmBy, c.RefreshInFlightUntil = utc(c.ConfirmBy), utc(c.RefreshInFlightUntil)
	return c, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// GetConnection returns a connection without its secrets.
func (s *Store) GetConnection(ctx context.Context, id string) (Connection, error) {
	uid, ok := parseID(id)
	if !ok {
		return Connection{}, ErrNotFound
	}
	return scanConnection(s.pool.QueryRow(ctx, "select "+connectionColumns+connectionFrom+" where c.id = $1", uid))
}

// GetWithTokens returns a connection and its tokens in plaintext.
func (s *Store) GetWithTokens(ctx context.Context, id string) (Connection, Tokens, error) {
	uid, ok := parseID(id)
	if !ok {
		return Connection{}, Tokens{}, ErrNotFound
	}
	var sealed sealedSecrets
	c, err := scanConnection(s.pool.QueryRow(ctx, "select "+connectionColumns+secretColumns+connectionFrom+" where c.id = $1", uid), sealed.dest()...)
	if err != nil {
		return Connection{}, Tokens{}, err
	}
	t, err := s.openTokens(c, sealed)
	return c, t, err
}

// sealedSecrets are a connection's sealed columns, as read (secretColumns).
type sealedSecrets struct {
	access, refresh, static []byte
}

func (x *sealedSecrets) dest() []any { return []any{&x.access, &x.refresh, &x.static} }

func (s *Store) openTokens(c Connection, x sealedSecrets) (Tokens, error) {
	a, err := s.open(connectionPlace(c.ID, colAccess, c.TokenVersion), x.access)
	if err != nil {
		return Tokens{}, err
	}
	r, err := s.open(connectionPlace(c.ID, colRefresh, c.TokenVersion), x.refresh)
	if err != nil {
		return Tokens{}, err
	}
	st, err := s.open(connectionPlace(c.ID, colStatic, c.TokenVersion), x.static)
	if err != nil {
		return Tokens{}, err
	}
	return Tokens{Access: a, Refresh: r, Static: st, TokenType: c.TokenType, ExpiresAt: c.ExpiresAt, RefreshExpires: c.RefreshExpires, Scopes: c.Scopes}, nil
}

// ListFilter selects connections; every field is optional.
type ListFilter struct {
	WorkspaceID string
	// Provider matches the provider id or its current name.
	Provider string
	Status   messages.ConnectionStatus
	// AfterID is the keyset cursor: only connections with a greater id.
	AfterID string
	Limit   int
}

// ListConnections returns up to f.Limit connections in id order, and whether
// more follow.
func (s *Store) ListConnections(ctx context.Context, f ListFilter) ([]Connection, bool, error) {
	var w pg.Where
	w.Equal("c.workspace_id", f.WorkspaceID)
	if f.Provider != "" {
		a := w.Arg(f.Provider)
		w.Add("c.provider_id in (select provider_id from vault.provider_clients where provider_id = " + a + " or provider_name = " + a + " or aliases @> array[" + a + "::text] union all select " + a + ")")
	}
	w.Equal("c.status", string(f.Status))
	if f.AfterID != "" {
		uid, ok := parseID(f.AfterID)
		if !ok {
			return nil, false, fmt.Errorf("%w: cursor", ErrNotFound)
		}
		w.Add("c.id > " + w.Arg(uid))
	}
	q := "select " + connectionColumns + connectionFrom + w.String() + " order by c.id limit " + w.Arg(f.Limit+1)
	rows, err := s.pool.Query(ctx, q, w.Args...)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	var out []Connection
	for rows.Next() {
		c, err := scanConnection(rows)
		if err != nil {
			return nil, false, err
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	page, more := pg.Page(out, f.Limit)
	return page, more, nil
}

// NewConnection is a consent about to start.
type NewConnection struct {
	ProviderID  string
	WorkspaceID string
	Scopes      []string
	Metadata    map[string]any
	// ExpiresAt is when the consent's link expires (nil: unknown, and the
	// consent gets PendingLifetime).
	ExpiresAt *time.Time
}

// CreateConnection stores a pending connection and its created event.
func (s *Store) CreateConnection(ctx context.Context, n NewConnection) (Connection, error) {
	id, err := NewID()
	if err != nil {
		return Connection{}, err
	}
	if n.Metadata == nil {
		n.Metadata = map[string]any{}
	}
	if n.Scopes == nil {
		n.Scopes = []string{}
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Connection{}, err
	}
	defer rollback(ctx, tx)
	// for share: a concurrent clients.delete waits, and then sees this connection.
	var name string
	err = tx.QueryRow(ctx, "select provider_name from vault.provider_clients where provider_id = $1 for share", n.ProviderID).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return Connection{}, ErrProviderNotFound
	}
	if err != nil {
		return Connection{}, err
	}
	now := s.clock()
	_, err = tx.Exec(ctx, `insert into vault.connections (id, provider_id, workspace_id, status, scopes, requested_scopes, metadata,
		pending_until, created_at, updated_at)
		values ($1, $2, $3, 'pending', $4, $4, $5, $6, $7, $7)`, id, n.ProviderID, n.WorkspaceID, n.Scopes, n.Metadata, pendingUntil(n.ExpiresAt, now), now)
	if err != nil {
		return Connection{}, err
	}
	c := Connection{ID: id, ProviderID: n.ProviderID, ProviderName: name, WorkspaceID: n.WorkspaceID, Status: messages.StatusPending,
		Scopes: n.Scopes, RequestedScopes: n.Scopes, Metadata: n.Metadata, CreatedAt: now, UpdatedAt: now}
	if err := insertEvent(ctx, tx, c, messages.EventCreated, nil, now); err != nil {
		return Connection{}, err
	}
	if err := commit(ctx, tx); err != nil {
		return Connection{}, err
	}
	// A new connection is in no cache: only the relay needs telling.
	s.committed(Change{}, 1)
	return c, nil
}

// ReopenConnection prepares an existing connection for a new consent (the
// same workspace and provider): it records the scopes asked for (with those
// an active or attention_required connection was granted: a consent asking
// for more adds to the grant, it does not narrow it) and, when given,
// replaces the metadata, and when the consent expires. The status is left
// as it is: an active or attention_required connection keeps serving what
// it has until the new consent completes, and only a pending one expires.
func (s *Store) ReopenConnection(ctx context.Context, id string, n NewConnection) (Connection, error) {
	return s.WithLock(ctx, id, func(ctx context.Context, l *Locked) error {
		c := l.Conn
		if c.WorkspaceID != n.WorkspaceID {
			return ErrNotFound
		}
		if c.ProviderID != n.ProviderID {
			return ErrProviderMismatch
		}
		if c.Status == messages.StatusRevoked {
			return ErrRevoked
		}
		scopes := n.Scopes
		if scopes == nil {
			scopes = []string{}
		}
		if c.Status == messages.StatusActive || c.Status == messages.StatusAttentionRequired {
			scopes = unionScopes(scopes, c.Scopes)
		}
		md := c.Metadata
		if n.Metadata != nil {
			md = n.Metadata
		}
		now := l.s.clock()
		if _, err := l.tx.Exec(ctx, "update vault.connections set requested_scopes = $2, metadata = $3, pending_until = $5, updated_at = $4 where id = $1",
			l.uid, scopes, md, now, pendingUntil(n.ExpiresAt, now)); err != nil {
			return err
		}
		l.dirty, l.served = true, true
		l.Conn.RequestedScopes, l.Conn.Metadata, l.Conn.UpdatedAt = scopes, md, now
		return nil
	})
}

// unionScopes is requested followed by the granted scopes it lacks: what an
// incremental consent asks for.
func unionScopes(requested, granted []string) []string {
	out := slices.Clone(requested)
	for _, s := range granted {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
