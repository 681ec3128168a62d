// Package connections relays operators' requests about connections to the
// vault (v1.admin.connections.{get,list,revoke} on NATS, /v1/connections
// over HTTP, to v1.vault.operator.connections.*): the operators' view of
// connections, which holds no token material. Admin adds the operator's key
// id, so the vault's audit record names who asked; the vault keeps the
// connections and answers.
package connections

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// Timeout bounds the vault's answer; a revocation calls the provider's
// revocation endpoint (5 s at most) before it answers.
const Timeout = 15 * time.Second

// Relay asks the vault, presenting admin's key.
type Relay struct {
	Client *natsx.Client
	Log    *slog.Logger
}

// Get is one connection.
func (r Relay) Get(ctx context.Context, ref messages.ConnectionRef) (messages.Connection, error) {
	var out messages.Connection
	return out, r.ask(ctx, messages.SubjectVaultOperatorConnectionsGet, r.vaultRef(ctx, ref), &out)
}

// Revoke revokes one connection (its secrets wiped, and revoked at the
// provider where it can be), as the Gateway's connections.revoke does.
func (r Relay) Revoke(ctx context.Context, ref messages.ConnectionRef) (messages.Connection, error) {
	var out messages.Connection
	return out, r.ask(ctx, messages.SubjectVaultOperatorConnectionsRevoke, r.vaultRef(ctx, ref), &out)
}

// List is a page of connections, of every workspace unless the request
// names one.
func (r Relay) List(ctx context.Context, req messages.ListConnectionsRequest) (messages.ListConnectionsReply, error) {
	var out messages.ListConnectionsReply
	err := r.ask(ctx, messages.SubjectVaultOperatorConnectionsList, messages.VaultListConnections{
		WorkspaceID: req.WorkspaceID, Provider: req.Provider, Status: req.Status, Limit: req.Limit, Cursor: req.Cursor,
		Actor: apikey.CallerOf(ctx).KeyID,
	}, &out)
	return out, err
}

func (r Relay) vaultRef(ctx context.Context, ref messages.ConnectionRef) messages.VaultConnectionRef {
	return messages.VaultConnectionRef{ConnectionID: ref.ConnectionID, WorkspaceID: ref.WorkspaceID, Actor: apikey.CallerOf(ctx).KeyID}
}

// ask passes the vault's own error replies on as they are; anything else
// means the vault could not be reached.
func (r Relay) ask(ctx context.Context, subject string, req, out any) error {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	err := r.Client.Request(ctx, subject, req, out)
	var e *messages.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e) && !errors.Is(err, natsx.ErrNoAnswer):
		return e
	}
	r.Log.Warn("vault request failed", "subject", subject, "err", err)
	return messages.Errorf(messages.CodeUnavailable, "the vault could not be reached")
}
