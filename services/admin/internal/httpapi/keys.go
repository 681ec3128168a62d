package httpapi

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/httpserver"
)

// Keys reports on the vault's encryption keys (internal/keys).
type Keys interface {
	Status(ctx context.Context, req messages.KeysStatusRequest) (messages.KeysStatus, error)
}

// NewKeys returns GET /v1/keys: what is sealed under each encryption key,
// and whether a key rotation is complete.
func NewKeys(k Keys, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/keys", func(w http.ResponseWriter, r *http.Request) {
		out, err := k.Status(r.Context(), messages.KeysStatusRequest{})
		if err != nil {
			httpserver.WriteError(w, log, err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, out)
	})
	mux.Handle("/v1/keys", methodNotAllowed("/v1/keys", "GET"))
	return mux
}
