// Package web is the handshake's browser edge: the connect link that sends a
// person to the provider (or shows the hosted form for static credentials),
// and the callback the provider sends them back to.
// Everything a person sees is a plain page or a redirect to the app's
// return_url; nothing a provider says is echoed back.
package web

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/handshake/internal/flow"
	"github.com/nexus-broker/nexus/services/handshake/internal/state"
	"github.com/nexus-broker/nexus/services/handshake/internal/vaultapi"
	"github.com/nexus-broker/nexus/shared/ratelimit"
)

// Vault finishes the consents the browser edge takes back: it redeems a
// code, stores static credentials, or marks the connection failed.
type Vault interface {
	Exchange(ctx context.Context, r messages.VaultExchange) (messages.Connection, error)
	StoreStatic(ctx context.Context, r messages.VaultStoreStatic) (messages.Connection, error)
	FailConnection(ctx context.Context, connectionID string, reason messages.Reason) error
}

// FlowStore reads flows: Get leaves the flow in place, Consume takes it,
// and Put puts back a consumed form's flow for another attempt.
type FlowStore interface {
	Get(ctx context.Context, ref string) (flow.Flow, error)
	Consume(ctx context.Context, ref string) (flow.Flow, error)
	Put(ctx context.Context, id string, f flow.Flow, ttl time.Duration) error
}

// Limiter counts a hosted form's submissions per connection (the keyID
// argument), refusing them with rate_limited over its limit
// (shared/ratelimit).
type Limiter interface {
	Allow(ctx context.Context, keyID, workspaceID string) error
}

var (
	_ Vault     = (*vaultapi.Client)(nil)
	_ FlowStore = (*flow.Store)(nil)
	_ Limiter   = (*ratelimit.Limiter)(nil)
)

// Deps is what the browser edge needs.
type Deps struct {
	Flows  FlowStore
	Vault  Vault
	Signer *state.Signer
	Binder *state.Binder
	CSRF   *state.CSRF
	// FormLimit bounds the hosted form's submissions per connection; nil
	// for none.
	FormLimit Limiter
	PublicURL *url.URL
	Now       func() time.Time
	Log       *slog.Logger
	// Registerer receives the callback and form outcome counters; nil for none.
	Registerer prometheus.Registerer
}

// Handler serves the browser edge.
type Handler struct {
	d         Deps
	cookie    cookieSettings
	callbacks *prometheus.CounterVec
	forms     *prometheus.CounterVec
	retries   *background
}

type cookieSettings struct {
	path   string
	secure bool
}

// New returns the browser edge.
func New(d Deps) (*Handler, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{
		d:       d,
		retries: newBackground(),
		cookie: cookieSettings{
			path:   strings.TrimSuffix(d.PublicURL.Path, "/") + "/v1/callback",
			secure: d.PublicURL.Scheme == "https",
		},
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_handshake_callbacks_total",
			Help: "Provider callbacks by outcome: active, failed (sent back to the app) or rejected (error page).",
		}, []string{"result"}),
		forms: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_handshake_credential_forms_total",
			Help: "Credential form submissions by outcome: active, failed (sent back to the app), invalid (shown again with errors), unverified (shown again: the verification request refused them or got no answer), limited (shown again: too many attempts) or refused (error page).",
		}, []string{"result"}),
	}
	if d.Registerer != nil {
		for _, c := range []prometheus.Collector{h.callbacks, h.forms} {
			if err := d.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return h, nil
}

// Mount adds the routes to mux, each wrapped with the security headers.
func (h *Handler) Mount(mux *http.ServeMux) {
	mux.Handle("GET /v1/connect/{flow}", secure(http.HandlerFunc(h.connect)))
	mux.Handle("POST /v1/connect/{flow}", secure(http.HandlerFunc(h.submit)))
	mux.Handle("GET /v1/callback", secure(http.HandlerFunc(h.callback)))
	mux.Handle("GET /v1/callback/{provider}", secure(http.HandlerFunc(h.callback)))
	mux.Handle("/v1/", secure(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { pageNotFound.render(w) })))
}
