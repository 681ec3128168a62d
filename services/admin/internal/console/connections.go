package console

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/admin/internal/store"
	"github.com/nexus-broker/nexus/shared/apikey"
)

// serviceTimeout bounds a call to the vault or the handshake.
const serviceTimeout = 10 * time.Second

func (c *Console) request(ctx context.Context, subject string, req, reply any) error {
	ctx, cancel := context.WithTimeout(ctx, serviceTimeout)
	defer cancel()
	return c.o.Services.Request(ctx, subject, req, reply)
}

// connectionsData is the connections page: the filters and one page.
type connectionsData struct {
	Workspace, Provider, Status string
	Statuses                    []messages.ConnectionStatus
	Page                        messages.ListConnectionsReply
	// Next is the query of the next page, when there is one.
	Next string
}

var statuses = []messages.ConnectionStatus{
	messages.StatusPending, messages.StatusActive, messages.StatusAttentionRequired,
	messages.StatusRevoked, messages.StatusFailed, messages.StatusExpired,
}

// connections lists connections by workspace, provider and status (the
// vault's connections.list, which serves admin: no token material).
func (c *Console) connections(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := connectionsData{Workspace: q.Get("workspace"), Provider: q.Get("provider"), Status: q.Get("status"), Statuses: statuses}
	req := messages.ListConnectionsRequest{WorkspaceID: d.Workspace, Provider: d.Provider, Status: messages.ConnectionStatus(d.Status), Cursor: q.Get("cursor")}
	var err error
	if d.Page, err = c.o.Connections.List(r.Context(), req); err != nil {
		c.fail(w, r, "Connections", err)
		return
	}
	if d.Page.NextCursor != "" {
		next := url.Values{"workspace": {d.Workspace}, "provider": {d.Provider}, "status": {d.Status}, "cursor": {d.Page.NextCursor}}
		d.Next = next.Encode()
	}
	c.render(w, r, http.StatusOK, "connections", d, view{Title: "Connections", Nav: "connections"})
}

// connectionData is one connection's page; Link is a re-consent link just made.
type connectionData struct {
	C    messages.Connection
	Link *messages.BeginReply
	// ReturnURL is the re-consent form's last value.
	ReturnURL string
}

func (c *Console) getConnection(ctx context.Context, id string) (messages.Connection, error) {
	return c.o.Connections.Get(ctx, messages.ConnectionRef{ConnectionID: id})
}

// connection inspects one connection: status, scopes, metadata, config, why
// it needs attention. Connections carry no token material.
func (c *Console) connection(w http.ResponseWriter, r *http.Request) {
	conn, err := c.getConnection(r.Context(), r.PathValue("id"))
	if err != nil {
		c.fail(w, r, "Connection", err)
		return
	}
	c.render(w, r, http.StatusOK, "connection", connectionData{C: conn}, view{Title: "Connection", Nav: "connections", Notice: notice(r)})
}

// revoke revokes a connection (its secrets wiped, and revoked at the
// provider where it can be); the page asked for a confirmation first
// (the form's confirm box).
func (c *Console) revoke(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if r.PostFormValue("confirm") != "yes" {
		c.render(w, r, http.StatusBadRequest, "error", nil, view{Title: "Not revoked", Error: "Tick the confirmation box to revoke the connection."})
		return
	}
	conn, err := c.o.Connections.Revoke(r.Context(), messages.ConnectionRef{ConnectionID: id})
	if err != nil {
		c.fail(w, r, "Revoke", err)
		return
	}
	c.o.Log.Info("console: connection revoked", "connection_id", conn.ConnectionID, "key_id", sessionOf(r.Context()).KeyID)
	http.Redirect(w, r, Prefix+"connections/"+url.PathEscape(conn.ConnectionID)+"?notice=revoked", http.StatusSeeOther)
}

// attention is the queue of connections only their users can fix.
func (c *Console) attention(w http.ResponseWriter, r *http.Request) {
	req := messages.ListConnectionsRequest{Status: messages.StatusAttentionRequired, Cursor: r.URL.Query().Get("cursor")}
	page, err := c.o.Connections.List(r.Context(), req)
	if err != nil {
		c.fail(w, r, "Attention", err)
		return
	}
	c.render(w, r, http.StatusOK, "attention", page, view{Title: "Needs attention", Nav: "attention"})
}

// reconsent begins a re-consent of the connection (handshake.begin naming
// it, as admin: the handshake lets admin begin nothing else), records it in
// admin's audit log with the session's operator, and shows the link to hand
// its user: a link whose record could not be written is not shown. The link
// carries no credential; whoever opens it first owns the consent, and the
// tokens it yields go to the vault and are served only to the Gateway.
func (c *Console) reconsent(w http.ResponseWriter, r *http.Request) {
	conn, err := c.getConnection(r.Context(), r.PathValue("id"))
	if err != nil {
		c.fail(w, r, "Re-consent", err)
		return
	}
	returnURL := strings.TrimSpace(r.PostFormValue("return_url"))
	var link messages.BeginReply
	if err := c.request(r.Context(), messages.SubjectHandshakeBegin, messages.BeginRequest{
		Provider: conn.ProviderID, WorkspaceID: conn.WorkspaceID, ConnectionID: conn.ConnectionID, ReturnURL: returnURL,
	}, &link); err != nil {
		status, msg := c.describe(err)
		c.render(w, r, status, "connection", connectionData{C: conn, ReturnURL: returnURL}, view{Title: "Connection", Nav: "connections", Error: msg})
		return
	}
	keyID := sessionOf(r.Context()).KeyID
	if err := c.o.Reconsents.RecordReconsent(r.Context(), store.Audit{Principal: apikey.Operator, KeyID: keyID}, conn); err != nil {
		c.o.Log.Error("console: the re-consent could not be recorded; its link is not shown", "connection_id", conn.ConnectionID, "err", err)
		c.render(w, r, http.StatusServiceUnavailable, "connection", connectionData{C: conn, ReturnURL: returnURL},
			view{Title: "Connection", Nav: "connections", Error: "The re-consent could not be recorded in the audit log, so its link is not shown. Try again."})
		return
	}
	c.o.Log.Info("console: re-consent begun", "connection_id", conn.ConnectionID, "key_id", keyID)
	c.render(w, r, http.StatusOK, "connection", connectionData{C: conn, Link: &link, ReturnURL: returnURL}, view{Title: "Connection", Nav: "connections"})
}
