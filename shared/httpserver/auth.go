package httpserver

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/apikey"
)

// RequireBearer lets through only requests with "Authorization: Bearer <key>"
// naming a caller of principal (401 for no or an unknown key, 403 for
// another principal's key), with the caller in the request's context
// (apikey.CallerOf).
func RequireBearer(callers *apikey.Set, principal string, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		c, known := callers.Identify(strings.TrimSpace(token))
		switch {
		case !ok || !known:
			w.Header().Set("WWW-Authenticate", `Bearer realm="nexus"`)
			WriteError(w, log, messages.Errorf(messages.CodeUnauthorized, "missing or invalid bearer API key"))
		case c.Principal != principal:
			WriteError(w, log, messages.Errorf(messages.CodeForbidden, "this key may not use this API"))
		default:
			next.ServeHTTP(w, r.WithContext(apikey.WithCaller(r.Context(), c)))
		}
	})
}
