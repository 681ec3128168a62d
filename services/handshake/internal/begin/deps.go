package begin

import (
	"context"
	"net/url"
	"time"

	"github.com/nexus-broker/nexus/services/handshake/internal/discocache"
	"github.com/nexus-broker/nexus/services/handshake/internal/flow"
	"github.com/nexus-broker/nexus/shared/discovery"
)

// Requester calls another service's subject (natsx.Client).
type Requester interface {
	Request(ctx context.Context, subject string, req, reply any) error
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
	_ FlowStore  = (*flow.Store)(nil)
	_ Discoverer = (*discocache.Cache)(nil)
)
