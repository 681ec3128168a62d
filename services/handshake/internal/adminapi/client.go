// Package adminapi calls the admin service's provider lookup
// (messages.SubjectProvidersGet), which begin uses to resolve the provider a
// consent names.
package adminapi

import (
	"context"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// DefaultTimeout bounds a call whose ctx allows longer.
const DefaultTimeout = 10 * time.Second

// Client is admin as the handshake sees it.
type Client struct {
	NATS    *natsx.Client
	Timeout time.Duration
}

// GetProvider returns the provider named by ref: its id, name or alias.
// An unknown one is a *messages.Error with CodeNotFound.
func (c *Client) GetProvider(ctx context.Context, ref string) (messages.Provider, error) {
	var p messages.Provider
	err := c.NATS.RequestWithin(ctx, c.Timeout, DefaultTimeout, messages.SubjectProvidersGet, messages.ProviderRef{Provider: ref}, &p)
	return p, err
}
