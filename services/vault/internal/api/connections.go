package api

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
	"github.com/nexus-broker/nexus/services/vault/internal/provider"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
)

type connectionStore interface {
	GetConnection(ctx context.Context, id string) (store.Connection, error)
	ListConnections(ctx context.Context, f store.ListFilter) ([]store.Connection, bool, error)
	CreateConnection(ctx context.Context, n store.NewConnection) (store.Connection, error)
	ReopenConnection(ctx context.Context, id string, n store.NewConnection) (store.Connection, error)
	WithLock(ctx context.Context, id string, fn func(ctx context.Context, l *store.Locked) error) (store.Connection, error)
	GetClient(ctx context.Context, providerID string) (store.Client, error)
}

// revokeTimeout bounds the call to the provider's revocation endpoint.
const revokeTimeout = 5 * time.Second

// connections.get
func (h *Handlers) getConnection(ctx context.Context, r messages.ConnectionRef) (messages.Connection, error) {
	c, err := h.connection(ctx, r.ConnectionID, r.WorkspaceID)
	if err != nil {
		return messages.Connection{}, err
	}
	return c.Message(), nil
}

const cursorPrefix = "c1:"

func encodeCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + id))
}

func decodeCursor(s string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", false
	}
	id, ok := strings.CutPrefix(string(b), cursorPrefix)
	return id, ok && id != ""
}

// connections.list
func (h *Handlers) listConnections(ctx context.Context, r messages.ListConnectionsRequest) (messages.ListConnectionsReply, error) {
	if err := requireWorkspace(ctx, r.WorkspaceID); err != nil {
		return messages.ListConnectionsReply{}, err
	}
	f := store.ListFilter{WorkspaceID: r.WorkspaceID, Provider: r.Provider, Status: r.Status, Limit: r.Limit}
	switch {
	case r.Limit < 0:
		return messages.ListConnectionsReply{}, messages.Errorf(messages.CodeInvalidRequest, "limit must be between 1 and %d", messages.MaxListLimit)
	case r.Limit == 0:
		f.Limit = messages.DefaultListLimit
	case r.Limit > messages.MaxListLimit:
		f.Limit = messages.MaxListLimit
	}
	if r.Status != "" && !r.Status.Valid() {
		return messages.ListConnectionsReply{}, messages.Errorf(messages.CodeInvalidRequest, "unknown status %q", r.Status)
	}
	if r.Cursor != "" {
		id, ok := decodeCursor(r.Cursor)
		if !ok {
			return messages.ListConnectionsReply{}, messages.Errorf(messages.CodeInvalidRequest, "invalid cursor")
		}
		f.AfterID = id
	}
	conns, more, err := h.Store.ListConnections(ctx, f)
	if errors.Is(err, store.ErrNotFound) {
		return messages.ListConnectionsReply{}, messages.Errorf(messages.CodeInvalidRequest, "invalid cursor")
	}
	if err != nil {
		return messages.ListConnectionsReply{}, err
	}
	out := messages.ListConnectionsReply{Connections: make([]messages.Connection, 0, len(conns))}
	for _, c := range conns {
		out.Connections = append(out.Connections, c.Message())
	}
	if more {
		out.NextCursor = encodeCursor(conns[len(conns)-1].ID)
	}
	return out, nil
}

// connections.revoke: wipe the secrets and mark revoked (the commit stops
// every replica serving it), then revoke at the provider (RFC 7009) where it
// can, with the tokens read under the lock and no transaction open while
// the provider answers.
func (h *Handlers) revokeConnection(ctx context.Context, r messages.ConnectionRef) (messages.Connection, error) {
	c, err := h.connection(ctx, r.ConnectionID, r.WorkspaceID)
	if err != nil {
		return messages.Connection{}, err
	}
	if c.Status == messages.StatusRevoked {
		return c.Message(), nil
	}
	cl, clErr := h.Store.GetClient(ctx, c.ProviderID)
	if errors.Is(clErr, keyring.ErrUnknownKey) {
		// A client secret this vault cannot open yet: one that can revokes
		// at the provider too.
		return messages.Connection{}, clErr
	}
	var held store.Tokens
	c, err = h.Store.WithLock(ctx, c.ID, func(ctx context.Context, l *store.Locked) error {
		if l.Conn.Status == messages.StatusRevoked {
			return nil
		}
		t, err := l.Tokens()
		switch {
		case errors.Is(err, keyring.ErrUnknownKey):
			// Sealed under a key this vault does not hold (a rotation under
			// way): nothing changes, because a vault that holds the key can
			// still revoke them at the provider; wiping them here would
			// leave the grant alive there.
			return err
		case err != nil:
			h.Log.Error("revoke: cannot open the connection's tokens; revoking locally only", "connection_id", l.Conn.ID, "err", err)
		}
		held = t
		return l.Revoke(ctx)
	})
	if err != nil {
		return messages.Connection{}, err
	}
	if clErr == nil {
		h.revokeAtProvider(ctx, c, cl, held)
	}
	return c.Message(), nil
}

// revokeAtProvider presents the refresh token (or the access token when
// there is none) to the provider's revocation endpoint. A failure is logged:
// the connection is revoked here whatever the provider says.
func (h *Handlers) revokeAtProvider(ctx context.Context, c store.Connection, cl store.Client, t store.Tokens) {
	if cl.Type == messages.ProviderStatic || cl.RevocationEndpoint == "" {
		return // static credentials have no revocation endpoint: wiping them is all
	}
	token, hint := t.Refresh, "refresh_token"
	if token.IsZero() {
		token, hint = t.Access, "access_token"
	}
	if token.IsZero() {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), revokeTimeout)
	defer cancel()
	if err := h.Provider.Revoke(rctx, cl, token, hint); err != nil && !errors.Is(err, provider.ErrNoRevocationEndpoint) {
		h.Log.Warn("revoke at provider failed; revoked locally", "connection_id", c.ID, "provider_id", cl.ProviderID, "err", err)
	}
}

// vault.connections.create: a pending connection, or an existing one
// prepared for a new consent.
func (h *Handlers) createConnection(ctx context.Context, r messages.VaultCreateConnection) (messages.Connection, error) {
	if r.ProviderID == "" || r.WorkspaceID == "" {
		return messages.Connection{}, messages.Errorf(messages.CodeInvalidRequest, "provider_id and workspace_id are required")
	}
	if len(r.Scopes) > messages.MaxScopes {
		return messages.Connection{}, messages.Errorf(messages.CodeInvalidRequest, "at most %d scopes", messages.MaxScopes)
	}
	for _, s := range r.Scopes {
		if !messages.ValidScope(s) {
			return messages.Connection{}, messages.Errorf(messages.CodeInvalidRequest, "scopes must be OAuth 2.0 scope tokens (printable, no spaces, at most %d bytes)", messages.MaxScopeLen)
		}
	}
	if len(r.Metadata) > 0 {
		if b, err := json.Marshal(r.Metadata); err != nil || len(b) > messages.MaxMetadataBytes {
			return messages.Connection{}, messages.Errorf(messages.CodeInvalidRequest, "metadata must be a JSON object of at most %d bytes", messages.MaxMetadataBytes)
		}
	}
	if r.ExpiresAt != nil {
		if now := h.Now(); !r.ExpiresAt.After(now) || r.ExpiresAt.After(now.Add(maxConsentWait)) {
			return messages.Connection{}, messages.Errorf(messages.CodeInvalidRequest, "expires_at must be within %s from now", maxConsentWait)
		}
	}
	n := store.NewConnection{ProviderID: r.ProviderID, WorkspaceID: r.WorkspaceID, Scopes: r.Scopes, Metadata: r.Metadata, ExpiresAt: r.ExpiresAt}
	var (
		c   store.Connection
		err error
	)
	if r.ConnectionID != "" {
		c, err = h.Store.ReopenConnection(ctx, r.ConnectionID, n)
	} else {
		c, err = h.Store.CreateConnection(ctx, n)
	}
	if err != nil {
		return messages.Connection{}, err
	}
	return c.Message(), nil
}

// vault.connections.fail: a pending connection becomes failed. A connection
// in any other status is returned as it is: a failed re-consent leaves an
// active or attention_required connection (and its tokens) alone.
func (h *Handlers) failConnection(ctx context.Context, r messages.VaultFailConnection) (messages.Connection, error) {
	if err := requireID(r.ConnectionID); err != nil {
		return messages.Connection{}, err
	}
	if r.Reason.Code == "" {
		r.Reason.Code = "consent_failed"
	}
	c, err := h.failPending(ctx, r.ConnectionID, r.Reason)
	if err != nil {
		return messages.Connection{}, err
	}
	return c.Message(), nil
}

// failPending marks connection id failed if it is still pending, and returns
// it as it is then. The one way a consent ends in failure: a refused
// consent, a failed code exchange, a refused verification.
func (h *Handlers) failPending(ctx context.Context, id string, reason messages.Reason) (store.Connection, error) {
	return h.Store.WithLock(ctx, id, func(ctx context.Context, l *store.Locked) error {
		if l.Conn.Status != messages.StatusPending {
			return nil
		}
		return l.Fail(ctx, reason)
	})
}

// maxConfirmWait bounds how long a consent may wait for confirmation, and
// maxConsentWait how far ahead its link may expire: the longest a consent
// link lives, with room to spare.
const (
	maxConfirmWait = 2 * time.Hour
	maxConsentWait = 2 * time.Hour
)

// checkConfirmation checks what the handshake asks a consent to wait for.
func checkConfirmation(c *messages.Confirmation, now time.Time) error {
	if c == nil {
		return nil
	}
	if len(c.Hash) != sha256.Size || !c.By.After(now) || c.By.After(now.Add(maxConfirmWait)) {
		return messages.Errorf(messages.CodeInvalidRequest, "confirm needs a SHA-256 hash and a time within %s", maxConfirmWait)
	}
	return nil
}

// connections.confirm: the Gateway brings the value the browser came back
// with after a consent begun with require_confirmation; what the consent
// brought takes effect (the connection becomes active, or a re-consent's new
// tokens replace the old ones).
func (h *Handlers) confirmConnection(ctx context.Context, r messages.ConfirmRequest) (messages.Connection, error) {
	if _, err := h.connection(ctx, r.ConnectionID, r.WorkspaceID); err != nil {
		return messages.Connection{}, err
	}
	if r.Confirmation == "" {
		return messages.Connection{}, messages.Errorf(messages.CodeInvalidRequest, "confirmation is required")
	}
	now := h.Now()
	c, err := h.Store.WithLock(ctx, r.ConnectionID, func(ctx context.Context, l *store.Locked) error {
		if err := inWorkspace(l.Conn.WorkspaceID, r.WorkspaceID); err != nil {
			return err
		}
		err := l.Confirm(ctx, r.Confirmation, now)
		if errors.Is(err, store.ErrConfirmationExpired) {
			// Ended now rather than at the next sweep.
			if xerr := l.ExpireConfirmation(ctx, now); xerr != nil {
				return xerr
			}
		}
		return err
	})
	if err != nil {
		return messages.Connection{}, err
	}
	return c.Message(), nil
}
