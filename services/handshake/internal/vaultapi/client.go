// Package vaultapi calls the vault's internal subjects the handshake uses
// (messages/vault.go, messages/static.go): open a pending connection, redeem
// an authorization code, store static credentials, mark a consent failed.
package vaultapi

import (
	"context"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// DefaultTimeout bounds a call whose ctx allows longer. A code exchange or a
// static store's verification includes a request to the provider; the vault
// gives up on that earlier than this.
const DefaultTimeout = 30 * time.Second

// Client is the vault as the handshake sees it.
type Client struct {
	NATS    *natsx.Client
	Timeout time.Duration
}

func (c *Client) call(ctx context.Context, subject string, req, reply any) error {
	return c.NATS.RequestWithin(ctx, c.Timeout, DefaultTimeout, subject, req, reply)
}

// CreateConnection opens a pending connection, or re-opens r.ConnectionID
// for a new consent.
func (c *Client) CreateConnection(ctx context.Context, r messages.VaultCreateConnection) (messages.Connection, error) {
	var conn messages.Connection
	err := c.call(ctx, messages.SubjectVaultConnectionsCreate, r, &conn)
	return conn, err
}

// FailConnection marks a pending connection failed for reason. The vault
// only ever moves a pending connection.
func (c *Client) FailConnection(ctx context.Context, connectionID string, reason messages.Reason) error {
	return c.call(ctx, messages.SubjectVaultConnectionsFail, messages.VaultFailConnection{
		ConnectionID: connectionID,
		Reason:       reason,
	}, nil)
}

// Exchange has the vault redeem an authorization code and activate the
// connection.
func (c *Client) Exchange(ctx context.Context, r messages.VaultExchange) (messages.Connection, error) {
	var conn messages.Connection
	err := c.call(ctx, messages.SubjectVaultExchange, r, &conn)
	return conn, err
}

// StoreStatic hands the vault the credentials a person typed in the hosted
// form; it verifies them if the provider says how, seals them and activates
// the connection.
func (c *Client) StoreStatic(ctx context.Context, r messages.VaultStoreStatic) (messages.Connection, error) {
	var conn messages.Connection
	err := c.call(ctx, messages.SubjectVaultStaticStore, r, &conn)
	return conn, err
}
