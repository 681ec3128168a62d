// Package api answers the vault's NATS subjects: one file per area
// (connections, tokens, exchange, clients). Handlers decode and validate the
// request, call the store, the provider client and the refresher, and map
// every error to the contract in one place (errors.go).
package api

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/cache"
	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
	"github.com/nexus-broker/nexus/services/vault/internal/provider"
	"github.com/nexus-broker/nexus/services/vault/internal/refresh"
	"github.com/nexus-broker/nexus/services/vault/internal/static"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// Store is the storage the handlers use; each file declares its part.
type Store interface {
	connectionStore
	tokenStore
	exchangeStore
	clientStore
	refreshStore
	outboxStore
	staticStore
}

// Provider is what the handlers ask of providers.
type Provider interface {
	Exchange(ctx context.Context, cl store.Client, r provider.ExchangeRequest) (store.Tokens, error)
	Revoke(ctx context.Context, cl store.Client, token keyring.Secret, hint string) error
}

// Verifier makes a static provider's verification request (internal/static).
type Verifier interface {
	Verify(ctx context.Context, v messages.Verification, st messages.Strategy, creds map[string]any) error
}

// Refresher renews tokens (internal/refresh).
type Refresher interface {
	Refresh(ctx context.Context, id, providerID string, need refresh.Need) (refresh.Result, error)
}

var (
	_ Store     = (*store.Store)(nil)
	_ Provider  = (*provider.Client)(nil)
	_ Refresher = (*refresh.Refresher)(nil)
	_ Verifier  = (*static.Verifier)(nil)
)

// Deps are the handlers' collaborators.
type Deps struct {
	Store     Store
	Provider  Provider
	Refresher Refresher
	// Verifier and Schemas serve static credentials (defaults when nil).
	Verifier Verifier
	Schemas  *static.Schemas
	Cache    *cache.Cache
	// Invalidate drops a connection from every replica's cache (this one's
	// at once, the others' by broadcast).
	Invalidate func(id string)
	Log        *slog.Logger
	Now        func() time.Time
}

// Handlers answers the vault's subjects.
type Handlers struct {
	Deps
}

// New returns the handlers.
func New(d Deps) *Handlers {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Verifier == nil {
		d.Verifier = static.NewVerifier(0, d.Now)
	}
	if d.Schemas == nil {
		d.Schemas = static.NewSchemas()
	}
	if d.Invalidate == nil {
		d.Invalidate = d.Cache.Invalidate
	}
	return &Handlers{Deps: d}
}

// Register adds every endpoint to svc.
func (h *Handlers) Register(svc *natsx.Service) error {
	endpoints := []struct {
		subject string
		fn      natsx.Handler
	}{
		{messages.SubjectConnectionsGet, h.getConnection},
		{messages.SubjectConnectionsList, h.listConnections},
		{messages.SubjectConnectionsRevoke, h.revokeConnection},
		{messages.SubjectTokensGet, h.getToken},
		{messages.SubjectTokensRefresh, h.refreshToken},
		{messages.SubjectVaultConnectionsCreate, h.createConnection},
		{messages.SubjectVaultConnectionsFail, h.failConnection},
		{messages.SubjectVaultExchange, h.exchange},
		{messages.SubjectVaultStaticStore, h.storeStatic},
		{messages.SubjectVaultClientsPut, h.putClient},
		{messages.SubjectVaultClientsDelete, h.deleteClient},
		{messages.SubjectVaultRefreshClaim, h.claimRefresh},
		{messages.SubjectVaultRefreshRun, h.runRefresh},
		{messages.SubjectVaultRefreshDefer, h.deferRefresh},
		{messages.SubjectVaultOutboxClaim, h.claimOutbox},
		{messages.SubjectVaultOutboxAck, h.ackOutbox},
	}
	for _, e := range endpoints {
		var fast natsx.FastHandler
		if e.subject == messages.SubjectTokensGet {
			fast = h.getTokenFast
		}
		if err := svc.HandleFast(e.subject, fast, h.mapped(e.fn)); err != nil {
			return err
		}
	}
	return nil
}

// mapped runs fn and turns its error into the contract's (errors.go).
func (h *Handlers) mapped(fn natsx.Handler) natsx.Handler {
	return func(ctx context.Context, req micro.Request) (any, error) {
		reply, err := fn(ctx, req)
		if err != nil {
			return nil, h.contractError(err)
		}
		return reply, nil
	}
}

// connection reads a connection named in a request; with workspaceID set,
// one of another workspace is not_found.
func (h *Handlers) connection(ctx context.Context, id, workspaceID string) (store.Connection, error) {
	c, err := h.Store.GetConnection(ctx, id)
	if err != nil {
		return store.Connection{}, err
	}
	if err := inWorkspace(c, workspaceID); err != nil {
		return store.Connection{}, err
	}
	return c, nil
}

// inWorkspace answers not_found for a connection of another workspace.
func inWorkspace(c store.Connection, workspaceID string) error {
	if workspaceID != "" && c.WorkspaceID != workspaceID {
		return store.ErrNotFound
	}
	return nil
}
