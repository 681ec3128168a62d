// Package vaultapi calls the vault's internal refresh and outbox subjects
// (messages/refresh.go). The refresher holds no secrets and no database: this
// is its only way to the connections.
package vaultapi

import (
	"context"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// DefaultTimeout bounds a call. A refresh run is bounded by the vault's own
// budget instead (messages.RefreshClaimReply.RunTimeoutSeconds) when the
// vault names one.
const DefaultTimeout = 30 * time.Second

// Client is the vault as the refresher sees it.
type Client struct {
	NATS    *natsx.Client
	Timeout time.Duration
}

func (c *Client) call(ctx context.Context, subject string, req, reply any) error {
	return c.NATS.RequestWithin(ctx, c.Timeout, DefaultTimeout, subject, req, reply)
}

// ClaimRefresh leases due connections.
func (c *Client) ClaimRefresh(ctx context.Context, r messages.RefreshClaim) (messages.RefreshClaimReply, error) {
	var reply messages.RefreshClaimReply
	err := c.call(ctx, messages.SubjectVaultRefreshClaim, r, &reply)
	return reply, err
}

// RunRefresh refreshes one claimed connection, waiting at most timeout
// (the vault's own budget for a run; 0 means DefaultTimeout).
func (c *Client) RunRefresh(ctx context.Context, r messages.RefreshRun, timeout time.Duration) (messages.RefreshRunReply, error) {
	var reply messages.RefreshRunReply
	err := c.NATS.RequestWithin(ctx, timeout, DefaultTimeout, messages.SubjectVaultRefreshRun, r, &reply)
	return reply, err
}

// DeferRefresh schedules the next attempt no sooner than r.Until.
func (c *Client) DeferRefresh(ctx context.Context, r messages.RefreshDefer) error {
	return c.call(ctx, messages.SubjectVaultRefreshDefer, r, nil)
}

// ClaimOutbox leases unpublished events.
func (c *Client) ClaimOutbox(ctx context.Context, r messages.OutboxClaim) (messages.OutboxClaimReply, error) {
	var reply messages.OutboxClaimReply
	err := c.call(ctx, messages.SubjectVaultOutboxClaim, r, &reply)
	return reply, err
}

// AckOutbox marks events published.
func (c *Client) AckOutbox(ctx context.Context, ids []string) (int, error) {
	var reply messages.OutboxAckReply
	if err := c.call(ctx, messages.SubjectVaultOutboxAck, messages.OutboxAck{IDs: ids}, &reply); err != nil {
		return 0, err
	}
	return reply.Acked, nil
}
