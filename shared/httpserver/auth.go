package httpserver

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/apikey"
)

// RequireBearer lets through only requests with "Authorization: Bearer <key>"
// naming one of keys.
func RequireBearer(keys *apikey.Keys, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		token, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || !keys.Valid(strings.TrimSpace(token)) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nexus"`)
			WriteError(w, log, messages.Errorf(messages.CodeUnauthorized, "missing or invalid bearer API key"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
