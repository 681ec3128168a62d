package httpapi

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/httpserver"
)

// Templates is the provider catalog (internal/catalog).
type Templates interface {
	List(ctx context.Context, req struct{}) (messages.ListTemplatesReply, error)
	Get(ctx context.Context, ref messages.TemplateRef) (messages.Template, error)
}

// NewTemplates returns GET /v1/templates (the catalog) and GET
// /v1/templates/{name} (one template).
func NewTemplates(t Templates, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	write := func(w http.ResponseWriter, out any, err error) {
		if err != nil {
			httpserver.WriteError(w, log, err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, out)
	}
	mux.HandleFunc("GET /v1/templates", func(w http.ResponseWriter, r *http.Request) {
		out, err := t.List(r.Context(), struct{}{})
		write(w, out, err)
	})
	mux.HandleFunc("GET /v1/templates/{name}", func(w http.ResponseWriter, r *http.Request) {
		out, err := t.Get(r.Context(), messages.TemplateRef{Template: r.PathValue("name")})
		write(w, out, err)
	})
	mux.Handle("/v1/templates", methodNotAllowed("/v1/templates", "GET"))
	mux.Handle("/v1/templates/{name}", methodNotAllowed("/v1/templates/{name}", "GET"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpserver.WriteError(w, log, messages.Errorf(messages.CodeNotFound, "no such route: %s %s", r.Method, r.URL.Path))
	})
	return mux
}
