package console

import (
	"net/http"
	"net/url"

	"github.com/nexus-broker/nexus/messages"
)

// auditData is the audit page: the filters and one page of records.
type auditData struct {
	Principal, Action, Target, Workspace string
	Page                                 messages.AuditListReply
	Next                                 string
}

// audit reads admin's audit.list (admin's records and the vault's, newest
// first) with the filters of the form.
func (c *Console) audit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := auditData{Principal: q.Get("principal"), Action: q.Get("action"), Target: q.Get("target"), Workspace: q.Get("workspace")}
	page, err := c.o.Audit.List(r.Context(), messages.AuditListRequest{
		Principal: d.Principal, Action: d.Action, Target: d.Target, WorkspaceID: d.Workspace, Cursor: q.Get("cursor"),
	})
	if err != nil {
		c.fail(w, r, "Audit log", err)
		return
	}
	d.Page = page
	if page.NextCursor != "" {
		d.Next = url.Values{"principal": {d.Principal}, "action": {d.Action}, "target": {d.Target}, "workspace": {d.Workspace}, "cursor": {page.NextCursor}}.Encode()
	}
	c.render(w, r, http.StatusOK, "audit", d, view{Title: "Audit log", Nav: "audit"})
}

// keys shows the vault's report on its encryption keys.
func (c *Console) keys(w http.ResponseWriter, r *http.Request) {
	st, err := c.o.Keys.Status(r.Context(), messages.KeysStatusRequest{})
	if err != nil {
		c.fail(w, r, "Keys", err)
		return
	}
	c.render(w, r, http.StatusOK, "keys", st, view{Title: "Encryption keys", Nav: "keys"})
}

// homeData is the overview: how many connections need their users.
type homeData struct {
	Attention int
	More      bool
}

// home is the overview page.
func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	page, err := c.o.Connections.List(r.Context(), messages.ListConnectionsRequest{Status: messages.StatusAttentionRequired})
	if err != nil {
		c.fail(w, r, "Overview", err)
		return
	}
	c.render(w, r, http.StatusOK, "home", homeData{Attention: len(page.Connections), More: page.NextCursor != ""}, view{Title: "Overview"})
}
