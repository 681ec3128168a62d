package client

import (
	"context"

	"github.com/nexus-broker/nexus/messages"
)

// The Gateway's subjects (docs/ARCHITECTURE.md, section 4), one method each.

// HandshakeBegin starts a consent (handshake.begin): send the person to the
// reply's AuthURL before ExpiresAt. With req.ConnectionID set, the person
// consents again to that connection.
func (c *Client) HandshakeBegin(ctx context.Context, req messages.BeginRequest) (messages.BeginReply, error) {
	var out messages.BeginReply
	err := c.call(ctx, messages.SubjectHandshakeBegin, req, &out)
	return out, err
}

// ConnectionsGet reads one connection (connections.get).
func (c *Client) ConnectionsGet(ctx context.Context, ref messages.ConnectionRef) (messages.Connection, error) {
	var out messages.Connection
	err := c.call(ctx, messages.SubjectConnectionsGet, ref, &out)
	return out, err
}

// ConnectionsList reads one page of connections (connections.list); ask for
// the next with Cursor set to the reply's NextCursor until it is empty.
func (c *Client) ConnectionsList(ctx context.Context, req messages.ListConnectionsRequest) (messages.ListConnectionsReply, error) {
	var out messages.ListConnectionsReply
	err := c.call(ctx, messages.SubjectConnectionsList, req, &out)
	return out, err
}

// ConnectionsRevoke revokes a connection (connections.revoke): its secrets
// are wiped, and revoked at the provider where it can. The reply is the
// connection, revoked.
func (c *Client) ConnectionsRevoke(ctx context.Context, ref messages.ConnectionRef) (messages.Connection, error) {
	var out messages.Connection
	err := c.call(ctx, messages.SubjectConnectionsRevoke, ref, &out)
	return out, err
}

// ConnectionsConfirm completes a consent begun with RequireConfirmation
// (connections.confirm), with the value the browser brought back; send it
// only for the person the app began the consent for.
func (c *Client) ConnectionsConfirm(ctx context.Context, req messages.ConfirmRequest) (messages.Connection, error) {
	var out messages.Connection
	err := c.call(ctx, messages.SubjectConnectionsConfirm, req, &out)
	return out, err
}

// TokensGet returns what the next call to the provider needs (tokens.get):
// an access token valid for at least req.MinValidSeconds, or a static
// credential, with the strategy that applies it.
func (c *Client) TokensGet(ctx context.Context, req messages.TokenRequest) (messages.Credential, error) {
	var out messages.Credential
	err := c.call(ctx, messages.SubjectTokensGet, req, &out)
	return out, err
}

// TokensRefresh renews the access token now (tokens.refresh), for a token
// the provider refused before it expired.
func (c *Client) TokensRefresh(ctx context.Context, req messages.TokenRequest) (messages.Credential, error) {
	var out messages.Credential
	err := c.call(ctx, messages.SubjectTokensRefresh, req, &out)
	return out, err
}
