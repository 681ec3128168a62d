// Package soak runs the broker for a while with many connections whose
// access tokens live briefly, two (or more) refreshers renewing them
// against the loopback fosite provider with refresh-token rotation, and a
// tokens.get load sampling the connections, and reports what it saw: how
// fast the refreshers renewed and how far behind they fell, what tokens.get
// served, and whether anything broke the broker's promises (an expired
// token served, a token the provider refuses, a refresh token presented
// twice). The nexus-soak command and the short soak of `make test` both
// run it.
//
// The connections are seeded straight into the vault's database
// (services/vault/seed) with refresh tokens minted at the provider. Each
// connection is renewed every TokenTTL - min(Lead, TokenTTL/2)
// (Config.RenewEvery), and the seeded tokens expire when they make the
// first renewals due evenly over one such period, so renewals run at
// Connections / RenewEvery a second from the start.
package soak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexus-broker/nexus/services/refresher"
	"github.com/nexus-broker/nexus/services/vault/seed"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/natsauth"
	"github.com/nexus-broker/nexus/system"
	"github.com/nexus-broker/nexus/system/systemtest"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// Config is one soak.
type Config struct {
	Connections int
	// Duration is how long the load runs once the connections are seeded.
	Duration time.Duration
	// TokenTTL is the provider's access token lifetime.
	TokenTTL time.Duration
	// Lead is the vault's REFRESH_LEAD_TIME: a token is renewed this long
	// before it expires, or at half its life when that is sooner.
	Lead time.Duration
	// Refreshers is how many refresher replicas run (at least 1).
	Refreshers int
	// Rate is how many tokens.get a second the load sends, Workers at most
	// in flight, each asking for MinValid of validity.
	Rate, Workers int
	MinValid      time.Duration
	// IDTokens grants the seeded connections openid, so every renewal
	// brings an id_token the provider signs (RSA) and the vault verifies.
	// The provider signs inside the lock that serialises its refresh
	// grants, so this caps the renewals at what one core signs (about a
	// third of the rate without, on this machine).
	IDTokens bool
	// Every is how often the database is looked at for lag (and a progress
	// line written to Progress, when set).
	Every    time.Duration
	Progress io.Writer
	Log      *slog.Logger
}

// Defaults for what a Config leaves zero.
const (
	DefaultRefreshers = 2
	DefaultRate       = 200
	DefaultWorkers    = 16
	DefaultMinValid   = 5 * time.Second
	DefaultEvery      = 5 * time.Second
	DefaultLead       = 5 * time.Minute // the vault's own default
)

// Workspace is where the seeded connections are.
const Workspace = "ws-soak"

// providerName is the provider the soak registers with admin.
const providerName = "soak"

// seededPrefix starts every seeded access token: they are not the
// provider's, so the load checks only their expiry, not at the provider.
const seededPrefix = "soak-seeded-"

func (c *Config) defaults() error {
	if c.Connections < 1 || c.Duration <= 0 || c.TokenTTL < 2*time.Second {
		return fmt.Errorf("soak: need connections >= 1, a duration and a token TTL of at least 2s (got %d, %s, %s)", c.Connections, c.Duration, c.TokenTTL)
	}
	if c.MinValid == 0 {
		c.MinValid = DefaultMinValid
	}
	if c.Lead <= 0 {
		c.Lead = DefaultLead
	}
	if left := c.TokenTTL - c.RenewEvery(); c.MinValid >= left {
		return fmt.Errorf("soak: min valid %s must be under the %s a token has left when it is renewed", c.MinValid, left)
	}
	for _, d := range []struct {
		v   *int
		def int
	}{{&c.Refreshers, DefaultRefreshers}, {&c.Rate, DefaultRate}, {&c.Workers, DefaultWorkers}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if c.Every <= 0 {
		c.Every = DefaultEvery
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// RenewEvery is how often the vault renews each connection's token.
func (c Config) RenewEvery() time.Duration { return c.TokenTTL - min(c.Lead, c.TokenTTL/2) }

// Run starts the broker on infra (a fresh database; systemtest.Start fills
// in the rest), seeds the connections, runs the load for c.Duration and
// reports. An error means the soak could not run; a run that broke a
// promise returns its report, whose Problems say which.
func Run(ctx context.Context, infra systemtest.Infra, c Config) (*Report, error) {
	if err := c.defaults(); err != nil {
		return nil, err
	}
	progress := func(format string, args ...any) {
		if c.Progress != nil {
			fmt.Fprintf(c.Progress, format+"\n", args...)
		}
	}
	rg, err := startRig(ctx, infra, c)
	if err != nil {
		return nil, err
	}
	defer rg.close()
	start := time.Now()
	ids, err := seedConnections(ctx, rg.b, rg.pool, rg.providerID, c)
	if err != nil {
		return nil, err
	}
	r := &Report{Config: c, Seeding: time.Since(start)}
	progress("seeded %d connections in %s (refresh tokens minted at the provider, first renewals due over the next %s)",
		c.Connections, r.Seeding.Round(time.Millisecond), c.RenewEvery())
	if err := rg.measure(ctx, r, ids, progress); err != nil {
		return nil, err
	}
	return r, nil
}

// rig is the broker under soak: its provider registered, its refreshers
// (the broker's and the extra replicas) and a pool on its database.
type rig struct {
	b          *systemtest.Broker
	providerID string
	refreshers []http.Handler // their HTTP handlers, for /metrics
	pool       *pgxpool.Pool
	closers    []func()
}

func startRig(ctx context.Context, infra systemtest.Infra, c Config) (_ *rig, err error) {
	rg := &rig{}
	defer func() {
		if err != nil {
			rg.close()
		}
	}()
	infra.Log = c.Log
	infra.Env = maps.Clone(infra.Env)
	if infra.Env == nil {
		infra.Env = map[string]string{}
	}
	infra.Env["REFRESH_LEAD_TIME"] = c.Lead.String()
	if rg.b, err = systemtest.Start(ctx, infra, oidcprovider.Options{AccessTokenLifespan: c.TokenTTL}); err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	rg.closers = append(rg.closers, rg.b.Close)
	p, err := rg.b.RegisterOIDC(ctx, providerName)
	if err != nil {
		return nil, fmt.Errorf("register provider: %w", err)
	}
	rg.providerID = p.ID
	rg.refreshers = []http.Handler{rg.b.Sys.Refresher.Handler()}
	for range c.Refreshers - 1 {
		extra, err := startRefresher(ctx, rg.b, c.Log)
		if err != nil {
			return nil, err
		}
		rg.closers = append(rg.closers, func() { _ = extra.Close(context.Background()) })
		rg.refreshers = append(rg.refreshers, extra.Handler())
	}
	if rg.pool, err = pgxpool.New(ctx, infra.DatabaseURL); err != nil {
		return nil, err
	}
	rg.closers = append(rg.closers, rg.pool.Close)
	return rg, nil
}

// close stops what startRig started, in reverse order.
func (rg *rig) close() {
	for i := len(rg.closers) - 1; i >= 0; i-- {
		rg.closers[i]()
	}
}

// measure runs the load and the watch for r.Config.Duration and fills in
// the rest of r.
func (rg *rig) measure(ctx context.Context, r *Report, ids []string, progress func(string, ...any)) error {
	c := r.Config
	w := &watch{pool: rg.pool, provider: rg.b.Provider, every: c.Every, progress: progress}
	l := newLoad(rg.b, rg.pool, ids, c)
	runCtx, cancel := context.WithTimeout(ctx, c.Duration)
	defer cancel()
	grants := rg.b.Provider.RefreshGrants()
	start := time.Now()
	done := l.run(runCtx)
	err := w.run(runCtx, l)
	cancel() // the load stops too if the watch failed early
	<-done
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	r.Elapsed = time.Since(start)
	r.Refreshes = rg.b.Provider.RefreshGrants() - grants
	r.Lag, r.Tokens = w.lag, l.stats()
	if r.Refreshers, err = outcomes(rg.refreshers); err != nil {
		return err
	}
	r.Redemptions = redemptions(rg.b.Provider)
	r.Final, err = final(ctx, rg.pool)
	return err
}

// startRefresher runs one more refresher replica beside the broker's, with
// its configuration, as another process would.
func startRefresher(ctx context.Context, b *systemtest.Broker, log *slog.Logger) (*refresher.Service, error) {
	cfg := refresher.LoadConfig(config.FromMap(b.Env))
	if pw := b.Env[system.NATSPasswordVar(natsauth.Refresher)]; pw != "" {
		cfg.NATSURL = system.WithNATSUser(cfg.NATSURL, natsauth.Refresher, pw)
	}
	r, err := refresher.Start(ctx, cfg, log.With("service", "refresher-2"))
	if err != nil {
		return nil, fmt.Errorf("second refresher: %w", err)
	}
	return r, nil
}

// seedConnections mints a refresh token at the provider for each
// connection and seeds them, with access tokens expiring when they make
// the first renewals due evenly over the next RenewEvery.
func seedConnections(ctx context.Context, b *systemtest.Broker, pool *pgxpool.Pool, providerID string, c Config) ([]string, error) {
	scopes := []string{"offline_access", "profile"}
	if c.IDTokens {
		scopes = append(scopes, "openid")
	}
	refresh := make([]string, c.Connections)
	for i := range refresh {
		rt, err := b.Provider.MintRefreshToken(systemtest.ClientID, scopes)
		if err != nil {
			return nil, err
		}
		refresh[i] = rt
	}
	ring, err := seed.Keyring(b.Infra.EncryptionKey)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return seed.Connections(ctx, pool, ring, seed.Spec{
		ProviderID: providerID, WorkspaceID: Workspace, Count: c.Connections, Scopes: scopes,
		Tokens: func(i int) (seed.Tokens, error) {
			return seed.Tokens{Access: fmt.Sprintf("%s%d", seededPrefix, i), Refresh: refresh[i]}, nil
		},
		ExpiresAt: func(i int) time.Time {
			return now.Add(c.lifeDueIn(c.RenewEvery() * time.Duration(i+1) / time.Duration(c.Connections)))
		},
		RefreshLead: c.Lead,
	})
}

// lifeDueIn is the life a token must have left to be due for renewal in
// d: the vault renews Lead before expiry, or at half the life left when
// that is sooner.
func (c Config) lifeDueIn(d time.Duration) time.Duration {
	if d < c.Lead {
		return 2 * d
	}
	return d + c.Lead
}

// redemptions counts the refresh tokens the provider saw presented, and
// those presented more than once.
func redemptions(p *oidcprovider.Server) Redemptions {
	var r Redemptions
	for _, n := range p.RefreshTokenUses() {
		r.Tokens++
		if n > 1 {
			r.Reused++
		}
	}
	reuses := p.RefreshTokenReuses()
	r.RotatedPresented = reuses.Within + reuses.Beyond
	return r
}

// isSeeded reports whether an access token is one the soak seeded.
func isSeeded(token string) bool { return strings.HasPrefix(token, seededPrefix) }
