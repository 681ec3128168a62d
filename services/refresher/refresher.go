// Package refresher is Nexus Broker's background refresh service. It leases
// connections whose tokens near expiry from the vault and has the vault
// refresh them with bounded concurrency and backoff (internal/schedule), and
// it relays the vault's transactional outbox of lifecycle events to the
// JetStream stream NEXUS_EVENTS (internal/relay, internal/stream).
//
// It holds no secrets and no database: it only talks to the vault's internal
// NATS subjects and to JetStream, so any number of replicas may run.
package refresher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/refresher/internal/backoff"
	"github.com/nexus-broker/nexus/services/refresher/internal/relay"
	"github.com/nexus-broker/nexus/services/refresher/internal/schedule"
	"github.com/nexus-broker/nexus/services/refresher/internal/stream"
	"github.com/nexus-broker/nexus/services/refresher/internal/vaultapi"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/httpserver"
	"github.com/nexus-broker/nexus/shared/metrics"
	"github.com/nexus-broker/nexus/shared/natsauth"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// Name and Version identify the service in NATS micro discovery.
const (
	Name    = "refresher"
	Version = "0.1.0"
)

// OutboxLease is how long a relay's claim keeps events from the other
// replicas: how late events can be when the relay holding them dies. A
// batch takes well under a second; one that takes longer (JetStream failing
// over) is published twice at worst, and EVENTS_DUPLICATE_WINDOW, which
// must be longer, drops the copies. The same holds for a relay that dies
// after publishing but before acknowledging.
const OutboxLease = 10 * time.Second

// OutboxCallTimeout bounds the relay's outbox claims and acks.
const OutboxCallTimeout = 5 * time.Second

// DefaultLease is REFRESH_LEASE's default: longer than a run takes (the
// vault's run budget, 20s, plus a margin), so a live refresher's claim does
// not run out under it; shorter than the time left when a refresh falls due
// (half the life of a short-lived token, REFRESH_LEAD_TIME of a long one), so
// the claims of a refresher that died leave room for another try.
const DefaultLease = 30 * time.Second

// subjectOutboxNotify is the vault's core-NATS "outbox written" notification.
const subjectOutboxNotify = messages.SubjectVaultOutboxNotify

// Config is the refresher's configuration.
type Config struct {
	config.Common
	// ServiceKeys (REFRESHER_SERVICE_KEY) are the refresher's own: it
	// presents the first to the vault.
	ServiceKeys           []string
	Concurrency           int           // REFRESH_CONCURRENCY: refresh runs in flight per replica
	Batch                 int           // REFRESH_BATCH: connections per claim
	PollInterval          time.Duration // REFRESH_POLL_INTERVAL: pause between claims (and outbox polls)
	Lease                 time.Duration // REFRESH_LEASE: how long a claim keeps connections from other replicas
	BackoffBase           time.Duration // REFRESH_BACKOFF_BASE: delay after the first transient failure
	BackoffMax            time.Duration // REFRESH_BACKOFF_MAX: longest delay (a longer Retry-After still wins)
	EventsMaxAge          time.Duration // EVENTS_MAX_AGE: how long NEXUS_EVENTS keeps events
	EventsReplicas        int           // EVENTS_REPLICAS: stream replicas (3 on a cluster)
	EventsDuplicateWindow time.Duration // EVENTS_DUPLICATE_WINDOW: Nats-Msg-Id de-duplication window

	// Set only by this package's tests.
	outboxLease time.Duration
	relayHooks  relay.Hooks
	now         func() time.Time
	jitter      func() float64
}

// LogValue prints the configuration without the API keys.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("nats_url", c.RedactedNATSURL()), slog.String("prefix", c.Prefix), slog.String("http_addr", c.HTTPAddr),
		slog.Int("concurrency", c.Concurrency), slog.Int("batch", c.Batch), slog.Duration("poll_interval", c.PollInterval),
		slog.Duration("lease", c.Lease), slog.Duration("backoff_base", c.BackoffBase), slog.Duration("backoff_max", c.BackoffMax),
		slog.Duration("events_max_age", c.EventsMaxAge), slog.Int("events_replicas", c.EventsReplicas),
		slog.Duration("events_duplicate_window", c.EventsDuplicateWindow))
}

// LoadConfig reads the refresher's variables: the common ones and
// REFRESH_* / EVENTS_*. Problems are collected in l.
func LoadConfig(l *config.Loader) Config {
	c := Config{
		Common:                l.Common(":8083"),
		ServiceKeys:           l.Keys(config.RefresherServiceKeys, "the key the refresher presents to the vault", true),
		Concurrency:           l.Int("REFRESH_CONCURRENCY", 16, 1),
		Batch:                 l.Int("REFRESH_BATCH", 100, 1),
		PollInterval:          l.Duration("REFRESH_POLL_INTERVAL", time.Second),
		Lease:                 l.Duration("REFRESH_LEASE", DefaultLease),
		BackoffBase:           l.Duration("REFRESH_BACKOFF_BASE", 2*time.Second),
		BackoffMax:            l.Duration("REFRESH_BACKOFF_MAX", 10*time.Minute),
		EventsMaxAge:          l.Duration("EVENTS_MAX_AGE", 720*time.Hour),
		EventsReplicas:        l.Int("EVENTS_REPLICAS", 1, 1),
		EventsDuplicateWindow: l.Duration("EVENTS_DUPLICATE_WINDOW", 15*time.Minute),
	}
	// The vault refuses claims outside these bounds; refusing them here
	// keeps a typo from silently switching background refresh off.
	if c.Batch > 1000 {
		l.Problem("REFRESH_BATCH", "must be at most 1000")
	}
	if c.Lease > time.Hour {
		l.Problem("REFRESH_LEASE", "must be at most 1h")
	}
	if c.PollInterval < 10*time.Millisecond {
		l.Problem("REFRESH_POLL_INTERVAL", "must be at least 10ms")
	}
	if c.Lease < time.Second {
		l.Problem("REFRESH_LEASE", "must be at least 1s")
	}
	if c.BackoffBase <= 0 {
		l.Problem("REFRESH_BACKOFF_BASE", "must be more than 0")
	}
	if c.BackoffMax < c.BackoffBase {
		l.Problem("REFRESH_BACKOFF_MAX", "must be at least REFRESH_BACKOFF_BASE (%s)", c.BackoffBase)
	}
	if c.EventsReplicas > 5 {
		l.Problem("EVENTS_REPLICAS", "JetStream allows at most 5 replicas")
	}
	if c.EventsDuplicateWindow <= OutboxLease {
		l.Problem("EVENTS_DUPLICATE_WINDOW", "must be longer than the outbox lease (%s), or a re-published event is not de-duplicated", OutboxLease)
	}
	if c.EventsMaxAge > 0 && c.EventsDuplicateWindow > c.EventsMaxAge {
		l.Problem("EVENTS_DUPLICATE_WINDOW", "must not be longer than EVENTS_MAX_AGE (%s)", c.EventsMaxAge)
	}
	return c
}

// Service is a running refresher.
type Service struct {
	log      *slog.Logger
	owner    string
	nc       *nats.Conn
	js       jetstream.JetStream
	svc      *natsx.Service
	sub      *nats.Subscription
	reg      *prometheus.Registry
	sched    *schedule.Scheduler
	relay    *relay.Relay
	stop     context.CancelFunc
	wg       sync.WaitGroup
	closeErr error
	once     sync.Once
}

// Start connects to NATS, creates or updates the NEXUS_EVENTS stream, and
// starts the refresh loop and the outbox relay.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.ServiceKeys) == 0 {
		return nil, errors.New("refresher: no service key configured (REFRESHER_SERVICE_KEY)")
	}
	owner, err := newOwner()
	if err != nil {
		return nil, err
	}
	s := &Service{log: log.With("owner", owner), owner: owner, reg: metrics.NewRegistry()}
	ok := false
	defer func() {
		if !ok {
			_ = s.Close(context.WithoutCancel(ctx))
		}
	}()

	if s.nc, err = natsx.Connect(cfg.NATSURL, natsauth.Refresher, log, natsx.TLS(cfg.Common)...); err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if _, err := stream.Ensure(ctx, s.js, stream.Config{
		Prefix: cfg.Prefix, MaxAge: cfg.EventsMaxAge, Replicas: cfg.EventsReplicas, Duplicates: cfg.EventsDuplicateWindow,
	}); err != nil {
		return nil, err
	}

	vc := &vaultapi.Client{NATS: &natsx.Client{NC: s.nc, Prefix: cfg.Prefix, APIKey: apikey.Outgoing(cfg.ServiceKeys)}}
	sm, err := schedule.NewMetrics(s.reg)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	rm, err := relay.NewMetrics(s.reg)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	s.sched = schedule.New(vc, schedule.Config{
		Owner:        owner,
		Batch:        cfg.Batch,
		Lease:        cfg.Lease,
		Concurrency:  cfg.Concurrency,
		PollInterval: cfg.PollInterval,
		Backoff:      backoff.Policy{Base: cfg.BackoffBase, Max: cfg.BackoffMax, Rand: cfg.jitter},
		Now:          cfg.now,
		Log:          s.log,
		Metrics:      sm,
	})
	outboxLease := cfg.outboxLease
	if outboxLease <= 0 {
		outboxLease = OutboxLease
	}
	// The relay's calls are short queries of the vault's outbox, so it waits
	// for them only OutboxCallTimeout: a claim whose request or reply was
	// lost while NATS failed over (a reply the server no longer lets the
	// vault send once it reconnected elsewhere) holds the relay, and every
	// event behind it, that long rather than vaultapi.DefaultTimeout. The
	// events such a claim leased come back to this relay's next claim.
	ovc := &vaultapi.Client{NATS: vc.NATS, Timeout: OutboxCallTimeout}
	s.relay = relay.New(ovc, s.js, relay.Config{
		Owner:        owner,
		Prefix:       cfg.Prefix,
		Lease:        outboxLease,
		PollInterval: cfg.PollInterval,
		Log:          s.log,
		Metrics:      rm,
		Hooks:        cfg.relayHooks,
	})

	// A micro service without endpoints: replicas show up in $SRV.PING/INFO.
	if s.svc, err = natsx.NewService(s.nc, natsx.ServiceConfig{
		Name:        Name,
		Version:     Version,
		Description: "Nexus Broker refresher: background token refresh and lifecycle event relay",
		Prefix:      cfg.Prefix,
		// It answers nothing: no caller is served.
		Callers: apikey.NewSet(),
		Log:     log,
	}); err != nil {
		return nil, err
	}

	// The vault notifies after every outbox write. A queue group, so one
	// replica reacts to each notification: all of them racing to claim the
	// same few events would only cost claims that come back empty. A replica
	// that misses a notification (or dies with it) is covered by the others'
	// poll interval.
	notify := make(chan struct{}, 1)
	notifySubject := messages.Subject(cfg.Prefix, subjectOutboxNotify)
	if s.sub, err = s.nc.QueueSubscribe(notifySubject, "nexus-refresher-relay", func(*nats.Msg) {
		select {
		case notify <- struct{}{}:
		default: // a drain is already due; it picks this event up too
		}
	}); err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", notifySubject, err)
	}
	if err := s.nc.FlushTimeout(10 * time.Second); err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}

	rctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.sched.Run(rctx) }()
	go func() { defer s.wg.Done(); s.relay.Run(rctx, notify) }()
	ok = true
	s.log.Info("refresher started", "config", cfg)
	return s, nil
}

// newOwner names this replica in the vault's leases: host name plus a random
// suffix, so two replicas on one host (or one restarted) never share leases.
func newOwner() (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "refresher"
	}
	return host + "-" + hex.EncodeToString(b), nil
}

// Metrics is the service's Prometheus registry, what /metrics serves: the
// deploy module's dashboard test checks its queries against it.
func (s *Service) Metrics() *prometheus.Registry { return s.reg }

// Handler serves /healthz, /readyz (NATS and the stream) and /metrics.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	httpserver.Mount(mux, s.reg, map[string]httpserver.Check{
		"nats": natsx.Ready(s.nc),
		"stream": func(ctx context.Context) error {
			_, err := s.js.Stream(ctx, messages.StreamEvents)
			return err
		},
	})
	return mux
}

// Close stops the loops (runs in flight are abandoned; their leases run
// out), drains NATS, and is safe to call more than once.
func (s *Service) Close(ctx context.Context) error {
	s.once.Do(func() {
		var errs []error
		if s.stop != nil {
			s.stop()
		}
		if s.sub != nil {
			_ = s.sub.Unsubscribe()
		}
		s.wg.Wait()
		if s.svc != nil {
			errs = append(errs, s.svc.Stop())
		}
		natsx.Drain(ctx, s.nc)
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
