package begin

import (
	"context"
	"net/url"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/handshake/internal/adminapi"
	"github.com/nexus-broker/nexus/services/handshake/internal/discocache"
	"github.com/nexus-broker/nexus/services/handshake/internal/flow"
	"github.com/nexus-broker/nexus/services/handshake/internal/vaultapi"
	"github.com/nexus-broker/nexus/shared/discovery"
	"github.com/nexus-broker/nexus/shared/ratelimit"
)

// Limiter counts a Gateway key's begin for a workspace, refusing it with
// rate_limited over a limit (shared/ratelimit).
type Limiter interface {
	Allow(ctx context.Context, keyID, workspaceID string) error
}

// Providers resolves the provider a consent names (admin).
type Providers interface {
	GetProvider(ctx context.Context, ref string) (messages.Provider, error)
}

// Vault opens the pending connection a consent completes.
type Vault interface {
	CreateConnection(ctx context.Context, r messages.VaultCreateConnection) (messages.Connection, error)
}

// FlowStore keeps new flows.
type FlowStore interface {
	Put(ctx context.Context, id string, f flow.Flow, ttl time.Duration) error
}

// Discoverer returns an OIDC issuer's discovery document.
type Discoverer interface {
	Get(ctx context.Context, issuer string) (discovery.Document, error)
}

// ReturnURLs checks return URLs against the allowlist.
type ReturnURLs interface {
	Check(raw string) (*url.URL, error)
}

var (
	_ Limiter    = (*ratelimit.Limiter)(nil)
	_ Providers  = (*adminapi.Client)(nil)
	_ Vault      = (*vaultapi.Client)(nil)
	_ FlowStore  = (*flow.Store)(nil)
	_ Discoverer = (*discocache.Cache)(nil)
)
