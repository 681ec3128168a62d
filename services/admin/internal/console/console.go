// Package console is the operator web console, served by admin under
// /console/: providers (create from the catalog or by hand, edit, aliases,
// the client secret write-only), connections (filter, inspect, revoke), the
// attention queue with a re-consent link to hand the user, live lifecycle
// events (Server-Sent Events from a JetStream consumer), the audit log and
// the encryption keys' status.
//
// An operator signs in with an ADMIN_API_KEY; the session is a random id in
// an HttpOnly, SameSite=Strict cookie (Secure, with the __Host- prefix,
// when the console's URL is https), kept server-side by its hash
// (session.go). Every state-changing form carries the session's
// synchronizer token and must come with the console's own Origin. Pages are
// server-rendered with html/template from embedded files, under a strict
// Content-Security-Policy: no inline script or style, nothing from another
// origin.
package console

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/admin/internal/store"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/ratelimit"
)

// Prefix is the console's route prefix on admin's HTTP server.
const Prefix = "/console/"

// DefaultLoginRate bounds sign-in attempts per client address.
const DefaultLoginRate = "10/m"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/*
var staticFS embed.FS

// Registry is the provider registry (internal/registry).
type Registry interface {
	Create(ctx context.Context, doc json.RawMessage) (messages.Provider, error)
	Get(ctx context.Context, ref messages.ProviderRef) (messages.Provider, error)
	List(ctx context.Context, req messages.ListProvidersRequest) (messages.ListProvidersReply, error)
	Update(ctx context.Context, u messages.ProviderUpdate) (messages.Provider, error)
}

// Templates is the provider catalog (internal/catalog).
type Templates interface {
	List(ctx context.Context, req struct{}) (messages.ListTemplatesReply, error)
	Get(ctx context.Context, ref messages.TemplateRef) (messages.Template, error)
}

// AuditLog is admin's audit.list (internal/audit).
type AuditLog interface {
	List(ctx context.Context, r messages.AuditListRequest) (messages.AuditListReply, error)
}

// ReconsentLog records who made a re-consent link (internal/store).
type ReconsentLog interface {
	RecordReconsent(ctx context.Context, a store.Audit, conn messages.Connection) error
}

var _ ReconsentLog = (*store.Store)(nil)

// Keys is the vault's keys report (internal/keys).
type Keys interface {
	Status(ctx context.Context, req messages.KeysStatusRequest) (messages.KeysStatus, error)
}

// Requester calls another service's subject with admin's service key
// (natsx.Client): the vault's connections.{get,list,revoke} and the
// handshake's handshake.begin, which serve admin for the console.
type Requester interface {
	Request(ctx context.Context, subject string, req, reply any) error
}

// Connections reads and revokes connections as operators see them
// (internal/connections, over the vault's operator subjects).
type Connections interface {
	Get(ctx context.Context, ref messages.ConnectionRef) (messages.Connection, error)
	List(ctx context.Context, req messages.ListConnectionsRequest) (messages.ListConnectionsReply, error)
	Revoke(ctx context.Context, ref messages.ConnectionRef) (messages.Connection, error)
}

// EventSource subscribes to the events' subjects (a *nats.Conn).
type EventSource interface {
	ChanSubscribe(subject string, ch chan *nats.Msg) (*nats.Subscription, error)
}

// Options are the console's collaborators and settings.
type Options struct {
	Registry  Registry
	Templates Templates
	Audit     AuditLog
	// Reconsents records each re-consent link with its operator: the
	// vault's record of the consent names admin, which asked for it.
	Reconsents ReconsentLog
	Keys       Keys
	// Connections is the operators' view of connections at the vault (no
	// token material; the vault's audit names the session's operator key).
	Connections Connections
	// Services reaches the handshake, for re-consent links.
	Services Requester
	// Events delivers the live events as the relay publishes them (a core
	// NATS subscription: admin has no JetStream API).
	Events EventSource
	Prefix string // the subject prefix
	// Callers are the keys admin accepts; only an operator's signs in.
	// OperatorKeys are ADMIN_API_KEY's: a session lasts only while the key
	// it was opened with is still one of them (a key removed in a rotation
	// ends its sessions when admin restarts with the new list).
	Callers      *apikey.Set
	OperatorKeys []string
	// Pool holds the sessions and the login counts (schema admin).
	Pool *pgxpool.Pool
	// URL is where operators open admin (ADMIN_PUBLIC_URL): its origin is
	// the only one forms are accepted from, and an https one makes the
	// cookie Secure. Empty: the origin of each request's own Host, over
	// plain http unless the request came over TLS.
	URL        *url.URL
	LoginRate  ratelimit.Rate
	Registerer prometheus.Registerer
	Log        *slog.Logger
	Now        func() time.Time
}

// Console serves /console/.
type Console struct {
	o        Options
	sessions *sessions
	limit    *ratelimit.Limiter
	pages    pages
	mux      *http.ServeMux
}

// New returns the console; Handler serves it.
func New(o Options) (*Console, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Registry == nil || o.Templates == nil || o.Audit == nil || o.Reconsents == nil || o.Keys == nil || o.Connections == nil || o.Services == nil || o.Events == nil || o.Callers == nil || o.Pool == nil {
		return nil, errors.New("console: every collaborator is required")
	}
	limit, err := ratelimit.New(ratelimit.Options{
		Endpoint: "console.login", Limits: ratelimit.Limits{PerKey: o.LoginRate},
		Counter: loginCounts(o.Pool), Now: o.Now, Log: o.Log, Registerer: o.Registerer,
	})
	if err != nil {
		return nil, err
	}
	p, err := loadPages()
	if err != nil {
		return nil, err
	}
	live := map[string]bool{}
	for _, k := range o.OperatorKeys {
		if caller, ok := o.Callers.Identify(k); ok && caller.Principal == apikey.Operator {
			live[caller.KeyID] = true
		}
	}
	c := &Console{o: o, sessions: &sessions{pool: o.Pool, now: o.Now, live: live}, limit: limit, pages: p}
	c.mux = c.routes()
	return c, nil
}

// Handler serves every route under Prefix, with the console's security
// headers on every answer.
func (c *Console) Handler() http.Handler { return securityHeaders(c.mux) }

func (c *Console) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /console/static/", http.StripPrefix("/console/", http.FileServerFS(staticFS)))
	mux.HandleFunc("GET /console/login", c.loginPage)
	mux.HandleFunc("POST /console/login", c.login)
	mux.Handle("POST /console/logout", c.form(c.logout))

	mux.Handle("GET /console/{$}", c.page(c.home))
	mux.Handle("GET /console/providers", c.page(c.providers))
	mux.Handle("GET /console/providers/new", c.page(c.newProvider))
	mux.Handle("POST /console/providers", c.form(c.createProvider))
	mux.Handle("GET /console/providers/{id}", c.page(c.provider))
	mux.Handle("POST /console/providers/{id}", c.form(c.updateProvider))
	mux.Handle("GET /console/connections", c.page(c.connections))
	mux.Handle("GET /console/connections/{id}", c.page(c.connection))
	mux.Handle("POST /console/connections/{id}/revoke", c.form(c.revoke))
	mux.Handle("POST /console/connections/{id}/reconsent", c.form(c.reconsent))
	mux.Handle("GET /console/attention", c.page(c.attention))
	mux.Handle("GET /console/events", c.page(c.events))
	mux.Handle("GET /console/events/stream", c.page(c.stream))
	mux.Handle("GET /console/audit", c.page(c.audit))
	mux.Handle("GET /console/keys", c.page(c.keys))
	mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		c.render(w, r, http.StatusNotFound, "error", nil, view{Title: "Not found", Error: "There is no such page."})
	})
	return mux
}

// ContentSecurityPolicy is sent with every console answer: the console's
// own scripts, styles and images only, its own EventSource (connect-src),
// forms posted only to itself, never framed.
const ContentSecurityPolicy = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// same-origin, not no-referrer: under no-referrer browsers send
		// "Origin: null" with form posts, and the Origin check needs theirs.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
