// Package handshake is the public browser edge of Nexus Broker and the NATS
// endpoint that starts a consent (handshake.begin). It is the only reader of
// STATE_KEY. It builds authorization requests (signed state, PKCE S256, OIDC
// nonce), keeps pending flows sealed and single-use in Redis, receives the
// provider's callback, has the vault redeem the code and sends the browser
// back to the app. For static-credential providers it serves the hosted form
// and hands what the person typed to the vault, once. It never sees a client secret or a refresh token.
package handshake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/nexus-broker/nexus/services/handshake/internal/adminapi"
	"github.com/nexus-broker/nexus/services/handshake/internal/begin"
	"github.com/nexus-broker/nexus/services/handshake/internal/discocache"
	"github.com/nexus-broker/nexus/services/handshake/internal/flow"
	"github.com/nexus-broker/nexus/services/handshake/internal/keys"
	"github.com/nexus-broker/nexus/services/handshake/internal/redislimit"
	"github.com/nexus-broker/nexus/services/handshake/internal/returnurl"
	"github.com/nexus-broker/nexus/services/handshake/internal/state"
	"github.com/nexus-broker/nexus/services/handshake/internal/vaultapi"
	"github.com/nexus-broker/nexus/services/handshake/internal/web"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/egress"
	"github.com/nexus-broker/nexus/shared/httpserver"
	"github.com/nexus-broker/nexus/shared/metrics"
	"github.com/nexus-broker/nexus/shared/natsauth"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/ratelimit"
	"github.com/nexus-broker/nexus/shared/redisx"
)

// Name and Version identify the service in NATS micro discovery.
const (
	Name    = "handshake"
	Version = "0.1.0"
)

// DefaultFlowTTL is how long a consent link works.
const DefaultFlowTTL = 10 * time.Minute

// The default limits of handshake.begin: a Gateway key may start 600
// consents a minute across all its workspaces, a workspace 60, whichever
// keys start them. Only begin is limited: a consent once begun finishes
// (connect link, callback, hosted form) whatever the limits.
const (
	DefaultBeginRatePerKey       = "600/m"
	DefaultBeginRatePerWorkspace = "60/m"
)

// DefaultCredentialFormRate bounds the hosted form's submissions that reach
// the verification request, per connection: a person who mistyped a key
// tries again, and no one guesses keys through the form.
const DefaultCredentialFormRate = "5/10m"

// Config is the handshake's configuration.
type Config struct {
	config.Common
	RedisURL          string        // REDIS_URL
	StateKey          []byte        // STATE_KEY: 32 bytes; state, browser binding and flow sealing keys derive from it
	PreviousStateKeys [][]byte      // STATE_KEYS_PREVIOUS: during a rotation what they made is still accepted; STATE_KEY alone makes anything new
	PublicURL         string        // PUBLIC_URL: where browsers reach this service (http or https, absolute)
	AllowedReturnURLs []string      // ALLOWED_RETURN_URLS: where browsers may be sent back to
	FlowTTL           time.Duration // FLOW_TTL: how long a consent link works (10m)
	// RedisKeyPrefix (REDIS_KEY_PREFIX, default "nexus:hs:") is where flows
	// and cached discovery documents live, so deployments can share a Redis.
	RedisKeyPrefix string
	// InternalHTTPAddr (INTERNAL_HTTP_ADDR, default :9080) serves /readyz and
	// /metrics for probes and Prometheus, away from the public edge.
	InternalHTTPAddr string
	// BeginLimits bound handshake.begin per Gateway key
	// (BEGIN_RATE_PER_KEY, default 600/m) and per workspace
	// (BEGIN_RATE_PER_WORKSPACE, default 60/m), counted in Redis across
	// replicas. The zero value is no limit; LoadConfig gives the defaults.
	BeginLimits ratelimit.Limits
	// FormRate (CREDENTIAL_FORM_RATE, default 5/10m) bounds the hosted
	// form's submissions per connection, counted in Redis; zero is no limit.
	FormRate ratelimit.Rate

	// GatewayKeys (API_KEY) are the keys the Gateway presents on
	// handshake.begin; ServiceKeys (HANDSHAKE_SERVICE_KEY) the handshake's
	// own, presented to the vault and admin (the first; the others are
	// older ones during a rotation).
	GatewayKeys, ServiceKeys []string
	// AdminKeys (ADMIN_SERVICE_KEY, optional): admin's, which may begin a
	// re-consent of an existing connection for the operator console (a
	// link to hand its user), and nothing else.
	AdminKeys []string

	// ProviderNetworks (PROVIDER_PRIVATE_NETWORKS) are the networks
	// discovery may reach although the egress guard refuses them by
	// default, and the only ones plain http may reach.
	ProviderNetworks egress.Networks

	// Now is the clock; nil means time.Now. For tests of expiry.
	Now func() time.Time
}

// LogValue keeps STATE_KEY out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("nats_url", c.RedactedNATSURL()), slog.String("prefix", c.Prefix), slog.String("http_addr", c.HTTPAddr),
		slog.String("public_url", c.PublicURL), slog.Any("allowed_return_urls", c.AllowedReturnURLs),
		slog.Duration("flow_ttl", c.FlowTTL), slog.String("provider_private_networks", c.ProviderNetworks.String()),
		slog.String("state_key", "[redacted]"), slog.Int("previous_state_keys", len(c.PreviousStateKeys)),
		slog.String("begin_rate_per_key", c.BeginLimits.PerKey.String()), slog.String("begin_rate_per_workspace", c.BeginLimits.PerWorkspace.String()),
		slog.String("credential_form_rate", c.FormRate.String()))
}

// LoadConfig reads the handshake's variables: the common ones, REDIS_URL,
// STATE_KEY, STATE_KEYS_PREVIOUS, PUBLIC_URL, ALLOWED_RETURN_URLS, FLOW_TTL,
// the limits of handshake.begin and of the hosted form, and
// PROVIDER_PRIVATE_NETWORKS. Problems are
// collected in l.
func LoadConfig(l *config.Loader) Config {
	c := Config{
		Common:            l.Common(":8080"),
		RedisURL:          l.Required("REDIS_URL", "the Redis server holding pending consent flows"),
		StateKey:          l.Key32("STATE_KEY"),
		PreviousStateKeys: l.Keys32("STATE_KEYS_PREVIOUS"),
		PublicURL:         l.Required("PUBLIC_URL", "the http(s) URL where browsers reach the handshake, such as https://connect.example.com"),
		AllowedReturnURLs: l.List("ALLOWED_RETURN_URLS", nil),
		FlowTTL:           l.Duration("FLOW_TTL", DefaultFlowTTL),
		InternalHTTPAddr:  l.String("INTERNAL_HTTP_ADDR", ":9080"),
		RedisKeyPrefix:    l.String("REDIS_KEY_PREFIX", flow.DefaultPrefix),
		GatewayKeys:       l.Keys(config.GatewayKeys, "the keys the Gateway presents", true),
		ServiceKeys:       l.Keys(config.HandshakeServiceKeys, "the key the handshake presents to the vault and admin", true),
		AdminKeys:         l.Keys(config.AdminServiceKeys, "the key admin presents to begin a re-consent for the console", false),
		BeginLimits: ratelimit.Limits{
			PerKey:       ratelimit.Load(l, "BEGIN_RATE_PER_KEY", DefaultBeginRatePerKey),
			PerWorkspace: ratelimit.Load(l, "BEGIN_RATE_PER_WORKSPACE", DefaultBeginRatePerWorkspace),
		},
		FormRate:         ratelimit.Load(l, "CREDENTIAL_FORM_RATE", DefaultCredentialFormRate),
		ProviderNetworks: egress.Load(l),
	}
	if c.RedisURL != "" {
		if err := redisx.CheckURL(c.RedisURL); err != nil {
			l.Problem("REDIS_URL", "%v", err)
		}
	}
	if c.PublicURL != "" {
		if _, err := parsePublicURL(c.PublicURL); err != nil {
			l.Problem("PUBLIC_URL", "%v", err)
		}
	}
	if len(c.AllowedReturnURLs) == 0 {
		l.Problem("ALLOWED_RETURN_URLS", "is required (comma-separated URLs the browser may be sent back to after a consent, such as https://app.example.com/connected)")
	} else if _, err := returnurl.Parse(c.AllowedReturnURLs); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			l.Problem("ALLOWED_RETURN_URLS", "%s", line)
		}
	}
	if c.FlowTTL < time.Minute || c.FlowTTL > time.Hour {
		l.Problem("FLOW_TTL", "must be between 1m and 1h")
	}
	return c
}

// parsePublicURL checks PUBLIC_URL: absolute https (http only on a
// loopback host, for development: the callback carries authorization codes
// and the form carries credentials), no userinfo, query or fragment. The
// result has no trailing slash.
func parsePublicURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(raw, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, errors.New("must be an absolute https URL")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, errors.New("must not carry userinfo, a query or a fragment")
	}
	if u.Scheme == "http" && !loopback(u.Hostname()) {
		return nil, errors.New("must use https (http only on a loopback host such as 127.0.0.1 or localhost, for development)")
	}
	return u, nil
}

// loopback reports whether host is localhost or a loopback address.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// Service is a running handshake.
type Service struct {
	log      *slog.Logger
	rdb      redis.UniversalClient
	nc       *nats.Conn
	svc      *natsx.Service
	reg      *prometheus.Registry
	web      *web.Handler
	closeErr error
	once     sync.Once
}

// Start connects to Redis and NATS and starts answering handshake.begin.
// Serve Handler() on HTTP_ADDR for the browser edge.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.FlowTTL <= 0 {
		cfg.FlowTTL = DefaultFlowTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	public, err := parsePublicURL(cfg.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("PUBLIC_URL: %w", err)
	}
	allow, err := returnurl.Parse(cfg.AllowedReturnURLs)
	if err != nil {
		return nil, fmt.Errorf("ALLOWED_RETURN_URLS: %w", err)
	}
	ring, err := keys.NewRing(cfg.StateKey, cfg.PreviousStateKeys...)
	if err != nil {
		return nil, err
	}
	stateKey, statePrev := ring.For(keys.InfoState)
	bindKey, bindPrev := ring.For(keys.InfoBinding)
	flowKey, flowPrev := ring.For(keys.InfoFlow)
	csrfKey, csrfPrev := ring.For(keys.InfoCSRF)
	// A cached discovery document whose MAC fails is fetched again, so the
	// cache needs no previous keys.
	discoKey, _ := ring.For(keys.InfoDiscovery)

	s := &Service{log: log, reg: metrics.NewRegistry()}
	ok := false
	defer func() {
		if !ok {
			_ = s.Close(context.WithoutCancel(ctx))
		}
	}()
	redisx.SetLogger(log) // go-redis's own lines, structured like ours
	if s.rdb, err = redisx.Connect(ctx, cfg.RedisURL); err != nil {
		return nil, err
	}
	flows, err := flow.NewStore(s.rdb, flowKey, cfg.RedisKeyPrefix, flowPrev...)
	if err != nil {
		return nil, err
	}
	if s.nc, err = natsx.Connect(cfg.NATSURL, natsauth.Handshake, log, natsx.TLS(cfg.Common)...); err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	client := &natsx.Client{NC: s.nc, Prefix: cfg.Prefix, APIKey: apikey.Outgoing(cfg.ServiceKeys)}
	vault := &vaultapi.Client{NATS: client}

	counter := redislimit.New(s.rdb, cfg.RedisKeyPrefix, cfg.Now)
	// The form's limit counts per connection, in the limiter's key scope.
	formLimit, err := ratelimit.New(ratelimit.Options{
		Endpoint:   "credential_form",
		Limits:     ratelimit.Limits{PerKey: cfg.FormRate},
		Counter:    counter,
		Now:        cfg.Now,
		Log:        log,
		Registerer: s.reg,
	})
	if err != nil {
		return nil, err
	}
	if s.web, err = web.New(web.Deps{
		Flows:      flows,
		Vault:      vault,
		Signer:     state.NewSigner(stateKey, statePrev...),
		Binder:     state.NewBinder(bindKey, bindPrev...),
		CSRF:       state.NewCSRF(csrfKey, csrfPrev...),
		FormLimit:  formLimit,
		PublicURL:  public,
		Now:        cfg.Now,
		Log:        log,
		Registerer: s.reg,
	}); err != nil {
		return nil, err
	}
	limit, err := ratelimit.New(ratelimit.Options{
		Endpoint:   "handshake.begin",
		Limits:     cfg.BeginLimits,
		Counter:    counter,
		Now:        cfg.Now,
		Log:        log,
		Registerer: s.reg,
	})
	if err != nil {
		return nil, err
	}
	b := begin.New(begin.Deps{
		Limit:      limit,
		Providers:  &adminapi.Client{NATS: client},
		Vault:      vault,
		Flows:      flows,
		Discovery:  discocache.New(s.rdb, egress.New(egress.Options{Private: cfg.ProviderNetworks}), log, cfg.RedisKeyPrefix, discoKey),
		ReturnURLs: allow,
		PublicURL:  public.String(),
		FlowTTL:    cfg.FlowTTL,
		Now:        cfg.Now,
		Log:        log,

		ProviderNetworks: cfg.ProviderNetworks,
	})
	if s.svc, err = natsx.NewService(s.nc, natsx.ServiceConfig{
		Name:        Name,
		Version:     Version,
		Description: "Nexus Broker handshake: starts consents and receives provider callbacks",
		Prefix:      cfg.Prefix,
		Callers:     apikey.NewSet().Add(apikey.Gateway, cfg.GatewayKeys).Add(apikey.Admin, cfg.AdminKeys),
		Log:         log,
		Registerer:  s.reg,
	}); err != nil {
		return nil, err
	}
	if err := b.Register(s.svc); err != nil {
		return nil, fmt.Errorf("register endpoints: %w", err)
	}
	// Make sure the server has the subscriptions before Start returns, so a
	// request sent right after it finds a responder.
	if err := s.nc.FlushTimeout(5 * time.Second); err != nil {
		return nil, fmt.Errorf("nats flush: %w", err)
	}
	ok = true
	log.Info("handshake started", "config", cfg)
	return s, nil
}

// Metrics is the service's Prometheus registry, what /metrics serves: the
// deploy module's dashboard test checks its queries against it.
func (s *Service) Metrics() *prometheus.Registry { return s.reg }

// Handler serves the public browser edge: /v1/connect/{flow}, /v1/callback
// and /healthz. Readiness and metrics are on InternalHandler, so the
// internet sees neither dependency health nor traffic figures.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	s.web.Mount(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		httpserver.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
}

// InternalHandler serves /healthz, /readyz (Redis and NATS) and /metrics on
// INTERNAL_HTTP_ADDR.
func (s *Service) InternalHandler() http.Handler {
	mux := http.NewServeMux()
	httpserver.Mount(mux, s.reg, map[string]httpserver.Check{
		"redis": func(ctx context.Context) error { return s.rdb.Ping(ctx).Err() },
		"nats":  natsx.Ready(s.nc),
	})
	return mux
}

// Close stops the endpoint (waiting for handlers in flight), drains NATS and
// closes Redis. It is safe to call more than once.
func (s *Service) Close(ctx context.Context) error {
	s.once.Do(func() {
		var errs []error
		if s.web != nil {
			s.web.Close()
		}
		if s.svc != nil {
			errs = append(errs, s.svc.Stop())
		}
		natsx.Drain(ctx, s.nc)
		if s.rdb != nil {
			errs = append(errs, s.rdb.Close())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
