// Package vault is the custody service of Nexus Broker: the only process that
// holds ENCRYPTION_KEY and the only one that sees refresh tokens, client
// secrets and static credentials in plaintext. It stores connections and
// sealed secrets in PostgreSQL (schema vault), answers the Gateway's token
// requests, performs code exchange, refresh and revocation against
// providers, and checks (and optionally verifies) static credentials.
package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/api"
	"github.com/nexus-broker/nexus/services/vault/internal/audit"
	"github.com/nexus-broker/nexus/services/vault/internal/cache"
	"github.com/nexus-broker/nexus/services/vault/internal/guard"
	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
	"github.com/nexus-broker/nexus/services/vault/internal/provider"
	"github.com/nexus-broker/nexus/services/vault/internal/refresh"
	"github.com/nexus-broker/nexus/services/vault/internal/static"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/egress"
	"github.com/nexus-broker/nexus/shared/httpserver"
	"github.com/nexus-broker/nexus/shared/metrics"
	"github.com/nexus-broker/nexus/shared/natsauth"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/pg"
	"github.com/nexus-broker/nexus/shared/ratelimit"
)

// Name and Version identify the service in NATS micro discovery.
const (
	Name    = "vault"
	Version = "0.1.0"
)

// Config is the vault's configuration.
type Config struct {
	config.Common
	// Keys of the callers the vault serves: the Gateway's (API_KEY, and
	// CROSS_WORKSPACE_API_KEY for keys that may omit workspace_id) and each
	// service's (HANDSHAKE_SERVICE_KEY, ADMIN_SERVICE_KEY,
	// REFRESHER_SERVICE_KEY), several each during a rotation.
	GatewayKeys, CrossWorkspaceKeys         []string
	HandshakeKeys, AdminKeys, RefresherKeys []string
	DatabaseURL                             string   // DATABASE_URL
	EncryptionKey                           []byte   // ENCRYPTION_KEY: 32 bytes, seals everything
	PreviousKeys                            [][]byte // ENCRYPTION_KEYS_PREVIOUS: open only, during a rotation
	// CanaryRecreate is ENCRYPTION_CANARY_RECREATE: ENCRYPTION_KEY's key id,
	// set for one start to seal a new canary in a database that lost it
	// (store.NoCanaryError says when).
	CanaryRecreate string
	// RefreshLead is REFRESH_LEAD_TIME (default 5m): how long before expiry
	// the background refresher renews a token (half the token's life when
	// that is shorter).
	RefreshLead time.Duration
	// ProviderConcurrency (PROVIDER_CONCURRENCY, default 16) bounds this
	// replica's calls in flight to one provider; BreakerTrip
	// (PROVIDER_BREAKER_TRIP, default 5) transient failures in a row pause a
	// provider's calls for BreakerCoolDown (PROVIDER_BREAKER_COOLDOWN, 30s).
	ProviderConcurrency int
	BreakerTrip         int
	BreakerCoolDown     time.Duration
	// RefreshLimits bound tokens.refresh, a provider call each, per
	// Gateway key (TOKENS_REFRESH_RATE_PER_KEY, default 600/m) and per
	// workspace (TOKENS_REFRESH_RATE_PER_WORKSPACE, default 30/m), counted
	// in PostgreSQL across replicas. The zero value is no limit; LoadConfig
	// gives the defaults.
	RefreshLimits ratelimit.Limits
	// Refusals is when the same 4xx refusal of a refresh, repeated, needs
	// the user: REFRESH_REFUSALS (default 3) in a row over at least
	// REFRESH_REFUSAL_WINDOW (default 5m). The zero value is the default.
	Refusals refresh.Refusals
	// CacheEntries is TOKEN_CACHE_ENTRIES (cache.DefaultMaxEntries when
	// zero): how many connections' credentials tokens.get keeps in memory,
	// sealed, about a kilobyte each.
	CacheEntries int
	// EndedRetention is ENDED_CONNECTION_RETENTION (default 720h, at least
	// 1h): how long a failed, expired or revoked connection is kept after
	// its last change before it is deleted. Zero means the default.
	EndedRetention time.Duration

	// Now is the clock of the vault's records, refresh schedules,
	// housekeeping and rate-limit windows; nil means time.Now. For tests.
	Now func() time.Time
	// AuditRetention is AUDIT_RETENTION (default 2160h, 90 days): how long
	// audit records are kept (0 here means the default).
	AuditRetention time.Duration
	// AuditInterval is how often collected audit records are written
	// (audit.DefaultInterval, 2s, when 0). Not read from the environment:
	// tests make it long, so that rows are written only when they list
	// them (vault.audit.list writes first) or close the vault.
	AuditInterval time.Duration
	// ProviderNetworks (PROVIDER_PRIVATE_NETWORKS) are the networks token,
	// revocation, JWKS and verification requests may reach although the
	// egress guard refuses them by default, and the only ones plain http
	// may reach.
	ProviderNetworks egress.Networks
	// ReplicaID is VAULT_REPLICA_ID (the host name by default): this vault's
	// name, stable across its restarts, in the refreshes it has in flight,
	// so that it retries at start those a kill left (recovery.go). Two
	// running vaults must not share one; the second to start does not
	// retry the first one's.
	ReplicaID string
	// RecoveryInterval is how often the vault retries refreshes whose owner
	// died (recoveryInterval when zero). Not read from the environment: for
	// tests.
	RecoveryInterval time.Duration
	// KeysInterval is how often the vault renews its row in vault.replicas
	// and runs a re-seal pass (keysInterval when zero); ReplicaTTL how long
	// a row not renewed still counts as a running vault (three intervals
	// when zero). Not read from the environment: for tests.
	KeysInterval, ReplicaTTL time.Duration
}

// The default limits of tokens.refresh: a forced refresh calls the
// provider, so a workspace gets 30 a minute; tokens.get refreshes when it
// must and is not limited.
const (
	DefaultRefreshRatePerKey       = "600/m"
	DefaultRefreshRatePerWorkspace = "30/m"
)

// LogValue keeps the keys and the database URL (which may hold a password)
// out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("nats_url", c.RedactedNATSURL()), slog.String("prefix", c.Prefix), slog.String("http_addr", c.HTTPAddr),
		slog.String("replica_id", c.ReplicaID), slog.String("encryption_key", "[redacted]"), slog.Int("previous_keys", len(c.PreviousKeys)),
		slog.Duration("refresh_lead_time", c.RefreshLead), slog.Duration("ended_connection_retention", c.EndedRetention),
		slog.String("tokens_refresh_rate_per_key", c.RefreshLimits.PerKey.String()),
		slog.String("tokens_refresh_rate_per_workspace", c.RefreshLimits.PerWorkspace.String()),
		slog.Duration("audit_retention", c.AuditRetention), slog.String("provider_private_networks", c.ProviderNetworks.String()),
		slog.Bool("canary_recreate", c.CanaryRecreate != ""))
}

// LoadConfig reads the vault's variables: the common ones, DATABASE_URL,
// ENCRYPTION_KEY, ENCRYPTION_KEYS_PREVIOUS, ENCRYPTION_CANARY_RECREATE,
// REFRESH_LEAD_TIME, REFRESH_REFUSALS, REFRESH_REFUSAL_WINDOW, the limits of
// tokens.refresh, ENDED_CONNECTION_RETENTION, AUDIT_RETENTION,
// PROVIDER_PRIVATE_NETWORKS and VAULT_REPLICA_ID. Problems are collected in l.
func LoadConfig(l *config.Loader) Config {
	c := Config{
		Common:         l.Common(":8082"),
		DatabaseURL:    l.Required("DATABASE_URL", "the PostgreSQL database holding schema vault"),
		EncryptionKey:  l.Key32("ENCRYPTION_KEY"),
		PreviousKeys:   l.Keys32("ENCRYPTION_KEYS_PREVIOUS"),
		CanaryRecreate: l.String("ENCRYPTION_CANARY_RECREATE", ""),
		ReplicaID:      l.String("VAULT_REPLICA_ID", defaultReplicaID()),
		RefreshLead:    l.Duration("REFRESH_LEAD_TIME", store.DefaultRefreshLead),
		AuditRetention: l.Duration("AUDIT_RETENTION", store.DefaultAuditRetention),

		ProviderConcurrency: l.Int("PROVIDER_CONCURRENCY", guard.DefaultConcurrency, 1),
		BreakerTrip:         l.Int("PROVIDER_BREAKER_TRIP", guard.DefaultTrip, 1),
		BreakerCoolDown:     l.Duration("PROVIDER_BREAKER_COOLDOWN", guard.DefaultCoolDown),

		ProviderNetworks: egress.Load(l),
		CacheEntries:     l.Int("TOKEN_CACHE_ENTRIES", cache.DefaultMaxEntries, 1),

		GatewayKeys:        l.Keys(config.GatewayKeys, "the keys the Gateway presents", true),
		CrossWorkspaceKeys: l.Keys(config.CrossWorkspaceKeys, "Gateway keys that may omit workspace_id", false),
		HandshakeKeys:      l.Keys(config.HandshakeServiceKeys, "the key the handshake presents to the vault and admin", true),
		AdminKeys:          l.Keys(config.AdminServiceKeys, "the key admin presents to the vault", true),
		RefresherKeys:      l.Keys(config.RefresherServiceKeys, "the key the refresher presents to the vault", true),

		RefreshLimits: ratelimit.Limits{
			PerKey:       ratelimit.Load(l, "TOKENS_REFRESH_RATE_PER_KEY", DefaultRefreshRatePerKey),
			PerWorkspace: ratelimit.Load(l, "TOKENS_REFRESH_RATE_PER_WORKSPACE", DefaultRefreshRatePerWorkspace),
		},
		EndedRetention: l.Duration("ENDED_CONNECTION_RETENTION", store.DefaultEndedRetention),
		Refusals: refresh.Refusals{
			Count:  l.Int("REFRESH_REFUSALS", refresh.DefaultRefusals.Count, 1),
			Window: l.Duration("REFRESH_REFUSAL_WINDOW", refresh.DefaultRefusals.Window),
		},
	}
	if c.DatabaseURL != "" {
		if err := pg.CheckURL(c.DatabaseURL); err != nil {
			l.Problem("DATABASE_URL", "%v", err)
		}
	}
	if c.CanaryRecreate != "" {
		if _, err := keyring.ParseKeyID(c.CanaryRecreate); err != nil {
			l.Problem("ENCRYPTION_CANARY_RECREATE", "must be ENCRYPTION_KEY's key id, 8 hex digits, as the vault's refusal to start names it")
		}
	}
	if !validReplicaID(c.ReplicaID) {
		l.Problem("VAULT_REPLICA_ID", "must be at most %d printable characters, without spaces or /", replicaIDMax)
	}
	if c.RefreshLead <= 0 || c.RefreshLead > 24*time.Hour {
		l.Problem("REFRESH_LEAD_TIME", "must be between 1s and 24h")
	}
	if c.Refusals.Window < 0 || c.Refusals.Window > 30*24*time.Hour {
		l.Problem("REFRESH_REFUSAL_WINDOW", "must be between 0 and 720h")
	}
	if c.EndedRetention < store.MinEndedRetention {
		l.Problem("ENDED_CONNECTION_RETENTION", "must be at least %s", store.MinEndedRetention)
	}
	if c.AuditRetention < time.Hour {
		l.Problem("AUDIT_RETENTION", "must be at least 1h (the default is 2160h, 90 days)")
	}
	return c
}

// applyChange drops what a committed change makes stale from c: the
// store calls it after this replica's own commits, at once, and the change
// listener (changes.go) for every replica's, this one's included.
func applyChange(c *cache.Cache, ch store.Change) {
	if ch.ConnectionID != "" {
		c.Invalidate(ch.ConnectionID)
		return
	}
	c.InvalidateProvider(ch.ProviderID)
}

// callers are the keys the vault accepts, and who each names.
func (c Config) callers() *apikey.Set {
	return apikey.NewSet().
		Add(apikey.Gateway, c.GatewayKeys).AddCrossWorkspace(c.CrossWorkspaceKeys).
		Add(apikey.Handshake, c.HandshakeKeys).Add(apikey.Admin, c.AdminKeys).Add(apikey.Refresher, c.RefresherKeys)
}

// Service is a running vault.
type Service struct {
	log     *slog.Logger
	pool    *pgxpool.Pool
	st      *store.Store
	replica string // this vault's row in vault.replicas
	// identity holds the advisory lock on Config.ReplicaID (nil when
	// another running vault holds it).
	identity *pgx.Conn
	nc       *nats.Conn
	svc      *natsx.Service
	reg      *prometheus.Registry
	audit    *audit.Sink
	stop     context.CancelFunc
	wg       sync.WaitGroup
	closeErr error
	once     sync.Once
}

// Start connects to PostgreSQL and NATS, migrates schema vault, proves its
// keys are the database's (store.CheckKeys: every key id in use held, the
// canary opens, ENCRYPTION_KEY not older than the newest key) and starts
// answering; re-sealing under ENCRYPTION_KEY goes on in the background
// (keys.go).
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	keys, err := keyring.New(cfg.EncryptionKey, cfg.PreviousKeys...)
	if err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.EndedRetention <= 0 {
		cfg.EndedRetention = store.DefaultEndedRetention
	}
	if cfg.ReplicaID == "" {
		cfg.ReplicaID = defaultReplicaID()
	}
	if cfg.RecoveryInterval <= 0 {
		cfg.RecoveryInterval = recoveryInterval
	}
	s := &Service{log: log, reg: metrics.NewRegistry()}
	ok := false
	defer func() {
		if !ok {
			_ = s.Close(context.WithoutCancel(ctx))
		}
	}()

	if s.pool, err = pg.Connect(ctx, cfg.DatabaseURL, 0); err != nil {
		return nil, err
	}
	if err := store.Migrate(ctx, s.pool); err != nil {
		return nil, err
	}
	if s.nc, err = natsx.Connect(cfg.NATSURL, natsauth.Vault, log, natsx.TLS(cfg.Common)...); err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	// The vault's clock, which the change listener's probes read through
	// the cache, and tokens.get's checks with it.
	c := cache.New(cache.Options{MaxEntries: cfg.CacheEntries, Now: cfg.Now})
	outboxSubject := messages.Subject(cfg.Prefix, messages.SubjectVaultOutboxNotify)
	every, ttl := cfg.KeysInterval, cfg.ReplicaTTL
	if every <= 0 {
		every = keysInterval
	}
	if ttl <= 0 {
		ttl = 3 * every
	}
	st := store.New(s.pool, keys, store.Options{
		Now:         cfg.Now,
		RefreshLead: cfg.RefreshLead,
		ReplicaTTL:  ttl,
		// Every commit that changes what is served empties this
		// replica's cache at once: the one place that does it.
		Changed: func(ch store.Change) { applyChange(c, ch) },
		// Tell the relay at once; if this is lost, its poll finds the rows.
		OnOutbox: func() { _ = s.nc.Publish(outboxSubject, nil) },
	})
	if err := st.CheckKeys(ctx, cfg.CanaryRecreate); err != nil {
		return nil, err
	}
	if s.replica, err = store.NewID(); err != nil {
		return nil, err
	}
	if err := st.Renew(ctx, s.replica); err != nil {
		return nil, err
	}
	s.st = st
	boot, err := newBoot()
	if err != nil {
		return nil, err
	}
	if s.identity, err = holdReplicaID(ctx, s.pool, cfg.ReplicaID); err != nil {
		return nil, err
	}
	if s.identity == nil {
		log.Warn("another running vault has this VAULT_REPLICA_ID; refreshes a kill of this replica left are retried when their marks run out", "replica_id", cfg.ReplicaID)
	}

	// Credential releases are counted by group; every other audited request
	// is a row of its own (internal/audit).
	if s.audit, err = audit.New(st, audit.Options{Aggregate: []string{messages.SubjectTokensGet}, Interval: cfg.AuditInterval, Registerer: s.reg, Log: log}); err != nil {
		return nil, err
	}
	// Every request to a provider-side URL goes through one egress guard.
	out := egress.New(egress.Options{Private: cfg.ProviderNetworks})
	refreshes, err := newRefreshMetrics(s.reg)
	if err != nil {
		return nil, err
	}
	prov := providers{c: provider.New(out, nil), health: st, log: log, metrics: refreshes, guard: guard.New(guard.Config{
		Concurrency: cfg.ProviderConcurrency, Trip: cfg.BreakerTrip, CoolDown: cfg.BreakerCoolDown, Log: log})}
	limit, err := ratelimit.New(ratelimit.Options{
		Endpoint: "tokens.refresh", Limits: cfg.RefreshLimits, Counter: st, Now: cfg.Now, Log: log, Registerer: s.reg,
	})
	if err != nil {
		return nil, err
	}
	refresher := refresh.New(st, prov, log, cfg.Now, cfg.ReplicaID+"/"+boot)
	if cfg.Refusals != (refresh.Refusals{}) {
		refresher.SetRefusals(cfg.Refusals)
	}
	cacheCounts, err := api.NewCacheCounts(s.reg)
	if err != nil {
		return nil, err
	}
	h := api.New(api.Deps{Store: st, Provider: prov, Refresher: refresher, Cache: c, Log: log, Now: cfg.Now,
		Verifier: static.NewVerifier(out, nil), Schemas: static.NewSchemas(), ProviderNetworks: cfg.ProviderNetworks,
		RefreshLimit: limit, AuditLog: s.audit, CacheCounts: cacheCounts})

	if s.svc, err = natsx.NewService(s.nc, natsx.ServiceConfig{
		Name:        Name,
		Version:     Version,
		Description: "Nexus Broker vault: custody of connections and their secrets",
		Prefix:      cfg.Prefix,
		Callers:     cfg.callers(),
		Errors:      h.ContractError,
		Log:         log,
		Registerer:  s.reg,
		Audit:       s.audit.Record,
	}); err != nil {
		return nil, err
	}
	if err := h.Register(s.svc); err != nil {
		return nil, fmt.Errorf("register endpoints: %w", err)
	}

	// The subscriptions are live on the server once Start returns.
	if err := s.nc.FlushTimeout(10 * time.Second); err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}

	sctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	retention := cfg.AuditRetention
	if retention <= 0 {
		retention = store.DefaultAuditRetention
	}
	s.wg.Add(7)
	go func() { defer s.wg.Done(); newChanges(s.pool, c, s.replica, log).run(sctx) }()
	go func() {
		defer s.wg.Done()
		runRecovery(sctx, st, refresher, cfg.ReplicaID, boot, s.identity != nil, cfg.RecoveryInterval, cfg.Now, log)
	}()
	go func() { defer s.wg.Done(); runCacheSweep(sctx, c, cacheSweepInterval) }()
	go func() {
		defer s.wg.Done()
		runHousekeeping(sctx, st, housekeepingInterval, cfg.Now, cfg.EndedRetention, log)
	}()
	go func() { defer s.wg.Done(); s.audit.Run(sctx) }()
	go func() { defer s.wg.Done(); runAuditPrune(sctx, st, auditPruneInterval, retention, cfg.Now, log) }()
	go func() { defer s.wg.Done(); runKeys(sctx, st, s.replica, keys, every, log) }()
	ok = true
	log.Info("vault started", "keys", keys)
	return s, nil
}

// Metrics is the service's Prometheus registry, what /metrics serves: the
// deploy module's dashboard test checks its queries against it.
func (s *Service) Metrics() *prometheus.Registry { return s.reg }

// Handler serves /healthz, /readyz (PostgreSQL and NATS) and /metrics.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	httpserver.Mount(mux, s.reg, map[string]httpserver.Check{
		"postgres": func(ctx context.Context) error { return s.pool.Ping(ctx) },
		"nats":     natsx.Ready(s.nc),
	})
	return mux
}

// Close stops the endpoints (waiting for handlers in flight), writes the
// audit records still collected, drains NATS and closes the database pool.
// It is safe to call more than once.
func (s *Service) Close(ctx context.Context) error {
	s.once.Do(func() {
		var errs []error
		if s.stop != nil {
			s.stop()
			s.wg.Wait()
		}
		if s.svc != nil {
			errs = append(errs, s.svc.Stop())
		}
		if s.audit != nil {
			// Records it cannot write are counted and logged; they do not
			// fail Close.
			_ = s.audit.Close(ctx)
		}
		natsx.Drain(ctx, s.nc)
		if s.st != nil {
			// This vault seals nothing more: the database stops counting it.
			if err := s.st.Leave(ctx, s.replica); err != nil {
				s.log.Warn("could not remove this vault from vault.replicas; the row expires by itself", "err", err)
			}
		}
		if s.identity != nil {
			_ = s.identity.Close(ctx)
		}
		if s.pool != nil {
			s.pool.Close()
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
