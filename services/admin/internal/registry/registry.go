// Package registry is the provider registry's service layer: validation and
// business rules for provider documents, shared by the NATS and HTTP
// transports. Client secrets pass through it to the vault and nowhere else.
package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/admin/internal/catalog"
	"github.com/nexus-broker/nexus/services/admin/internal/store"
	"github.com/nexus-broker/nexus/shared/discovery"
	"github.com/nexus-broker/nexus/shared/egress"
)

// Store is the persistence the registry needs (implemented by *store.Store).
type Store interface {
	Get(ctx context.Context, ref string) (messages.Provider, error)
	List(ctx context.Context, typ messages.ProviderType, after string, limit int) ([]messages.Provider, error)
	Create(ctx context.Context, p messages.Provider, push store.Push, a store.Audit) (messages.Provider, error)
	Update(ctx context.Context, p messages.Provider, readAt time.Time, push store.Push, a store.Audit) (messages.Provider, error)
	Delete(ctx context.Context, ref string, push func(context.Context, messages.Provider) error, a store.Audit) (messages.Provider, error)
}

var _ Store = (*store.Store)(nil)

// Vault is where client registrations and their secrets go.
type Vault interface {
	PutClient(ctx context.Context, c messages.VaultClient) (messages.VaultClientReply, error)
	DeleteClient(ctx context.Context, providerID string) error
	Health(ctx context.Context, providerIDs []string) (map[string]messages.ProviderHealth, error)
}

// Discoverer reads an OIDC issuer's discovery document, and an OAuth 2.0
// authorization server's metadata (RFC 8414).
type Discoverer interface {
	Discover(ctx context.Context, issuer string) (discovery.Document, error)
	DiscoverAuthorizationServer(ctx context.Context, issuer string) (discovery.Document, error)
}

var _ Discoverer = (*discovery.Client)(nil)

// Registry validates provider documents and keeps store and vault in step.
type Registry struct {
	store    Store
	vault    Vault
	discover Discoverer
	catalog  *catalog.Catalog
	urls     urlRule
	log      *slog.Logger
}

// New returns a registry. private is PROVIDER_PRIVATE_NETWORKS, which
// decides whether provider URLs may use plain http and which address hosts
// they may name (discovery.CheckEndpoint). cat is the catalog providers
// may be created from.
func New(st Store, v Vault, d Discoverer, cat *catalog.Catalog, private egress.Networks, log *slog.Logger) *Registry {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{store: st, vault: v, discover: d, catalog: cat, urls: urlRule(private), log: log}
}

// IDPrefix starts every provider id; names and aliases may not use it.
const IDPrefix = "prv_"

// newID returns "prv_" and 32 hex digits: 6 bytes of milliseconds (so ids,
// and list pages, follow creation order) and 10 random bytes.
func newID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:])
	return IDPrefix + hex.EncodeToString(b[:])
}
