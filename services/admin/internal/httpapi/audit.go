package httpapi

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/httpserver"
)

// auditParams are GET /v1/audit's query parameters: audit.list's fields.
var auditParams = []string{"since", "until", "principal", "key_id", "target", "workspace_id", "action", "limit", "cursor"}

// GET /v1/audit: audit.list, its filters as query parameters (since and
// until as RFC 3339 times). A parameter it does not know is refused by
// name, as a field is on NATS: a misspelt filter would otherwise select
// everything.
func (a *api) listAudit(w http.ResponseWriter, r *http.Request) {
	req, err := auditRequest(r.URL.Query())
	if err != nil {
		a.fail(w, err)
		return
	}
	out, err := a.audit.List(r.Context(), req)
	if err != nil {
		a.fail(w, err)
		return
	}
	httpserver.WriteJSON(w, http.StatusOK, out)
}

// auditRequest reads the query, reporting every problem at once: unknown
// parameters first, then the others' in the order of auditParams.
func auditRequest(q url.Values) (messages.AuditListRequest, error) {
	var ps []string
	for name := range q {
		if !slices.Contains(auditParams, name) {
			ps = append(ps, "unknown query parameter "+strconv.Quote(clip(name)))
		}
	}
	slices.Sort(ps)
	var req messages.AuditListRequest
	for _, name := range auditParams {
		if len(q[name]) > 1 {
			ps = append(ps, name+" is given more than once")
		}
		v := q.Get(name)
		if v == "" {
			continue
		}
		switch name {
		case "since", "until":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				ps = append(ps, name+" must be an RFC 3339 time, such as 2030-01-02T15:04:05Z")
			}
			if name == "since" {
				req.Since = t
			} else {
				req.Until = t
			}
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil {
				ps = append(ps, "limit must be an integer")
			}
			req.Limit = n
		case "principal":
			req.Principal = v
		case "key_id":
			req.KeyID = v
		case "target":
			req.Target = v
		case "workspace_id":
			req.WorkspaceID = v
		case "action":
			req.Action = v
		case "cursor":
			req.Cursor = v
		}
	}
	if len(ps) > 0 {
		return messages.AuditListRequest{}, messages.Errorf(messages.CodeInvalidRequest, "invalid audit query: %s", strings.Join(ps, "; "))
	}
	return req, nil
}

// clip bounds a name quoted back.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
