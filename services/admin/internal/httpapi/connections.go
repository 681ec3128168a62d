package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/httpserver"
)

// Connections is the operators' view of connections (internal/connections).
type Connections interface {
	Get(ctx context.Context, ref messages.ConnectionRef) (messages.Connection, error)
	List(ctx context.Context, req messages.ListConnectionsRequest) (messages.ListConnectionsReply, error)
	Revoke(ctx context.Context, ref messages.ConnectionRef) (messages.Connection, error)
}

// NewConnections returns GET /v1/connections (connections.list's fields
// as query parameters), GET /v1/connections/{id} and POST
// /v1/connections/{id}/revoke (workspace_id, optional, as a query
// parameter of both).
func NewConnections(c Connections, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	write := func(w http.ResponseWriter, out any, err error) {
		if err != nil {
			httpserver.WriteError(w, log, err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, out)
	}
	ref := func(r *http.Request) (messages.ConnectionRef, error) {
		q, err := query(r.URL.Query(), "workspace_id")
		return messages.ConnectionRef{ConnectionID: r.PathValue("id"), WorkspaceID: q["workspace_id"]}, err
	}
	mux.HandleFunc("GET /v1/connections", func(w http.ResponseWriter, r *http.Request) {
		q, err := query(r.URL.Query(), "workspace_id", "provider", "status", "limit", "cursor")
		if err != nil {
			write(w, nil, err)
			return
		}
		req := messages.ListConnectionsRequest{WorkspaceID: q["workspace_id"], Provider: q["provider"],
			Status: messages.ConnectionStatus(q["status"]), Cursor: q["cursor"]}
		if s := q["limit"]; s != "" {
			if req.Limit, err = strconv.Atoi(s); err != nil {
				write(w, nil, messages.Errorf(messages.CodeInvalidRequest, "limit must be an integer"))
				return
			}
		}
		out, err := c.List(r.Context(), req)
		write(w, out, err)
	})
	mux.HandleFunc("GET /v1/connections/{id}", func(w http.ResponseWriter, r *http.Request) {
		ref, err := ref(r)
		if err != nil {
			write(w, nil, err)
			return
		}
		out, err := c.Get(r.Context(), ref)
		write(w, out, err)
	})
	mux.HandleFunc("POST /v1/connections/{id}/revoke", func(w http.ResponseWriter, r *http.Request) {
		ref, err := ref(r)
		if err != nil {
			write(w, nil, err)
			return
		}
		out, err := c.Revoke(r.Context(), ref)
		write(w, out, err)
	})
	mux.Handle("/v1/connections", methodNotAllowed("/v1/connections", "GET"))
	mux.Handle("/v1/connections/{id}", methodNotAllowed("/v1/connections/{id}", "GET"))
	mux.Handle("/v1/connections/{id}/revoke", methodNotAllowed("/v1/connections/{id}/revoke", "POST"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpserver.WriteError(w, log, messages.Errorf(messages.CodeNotFound, "no such route: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// query reads the parameters named, refusing any other and any given twice
// (a misspelt filter would otherwise select everything).
func query(q url.Values, names ...string) (map[string]string, error) {
	out := map[string]string{}
	for name, vs := range q {
		switch {
		case !slices.Contains(names, name):
			return nil, messages.Errorf(messages.CodeInvalidRequest, "unknown query parameter %s", strconv.Quote(clip(name)))
		case len(vs) > 1:
			return nil, messages.Errorf(messages.CodeInvalidRequest, "%s is given more than once", name)
		}
		out[name] = vs[0]
	}
	return out, nil
}
