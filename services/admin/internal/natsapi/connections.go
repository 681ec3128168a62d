package natsapi

import (
	"context"
	"errors"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// Connections is the operators' view of connections (internal/connections).
type Connections interface {
	Get(ctx context.Context, ref messages.ConnectionRef) (messages.Connection, error)
	List(ctx context.Context, req messages.ListConnectionsRequest) (messages.ListConnectionsReply, error)
	Revoke(ctx context.Context, ref messages.ConnectionRef) (messages.Connection, error)
}

// RegisterConnections adds connections.{get,list,revoke} to svc, for
// operators only.
func RegisterConnections(svc *natsx.Service, c Connections) error {
	operator := natsx.For(apikey.Operator)
	return errors.Join(
		natsx.Endpoint(svc, messages.SubjectAdminConnectionsGet, c.Get, operator),
		natsx.Endpoint(svc, messages.SubjectAdminConnectionsList, c.List, operator),
		natsx.Endpoint(svc, messages.SubjectAdminConnectionsRevoke, c.Revoke, operator),
	)
}
