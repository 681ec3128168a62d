package api

import (
	"context"

	"github.com/nexus-broker/nexus/messages"
)

// The operators' view of connections, asked by admin for an operator
// (v1.vault.operator.connections.{get,list,revoke}): the Gateway's handlers, with
// the same replies (a Connection holds no token material) and the same
// revocation, audited with admin's key and the operator's as the actor.
// A request without workspace_id reaches every workspace: operators are
// not a tenant's.

func (h *Handlers) operatorGetConnection(ctx context.Context, r messages.VaultConnectionRef) (messages.Connection, error) {
	return h.getConnection(ctx, messages.ConnectionRef{ConnectionID: r.ConnectionID, WorkspaceID: r.WorkspaceID})
}

func (h *Handlers) operatorListConnections(ctx context.Context, r messages.VaultListConnections) (messages.ListConnectionsReply, error) {
	return h.listConnections(ctx, messages.ListConnectionsRequest{WorkspaceID: r.WorkspaceID, Provider: r.Provider, Status: r.Status, Limit: r.Limit, Cursor: r.Cursor})
}

func (h *Handlers) operatorRevokeConnection(ctx context.Context, r messages.VaultConnectionRef) (messages.Connection, error) {
	return h.revokeConnection(ctx, messages.ConnectionRef{ConnectionID: r.ConnectionID, WorkspaceID: r.WorkspaceID})
}
