// Package api answers the vault's NATS subjects: one file per area
// (connections, tokens, exchange, static, clients, refresh, outbox, keys). Each
// handler takes its typed request (natsx decodes it) and returns its typed
// reply; it validates, calls the store, the provider and the refresher, and
// its errors become the contract's in one place (errors.go).
package api

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/cache"
	"github.com/nexus-broker/nexus/services/vault/internal/provider"
	"github.com/nexus-broker/nexus/services/vault/internal/refresh"
	"github.com/nexus-broker/nexus/services/vault/internal/secret"
	"github.com/nexus-broker/nexus/services/vault/internal/static"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/egress"
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
	auditStore
	keysStore
}

// Provider is what the handlers ask of providers, in the vault's own terms
// (the vault package adapts internal/provider to it).
type Provider interface {
	Exchange(ctx context.Context, cl store.Client, r provider.ExchangeRequest) (store.Tokens, error)
	Revoke(ctx context.Context, cl store.Client, token secret.Value, hint string) error
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
	// Cache holds what tokens.get served. The handlers read and fill it;
	// the store's commit hook empties it (vault.go), so no handler has to
	// remember to.
	Cache *cache.Cache
	// AuditLog, when set, is written out before vault.audit.list reads.
	AuditLog AuditLog
	Log      *slog.Logger
	Now      func() time.Time
	// ProviderNetworks is PROVIDER_PRIVATE_NETWORKS: with it, clients.put
	// checks provider URLs as admin does (discovery.CheckEndpoint), and the
	// default Verifier's guard opens these networks.
	ProviderNetworks egress.Networks

	// RefreshLimit bounds tokens.refresh (nil for no limit).
	RefreshLimit RateLimiter
	// CacheCounts counts tokens.get's cache hits and misses (nil: not counted).
	CacheCounts *CacheCounts
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
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Verifier == nil {
		d.Verifier = static.NewVerifier(egress.New(egress.Options{Private: d.ProviderNetworks}), d.Now)
	}
	if d.Schemas == nil {
		d.Schemas = static.NewSchemas()
	}
	return &Handlers{Deps: d}
}

// Register adds every endpoint to svc, which must map errors with
// ContractError. Each endpoint serves only its callers: the Gateway the
// contract's subjects, each service the internal subjects it uses. Every
// request to the Gateway's subjects and to the consent's leaves an audit
// record (audited: the service's Audit, internal/audit), refusals included.
func (h *Handlers) Register(svc *natsx.Service) error {
	gateway := natsx.For(apikey.Gateway)
	handshake := natsx.For(apikey.Handshake)
	admin := natsx.For(apikey.Admin)
	refresher := natsx.For(apikey.Refresher)
	audited := natsx.Audited()
	return errors.Join(
		natsx.Endpoint(svc, messages.SubjectConnectionsGet, h.getConnection, gateway, audited),
		natsx.Endpoint(svc, messages.SubjectConnectionsList, h.listConnections, gateway, audited),
		natsx.Endpoint(svc, messages.SubjectConnectionsRevoke, h.revokeConnection, gateway, audited),
		natsx.Endpoint(svc, messages.SubjectConnectionsConfirm, h.confirmConnection, gateway, audited),
		natsx.FastEndpoint(svc, messages.SubjectTokensGet, h.CacheCounts.count(h.getTokenFast), h.getToken, gateway, audited),
		natsx.Endpoint(svc, messages.SubjectTokensRefresh, h.refreshToken, gateway, audited),
		natsx.Endpoint(svc, messages.SubjectVaultConnectionsCreate, h.createConnection, handshake, audited),
		natsx.Endpoint(svc, messages.SubjectVaultConnectionsFail, h.failConnection, handshake, audited),
		natsx.Endpoint(svc, messages.SubjectVaultExchange, h.exchange, handshake, audited),
		natsx.Endpoint(svc, messages.SubjectVaultStaticStore, h.storeStatic, handshake, audited, natsx.MaxBytes(MaxCredentialBytes+1024)),
		natsx.Endpoint(svc, messages.SubjectVaultClientsPut, h.putClient, admin, natsx.MaxBytes(MaxSchemaBytes+16<<10)),
		natsx.Endpoint(svc, messages.SubjectVaultClientsDelete, h.deleteClient, admin),
		natsx.Endpoint(svc, messages.SubjectVaultClientsHealth, h.clientsHealth, admin),
		natsx.Endpoint(svc, messages.SubjectVaultAuditList, h.listAudit, admin),
		natsx.Endpoint(svc, messages.SubjectVaultKeysStatus, h.keysStatus, admin),
		natsx.Endpoint(svc, messages.SubjectVaultOperatorConnectionsGet, h.operatorGetConnection, admin, audited),
		natsx.Endpoint(svc, messages.SubjectVaultOperatorConnectionsList, h.operatorListConnections, admin, audited),
		natsx.Endpoint(svc, messages.SubjectVaultOperatorConnectionsRevoke, h.operatorRevokeConnection, admin, audited),
		natsx.Endpoint(svc, messages.SubjectVaultRefreshClaim, h.claimRefresh, refresher),
		natsx.Endpoint(svc, messages.SubjectVaultRefreshRun, h.runRefresh, refresher),
		natsx.Endpoint(svc, messages.SubjectVaultRefreshDefer, h.deferRefresh, refresher),
		natsx.Endpoint(svc, messages.SubjectVaultOutboxClaim, h.claimOutbox, refresher),
		natsx.Endpoint(svc, messages.SubjectVaultOutboxAck, h.ackOutbox, refresher),
	)
}

// requireWorkspace: a Gateway key names the workspace of what it asks for,
// unless it is one of the cross-workspace keys (CROSS_WORKSPACE_API_KEY), so
// that an app bug or a stolen key of one tenant does not reach the others.
func requireWorkspace(ctx context.Context, workspaceID string) error {
	c := natsx.CallerOf(ctx)
	if workspaceID == "" && c.Principal == apikey.Gateway && !c.CrossWorkspace {
		return messages.Errorf(messages.CodeForbidden, "workspace_id is required: this key may not reach across workspaces")
	}
	return nil
}

// requireID checks a request names a connection.
func requireID(id string) error {
	if id == "" {
		return messages.Errorf(messages.CodeInvalidRequest, "connection_id is required")
	}
	return nil
}

// connection reads a connection named in a request; with workspaceID set,
// one of another workspace is not_found.
func (h *Handlers) connection(ctx context.Context, id, workspaceID string) (store.Connection, error) {
	if err := requireID(id); err != nil {
		return store.Connection{}, err
	}
	if err := requireWorkspace(ctx, workspaceID); err != nil {
		return store.Connection{}, err
	}
	c, err := h.Store.GetConnection(ctx, id)
	if err != nil {
		return store.Connection{}, err
	}
	if err := inWorkspace(c.WorkspaceID, workspaceID); err != nil {
		return store.Connection{}, err
	}
	return c, nil
}

// inWorkspace answers not_found for a connection (of workspace has) asked
// for in another workspace (asked; empty for a cross-workspace key).
func inWorkspace(has, asked string) error {
	if asked != "" && has != asked {
		return store.ErrNotFound
	}
	return nil
}
