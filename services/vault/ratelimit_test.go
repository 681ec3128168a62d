package vault_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/ratelimit"
	"github.com/nexus-broker/nexus/shared/testkit"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// limitedVault is a vault whose tokens.refresh takes 5 a minute per key and
// 3 per workspace, its clock 15 seconds into a minute. It returns the two
// Gateway clients: the cross-workspace key's and the workspace key's.
func limitedVault(t *testing.T) (e *env, clock *testClock, cross, scoped *natsx.Client) {
	t.Helper()
	clock = &testClock{t: time.Now().UTC().Truncate(time.Minute).Add(15 * time.Second)}
	e = newEnv(t, envOptions{configure: func(c *vault.Config) {
		c.RefreshLimits = ratelimit.Limits{PerKey: ratelimit.Rate{Limit: 5, Per: time.Minute}, PerWorkspace: ratelimit.Rate{Limit: 3, Per: time.Minute}}
		c.Now = clock.now
	}})
	return e, clock, e.client, &natsx.Client{NC: e.nc, Prefix: messages.DefaultPrefix, APIKey: workspaceKey}
}

func forceRefresh(c *natsx.Client, conn messages.Connection) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var cred messages.Credential
	return c.Request(ctx, messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: conn.ConnectionID, WorkspaceID: conn.WorkspaceID}, &cred)
}

func wantLimited(t *testing.T, err error, seconds int, scope string) {
	t.Helper()
	var me *messages.Error
	if !errors.As(err, &me) || me.Code != messages.CodeRateLimited || me.RetryAfterSeconds != seconds || !strings.Contains(me.Message, "this "+scope) {
		t.Fatalf("error = %#v, want rate_limited for this %s, retry after %ds", err, scope, seconds)
	}
}

// metrics is what the vault's /metrics shows.
func metrics(t *testing.T, svc *vault.Service) string {
	t.Helper()
	rec := httptest.NewRecorder()
	svc.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return rec.Body.String()
}

func (e *env) tokenVersion(id string) int64 {
	e.t.Helper()
	var v int64
	if err := e.pool.QueryRow(context.Background(), "select token_version from vault.connections where id = $1", id).Scan(&v); err != nil {
		e.t.Fatal(err)
	}
	return v
}

// TestRefreshRateLimits: the fourth forced refresh of a minute in one
// workspace is refused with a retry hint and reaches no provider; other
// workspaces and keys go on until their own limits; token reads, the
// background refresh and a consent begun before the limit are not limited;
// the next window refreshes again; refusals are counted by scope.
func TestRefreshRateLimits(t *testing.T) {
	t.Parallel()
	e, clock, cross, scoped := limitedVault(t)
	c1, c2, d, f := e.connect("ws-1"), e.connect("ws-1"), e.connect("ws-2"), e.connect("ws-3")
	begun := e.create("ws-1")

	// A cross-workspace key names no workspace: the connection's counts.
	for _, c := range []messages.Connection{c1, c2, c1} {
		if err := forceRefresh(cross, messages.Connection{ConnectionID: c.ConnectionID}); err != nil {
			t.Fatal(err)
		}
	}
	grants := e.op.RefreshGrants()
	wantLimited(t, forceRefresh(cross, c2), 45, "workspace")
	if e.op.RefreshGrants() != grants {
		t.Fatal("a refused refresh reached the provider")
	}

	// Not limited: token reads, the refresher's runs, consents.
	if _, err := e.token(c2.ConnectionID, nil); err != nil {
		t.Fatalf("tokens.get: %v", err)
	}
	if r := e.run(c2.ConnectionID, e.tokenVersion(c2.ConnectionID)); r.Outcome != messages.RefreshDone {
		t.Fatalf("background refresh: %+v", r)
	}
	if got, err := e.exchange(begun.ConnectionID, e.authorize(begun.Scopes)); err != nil || got.Status != messages.StatusActive {
		t.Fatalf("a consent begun before the limit: %+v, %v", got, err)
	}

	// The other key, in the full workspace and in another.
	wantLimited(t, forceRefresh(scoped, c1), 45, "workspace")
	if err := forceRefresh(scoped, d); err != nil {
		t.Fatalf("another key, another workspace: %v", err)
	}
	// The cross-workspace key's fourth and fifth, then its sixth.
	for range 2 {
		if err := forceRefresh(cross, d); err != nil {
			t.Fatal(err)
		}
	}
	wantLimited(t, forceRefresh(cross, f), 45, "key")
	if err := forceRefresh(scoped, f); err != nil {
		t.Fatalf("another key: %v", err)
	}

	clock.advance(45 * time.Second)
	if err := forceRefresh(cross, c2); err != nil {
		t.Fatalf("in the next minute: %v", err)
	}
	m := metrics(t, e.svc)
	for _, want := range []string{
		`nexus_rate_limited_total{endpoint="tokens.refresh",scope="workspace"} 2`,
		`nexus_rate_limited_total{endpoint="tokens.refresh",scope="key"} 1`,
		`nexus_rate_limit_unchecked_total{endpoint="tokens.refresh"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics have no %s", want)
		}
	}
}

// TestRefreshRateLimitsSharedByReplicas: the counts are in PostgreSQL, so
// a replica refuses what another filled; they name keys by their KeyID,
// never the key.
func TestRefreshRateLimitsSharedByReplicas(t *testing.T) {
	t.Parallel()
	e, _, cross, _ := limitedVault(t)
	c := e.connect("ws-1")
	for range 3 {
		if err := forceRefresh(cross, c); err != nil {
			t.Fatal(err)
		}
	}
	e.start(e.key)
	if err := e.svc.Close(context.Background()); err != nil { // the new replica alone answers
		t.Fatal(err)
	}
	wantLimited(t, forceRefresh(cross, c), 45, "workspace")

	rows, err := e.pool.Query(context.Background(), "select key, count from vault.rate_limits order by key")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		if n != 3 || strings.Contains(k, apiKey) {
			t.Errorf("count %s = %d", k, n)
		}
		keys = append(keys, k)
	}
	if len(keys) != 2 || !strings.HasPrefix(keys[0], "tokens.refresh:key:") || keys[1] != "tokens.refresh:workspace:ws-1" {
		t.Fatalf("counts = %v", keys)
	}
}

// TestRefreshRateLimitFailsOpen: when the counts cannot be read, refreshes
// go through, counted as unchecked; when they can again, limits hold.
func TestRefreshRateLimitFailsOpen(t *testing.T) {
	t.Parallel()
	e, _, cross, _ := limitedVault(t)
	c := e.connect("ws-1")
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, "alter table vault.rate_limits rename to rate_limits_gone"); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if err := forceRefresh(cross, c); err != nil {
			t.Fatalf("with the counts unreachable: %v", err)
		}
	}
	if m := metrics(t, e.svc); !strings.Contains(m, `nexus_rate_limit_unchecked_total{endpoint="tokens.refresh"} 4`) {
		t.Fatalf("unchecked refreshes not counted:\n%s", m)
	}
	if _, err := e.pool.Exec(ctx, "alter table vault.rate_limits_gone rename to rate_limits"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := forceRefresh(cross, c); err != nil {
			t.Fatal(err)
		}
	}
	wantLimited(t, forceRefresh(cross, c), 45, "workspace")
}

func TestLoadConfigLimitsAndRetention(t *testing.T) {
	base := map[string]string{"API_KEY": apiKey, "DATABASE_URL": "postgres://db/x", "ENCRYPTION_KEY": testkit.Key32(t),
		"HANDSHAKE_SERVICE_KEY": handshakeKey, "ADMIN_SERVICE_KEY": adminKey, "REFRESHER_SERVICE_KEY": refresherKey}
	l := config.FromMap(base)
	cfg := vault.LoadConfig(l)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	if got := cfg.RefreshLimits.PerKey.String() + " " + cfg.RefreshLimits.PerWorkspace.String(); got != "600/m 30/m" || cfg.EndedRetention != 720*time.Hour {
		t.Fatalf("defaults: limits %s, retention %v", got, cfg.EndedRetention)
	}
	base["TOKENS_REFRESH_RATE_PER_KEY"], base["TOKENS_REFRESH_RATE_PER_WORKSPACE"], base["ENDED_CONNECTION_RETENTION"] = "0", "100/h", "1h"
	l = config.FromMap(base)
	if cfg = vault.LoadConfig(l); l.Err() != nil || cfg.RefreshLimits.PerKey.On() || cfg.RefreshLimits.PerWorkspace.String() != "100/h" || cfg.EndedRetention != time.Hour {
		t.Fatalf("cfg %+v %v (%v)", cfg.RefreshLimits, cfg.EndedRetention, l.Err())
	}
	base["TOKENS_REFRESH_RATE_PER_KEY"], base["TOKENS_REFRESH_RATE_PER_WORKSPACE"], base["ENDED_CONNECTION_RETENTION"] = "60/fortnight", "-1/m", "59m"
	l = config.FromMap(base)
	vault.LoadConfig(l)
	err := l.Err()
	for _, name := range []string{"TOKENS_REFRESH_RATE_PER_KEY", "TOKENS_REFRESH_RATE_PER_WORKSPACE", "ENDED_CONNECTION_RETENTION"} {
		if err == nil || !strings.Contains(err.Error(), name+": ") {
			t.Errorf("problems do not name %s: %v", name, err)
		}
	}
}
