// Package admin is the provider registry service: OAuth2/OIDC and static
// credential providers, their aliases and public configuration, served on
// NATS (v1.admin.providers.*) and as an operator HTTP JSON API under
// /v1/providers. Client secrets go to the vault; admin never stores or
// returns them. Every change to a provider is audited with it; audit.list
// (NATS, and GET /v1/audit) reads those records with the vault's. It also
// relays the vault's report on its encryption keys (v1.admin.keys.status,
// GET /v1/keys) and the operators' view of connections
// (v1.admin.connections.*, /v1/connections), and serves the provider
// catalog providers can be created from (v1.admin.providers.templates.*,
// GET /v1/templates) and the operator web console under /console/
// (internal/console).
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-broker/nexus/services/admin/internal/audit"
	"github.com/nexus-broker/nexus/services/admin/internal/catalog"
	"github.com/nexus-broker/nexus/services/admin/internal/connections"
	"github.com/nexus-broker/nexus/services/admin/internal/console"
	"github.com/nexus-broker/nexus/services/admin/internal/httpapi"
	"github.com/nexus-broker/nexus/services/admin/internal/keys"
	"github.com/nexus-broker/nexus/services/admin/internal/natsapi"
	"github.com/nexus-broker/nexus/services/admin/internal/registry"
	"github.com/nexus-broker/nexus/services/admin/internal/store"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/discovery"
	"github.com/nexus-broker/nexus/shared/egress"
	"github.com/nexus-broker/nexus/shared/httpserver"
	"github.com/nexus-broker/nexus/shared/metrics"
	"github.com/nexus-broker/nexus/shared/natsauth"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/pg"
	"github.com/nexus-broker/nexus/shared/ratelimit"
)

// Version is the micro service version.
const Version = "0.1.0"

// DefaultHTTPAddr is where the operator API listens unless HTTP_ADDR says otherwise.
const DefaultHTTPAddr = ":8081"

// Config is admin's configuration.
type Config struct {
	config.Common
	DatabaseURL string // DATABASE_URL
	// OperatorKeys (ADMIN_API_KEY): the operators', on admin's subjects and
	// HTTP API. HandshakeKeys (HANDSHAKE_SERVICE_KEY): the handshake reads
	// providers with it. ServiceKeys (ADMIN_SERVICE_KEY): admin's own, which
	// it presents to the vault.
	OperatorKeys, HandshakeKeys, ServiceKeys []string
	// ProviderNetworks (PROVIDER_PRIVATE_NETWORKS) are the networks
	// discovery may reach although the egress guard refuses them by
	// default, and the only ones plain http may reach.
	ProviderNetworks egress.Networks
	// PublicURL (ADMIN_PUBLIC_URL, optional) is where operators open admin:
	// the console accepts forms from its origin only, and an https one
	// makes its cookies Secure.
	PublicURL *url.URL
	// ConsoleLoginRate (CONSOLE_LOGIN_RATE) bounds console sign-in attempts
	// per client address.
	ConsoleLoginRate ratelimit.Rate
}

// LoadConfig reads the common variables, DATABASE_URL,
// PROVIDER_PRIVATE_NETWORKS, ADMIN_PUBLIC_URL and CONSOLE_LOGIN_RATE, nothing else. A DATABASE_URL that cannot be
// read is reported with the other problems, without its password.
func LoadConfig(l *config.Loader) Config {
	c := Config{
		Common:      l.Common(DefaultHTTPAddr),
		DatabaseURL: l.Required("DATABASE_URL", "the PostgreSQL URL; admin keeps its tables in schema admin"),

		OperatorKeys:  l.Keys(config.OperatorKeys, "the keys operators present to admin", true),
		HandshakeKeys: l.Keys(config.HandshakeServiceKeys, "the key the handshake presents to admin and the vault", true),
		ServiceKeys:   l.Keys(config.AdminServiceKeys, "the key admin presents to the vault", true),

		ProviderNetworks: egress.Load(l),
		ConsoleLoginRate: ratelimit.Load(l, "CONSOLE_LOGIN_RATE", console.DefaultLoginRate),
	}
	if l.String("ADMIN_PUBLIC_URL", "") != "" {
		c.PublicURL = l.URL("ADMIN_PUBLIC_URL", "", "http", "https")
	}
	if c.DatabaseURL != "" {
		if err := pg.CheckURL(c.DatabaseURL); err != nil {
			l.Problem("DATABASE_URL", "%v", err)
		}
	}
	return c
}

// Service is a running admin service.
type Service struct {
	log     *slog.Logger
	pool    *pgxpool.Pool
	nc      *nats.Conn
	svc     *natsx.Service
	console *console.Console
	handler http.Handler
	reg     *prometheus.Registry
}

// Start connects to PostgreSQL (applying admin's migrations) and NATS, and
// serves the providers.* endpoints. Handler serves the HTTP side.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Service, error) {
	if len(cfg.OperatorKeys) == 0 || len(cfg.ServiceKeys) == 0 {
		return nil, errors.New("admin: ADMIN_API_KEY and ADMIN_SERVICE_KEY are required")
	}
	// The catalog is part of the binary: a template that does not pass the
	// registry's own validation is a build that must not run.
	cat, err := catalog.Load(registry.CheckTemplate)
	if err != nil {
		return nil, fmt.Errorf("admin: the embedded provider catalog is invalid: %w", err)
	}
	callers := apikey.NewSet().Add(apikey.Operator, cfg.OperatorKeys).Add(apikey.Handshake, cfg.HandshakeKeys)
	s := &Service{log: log}
	if s.pool, err = pg.Connect(ctx, cfg.DatabaseURL, 8); err != nil {
		return nil, err
	}
	if err := store.Migrate(ctx, s.pool); err != nil {
		s.pool.Close()
		return nil, err
	}
	if s.nc, err = natsx.Connect(cfg.NATSURL, natsauth.Admin, log, natsx.TLS(cfg.Common)...); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("nats: %w", err) // natsx.Connect names the server, without its password
	}
	st := store.New(s.pool, nil)
	vaultClient := &natsx.Client{NC: s.nc, Prefix: cfg.Prefix, APIKey: apikey.Outgoing(cfg.ServiceKeys)}
	vault := registry.NATSVault{Client: vaultClient}
	reg := registry.New(st, vault, discovery.New(egress.New(egress.Options{Private: cfg.ProviderNetworks})), cat, cfg.ProviderNetworks, log)
	auditLog := audit.New(st, vault, log)
	relay := keys.Relay{Client: vaultClient, Log: log}
	conns := connections.Relay{Client: vaultClient, Log: log}
	prom := metrics.NewRegistry()
	s.reg = prom
	s.svc, err = natsx.NewService(s.nc, natsx.ServiceConfig{
		Name:        "admin",
		Version:     Version,
		Description: "Nexus Broker provider registry",
		Prefix:      cfg.Prefix,
		Callers:     callers,
		Log:         log,
		Registerer:  prom,
	})
	if err == nil {
		err = errors.Join(natsapi.Register(s.svc, reg, auditLog), natsapi.RegisterKeys(s.svc, relay), natsapi.RegisterTemplates(s.svc, cat),
			natsapi.RegisterConnections(s.svc, conns))
	}
	if err == nil {
		// The endpoints are subscribed once Start returns, so a request
		// sent right after does not meet "no responders".
		err = s.nc.FlushTimeout(10 * time.Second)
	}
	if err != nil {
		_ = s.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	s.console, err = console.New(console.Options{
		Registry: reg, Templates: cat, Audit: auditLog, Reconsents: st, Keys: relay, Connections: conns,
		Services: vaultClient, Events: s.nc, Prefix: cfg.Prefix,
		Callers: callers, OperatorKeys: cfg.OperatorKeys, Pool: s.pool, URL: cfg.PublicURL, LoginRate: cfg.ConsoleLoginRate,
		Registerer: prom, Log: log,
	})
	if err != nil {
		_ = s.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("admin: console: %w", err)
	}
	s.handler = s.routes(reg, auditLog, relay, conns, cat, callers, prom)
	return s, nil
}

func (s *Service) routes(reg *registry.Registry, auditLog *audit.Log, relay keys.Relay, conns connections.Relay, cat *catalog.Catalog, callers *apikey.Set, prom *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, s.console.Handler())
	api := httpserver.RequireBearer(callers, apikey.Operator, s.log, httpapi.New(reg, auditLog, s.log))
	mux.Handle("/v1/providers", api)
	mux.Handle("/v1/providers/", api)
	mux.Handle("/v1/audit", api)
	mux.Handle("/v1/keys", httpserver.RequireBearer(callers, apikey.Operator, s.log, httpapi.NewKeys(relay, s.log)))
	connAPI := httpserver.RequireBearer(callers, apikey.Operator, s.log, httpapi.NewConnections(conns, s.log))
	mux.Handle("/v1/connections", connAPI)
	mux.Handle("/v1/connections/", connAPI)
	templates := httpserver.RequireBearer(callers, apikey.Operator, s.log, httpapi.NewTemplates(cat, s.log))
	mux.Handle("/v1/templates", templates)
	mux.Handle("/v1/templates/", templates)
	httpserver.Mount(mux, prom, map[string]httpserver.Check{
		"postgres": func(ctx context.Context) error { return s.pool.Ping(ctx) },
		"nats":     natsx.Ready(s.nc),
	})
	return mux
}

// Metrics is the service's Prometheus registry, what /metrics serves: the
// deploy module's dashboard test checks its queries against it.
func (s *Service) Metrics() *prometheus.Registry { return s.reg }

// Handler serves /v1/providers, /v1/audit, /v1/keys, /v1/connections and /v1/templates (bearer API
// key), the console under /console/ (its own sign-in), /healthz, /readyz and /metrics.
func (s *Service) Handler() http.Handler { return s.handler }

// Close stops the endpoints, drains NATS and closes the pool.
func (s *Service) Close(ctx context.Context) error {
	var err error
	if s.svc != nil {
		err = s.svc.Stop()
	}
	natsx.Drain(ctx, s.nc)
	if s.pool != nil {
		s.pool.Close()
	}
	return err
}
