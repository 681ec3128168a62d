// Package httpserver runs a service's HTTP listener with health, readiness and
// metrics endpoints, and shuts it down gracefully.
package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nexus-broker/nexus/messages"
)

// Check reports whether a dependency is usable; nil means ready.
type Check func(ctx context.Context) error

// Mount adds /healthz (the process runs), /readyz (every check passes) and
// /metrics to mux.
func Mount(mux *http.ServeMux, reg *prometheus.Registry, checks map[string]Check) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		status, failed := http.StatusOK, map[string]string{}
		for name, check := range checks {
			if err := check(ctx); err != nil {
				status = http.StatusServiceUnavailable
				failed[name] = "not ready"
			}
		}
		if status != http.StatusOK {
			WriteJSON(w, status, map[string]any{"status": "unavailable", "checks": failed})
			return
		}
		WriteJSON(w, status, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}

// Serve serves h on ln until ctx ends, then shuts down within 10 seconds.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

// WriteJSON writes v as a JSON response.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError is the one place where errors become JSON error responses:
// the contract's {"error":{"code","message"}} with its status. Anything that
// is not a *messages.Error is an internal error whose detail stays in the log.
func WriteError(w http.ResponseWriter, log *slog.Logger, err error) {
	var e *messages.Error
	if !errors.As(err, &e) {
		log.Error("request failed", "err", err)
		e = messages.Errorf(messages.CodeInternal, "internal error")
	}
	WriteJSON(w, e.Code.Status(), messages.ErrorBody{Error: e})
}
