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

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/api"
	"github.com/nexus-broker/nexus/services/vault/internal/cache"
	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
	"github.com/nexus-broker/nexus/services/vault/internal/provider"
	"github.com/nexus-broker/nexus/services/vault/internal/refresh"
	"github.com/nexus-broker/nexus/services/vault/internal/static"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/httpserver"
	"github.com/nexus-broker/nexus/shared/metrics"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/pg"
)

// Name and Version identify the service in NATS micro discovery.
const (
	Name    = "vault"
	Version = "0.1.0"
)

// Config is the vault's configuration.
type Config struct {
	config.Common
	DatabaseURL   string   // DATABASE_URL
	EncryptionKey []byte   // ENCRYPTION_KEY: 32 bytes, seals everything
	PreviousKeys  [][]byte // ENCRYPTION_KEYS_PREVIOUS: open only, during a rotation
	// RefreshLead is REFRESH_LEAD_TIME (default 5m): how long before expiry
	// the background refresher renews a token (half the token's life when
	// that is shorter).
	RefreshLead time.Duration
}

// LogValue keeps the keys and the database URL (which may hold a password)
// out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("nats_url", c.RedactedNATSURL()), slog.String("prefix", c.Prefix), slog.String("http_addr", c.HTTPAddr),
		slog.String("encryption_key", "[redacted]"), slog.Int("previous_keys", len(c.PreviousKeys)),
		slog.Duration("refresh_lead_time", c.RefreshLead))
}

// LoadConfig reads the vault's variables: the common ones, DATABASE_URL,
// ENCRYPTION_KEY, ENCRYPTION_KEYS_PREVIOUS and REFRESH_LEAD_TIME. Problems
// are collected in l.
func LoadConfig(l *config.Loader) Config {
	c := Config{
		Common:        l.Common(":8082"),
		DatabaseURL:   l.Required("DATABASE_URL", "the PostgreSQL database holding schema vault"),
		EncryptionKey: l.Key32("ENCRYPTION_KEY"),
		PreviousKeys:  l.Keys32("ENCRYPTION_KEYS_PREVIOUS"),
		RefreshLead:   l.Duration("REFRESH_LEAD_TIME", store.DefaultRefreshLead),
	}
	if c.RefreshLead <= 0 || c.RefreshLead > 24*time.Hour {
		l.Problem("REFRESH_LEAD_TIME", "must be between 1s and 24h")
	}
	return c
}

// Service is a running vault.
type Service struct {
	log      *slog.Logger
	pool     *pgxpool.Pool
	nc       *nats.Conn
	svc      *natsx.Service
	sub      *nats.Subscription
	reg      *prometheus.Registry
	stop     context.CancelFunc
	wg       sync.WaitGroup
	closeErr error
	once     sync.Once
}

// Start connects to PostgreSQL and NATS, migrates schema vault, proves
// ENCRYPTION_KEY opens the database (the canary), re-seals everything under
// the active key when previous keys are configured, and starts answering.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	keys, err := keyring.New(cfg.EncryptionKey, cfg.PreviousKeys...)
	if err != nil {
		return nil, err
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
	outboxSubject := messages.Subject(cfg.Prefix, messages.SubjectVaultOutboxNotify)
	st := store.New(s.pool, keys, store.Options{
		RefreshLead: cfg.RefreshLead,
		// Tell the relay at once; if this is lost, its poll finds the rows.
		OnOutbox: func() {
			if s.nc != nil {
				_ = s.nc.Publish(outboxSubject, nil)
			}
		},
	})
	if err := st.CheckCanary(ctx); err != nil {
		return nil, err
	}
	if keys.HasPrevious() {
		stats, err := st.Rotate(ctx, log)
		if err != nil {
			return nil, fmt.Errorf("key rotation: %w", err)
		}
		log.Info("key rotation done", "keys", keys, "connections", stats.Connections, "clients", stats.Clients, "failed", stats.Failed)
		if stats.Failed == 0 {
			log.Info("every sealed value now uses ENCRYPTION_KEY; ENCRYPTION_KEYS_PREVIOUS may be removed")
		}
	}

	if s.nc, err = natsx.Connect(cfg.NATSURL, "nexus-vault", log); err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	c := cache.New(cache.DefaultTTL, nil)
	invalidateSubject := messages.Subject(cfg.Prefix, messages.SubjectVaultInvalidate)
	// Plain subscription, not a queue group: every replica drops its entry.
	if s.sub, err = s.nc.Subscribe(invalidateSubject, func(m *nats.Msg) { c.Invalidate(string(m.Data)) }); err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", invalidateSubject, err)
	}
	invalidate := func(id string) {
		c.Invalidate(id)
		if err := s.nc.Publish(invalidateSubject, []byte(id)); err != nil {
			log.Warn("invalidation broadcast failed; other replicas' caches expire within a second", "connection_id", id, "err", err)
		}
	}
	prov := provider.New(provider.DefaultTimeout, nil)
	ref := refresh.New(st, prov, log, nil)
	ref.OnChange = invalidate
	h := api.New(api.Deps{Store: st, Provider: prov, Refresher: ref, Cache: c, Invalidate: invalidate, Log: log,
		Verifier: static.NewVerifier(static.DefaultVerifyTimeout, nil), Schemas: static.NewSchemas()})

	if s.svc, err = natsx.NewService(s.nc, natsx.ServiceConfig{
		Name:        Name,
		Version:     Version,
		Description: "Nexus Broker vault: custody of connections and their secrets",
		Prefix:      cfg.Prefix,
		Keys:        apikey.New(cfg.APIKeys),
		Log:         log,
		Registerer:  s.reg,
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
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				c.Sweep()
			}
		}
	}()
	// Housekeeping, on every replica (each step is idempotent): consents
	// started and never finished become expired (DESIGN.md section 3), and
	// long-published events leave the outbox.
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			if n, err := st.ExpirePending(sctx, store.PendingLifetime); err != nil && sctx.Err() == nil {
				log.Warn("expiring pending connections failed", "err", err)
			} else if n > 0 {
				log.Info("pending connections expired", "count", n)
			}
			if _, err := st.PruneOutbox(sctx, store.PublishedRetention); err != nil && sctx.Err() == nil {
				log.Warn("pruning the outbox failed", "err", err)
			}
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	ok = true
	log.Info("vault started", "keys", keys)
	return s, nil
}

// Handler serves /healthz, /readyz (PostgreSQL and NATS) and /metrics.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	httpserver.Mount(mux, s.reg, map[string]httpserver.Check{
		"postgres": func(ctx context.Context) error { return s.pool.Ping(ctx) },
		"nats":     natsx.Ready(s.nc),
	})
	return mux
}

// Close stops the endpoints (waiting for handlers in flight), drains NATS
// and closes the database pool. It is safe to call more than once.
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
		if s.sub != nil {
			_ = s.sub.Unsubscribe()
		}
		natsx.Drain(ctx, s.nc)
		if s.pool != nil {
			s.pool.Close()
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
