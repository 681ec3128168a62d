package vault

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexus-broker/nexus/services/vault/internal/cache"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/shared/testkit"
)

const testReplica = "0190f3c2-7d7a-7b3e-9c1d-5a6b7c8d9e0f"

func cacheEntry(id, provider string) cache.Entry {
	return cache.Entry{ConnectionID: id, ProviderID: provider, Static: true, Reply: []byte(`{"access_token":"x"}`)}
}

// startChanges runs a listener over the test database with fast probes;
// dial, when set, replaces how its session connects.
func startChanges(t *testing.T, pool *pgxpool.Pool, silence time.Duration, dial func(ctx context.Context) (*pgx.Conn, error)) *cache.Cache {
	t.Helper()
	c := cache.New(cache.Options{})
	ch := newChanges(pool, c, testReplica, slog.New(slog.DiscardHandler))
	ch.every, ch.silence, ch.retry = 20*time.Millisecond, silence, 20*time.Millisecond
	if dial != nil {
		ch.connect = dial
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ch.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func testPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), testkit.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// confirmedSince waits until the cache is confirmed by a probe sent after
// since: every change committed before since has then been applied.
func confirmedSince(t *testing.T, c *cache.Cache, since time.Time) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !c.Confirmed().After(since) {
		if time.Now().After(deadline) {
			t.Fatalf("the cache was not confirmed after %s (latest %s)", since.Format(time.RFC3339Nano), c.Confirmed().Format(time.RFC3339Nano))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func notify(t *testing.T, pool *pgxpool.Pool, payload string) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), "select pg_notify($1, $2)", store.ChangesChannel, payload); err != nil {
		t.Fatal(err)
	}
}

// TestChangesApplyBeforeTheConfirmation: a change committed by another
// session (another replica) is applied before any probe sent after it
// confirms the cache, so a confirmed cache never serves what was changed
// before its confirmation.
func TestChangesApplyBeforeTheConfirmation(t *testing.T) {
	t.Parallel()
	pool := testPool(t)
	c := startChanges(t, pool, time.Second, nil)
	if _, ok := c.Get("a"); ok {
		t.Fatal("a cache nobody confirmed served")
	}
	confirmedSince(t, c, time.Now())
	for _, e := range []cache.Entry{cacheEntry("a", "p1"), cacheEntry("b", "p1"), cacheEntry("c", "p2"), cacheEntry("d", "p3")} {
		c.Put(c.Begin(), e)
	}
	notify(t, pool, "a")
	notify(t, pool, store.ProviderChange+"p2")
	// A transaction that rolls back notifies nobody.
	tx, err := pool.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), "select pg_notify($1, $2)", store.ChangesChannel, "d"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	confirmedSince(t, c, time.Now())
	for id, want := range map[string]bool{"a": false, "b": true, "c": false, "d": true} {
		if _, ok := c.Get(id); ok != want {
			t.Errorf("%s served = %v, want %v", id, ok, want)
		}
	}
}

// TestChangesFlushOnReconnect: a listener whose session is terminated may
// have missed changes while it was away: it reconnects by itself and drops
// everything before it is confirmed again.
func TestChangesFlushOnReconnect(t *testing.T) {
	t.Parallel()
	pool := testPool(t)
	c := startChanges(t, pool, time.Second, nil)
	confirmedSince(t, c, time.Now())
	c.Put(c.Begin(), cacheEntry("a", "p1"))
	var killed int
	if err := pool.QueryRow(context.Background(), `select count(pg_terminate_backend(pid)) from pg_stat_activity
		where application_name = $1 and datname = current_database()`, listenerName).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d listener sessions, want 1", killed)
	}
	cut := time.Now()
	confirmedSince(t, c, cut)
	if _, ok := c.Get("a"); ok {
		t.Fatal("an entry cached before the listener lost its session was served after it came back")
	}
	c.Put(c.Begin(), cacheEntry("a", "p1"))
	if _, ok := c.Get("a"); !ok {
		t.Fatal("the reconnected cache does not cache")
	}
}

// TestChangesSilentSession: a session that stops delivering without an
// error (a network path gone quiet) stops confirming the cache at once, so
// tokens.get reads the database; after the silence limit the listener
// replaces the session and flushes.
func TestChangesSilentSession(t *testing.T) {
	t.Parallel()
	pool := testPool(t)
	p := newFreezingProxy(t, pool.Config().ConnConfig.Host, pool.Config().ConnConfig.Port)
	cfg := pool.Config().ConnConfig.Copy()
	cfg.Host, cfg.Port = "127.0.0.1", p.port()
	var sessions atomic.Int32
	// The silence limit is longer than the cache's window: the cache goes
	// stale while the silent session is still the listener's.
	c := startChanges(t, pool, 8*cache.DefaultWindow, func(ctx context.Context) (*pgx.Conn, error) {
		sessions.Add(1)
		return pgx.ConnectConfig(ctx, cfg.Copy())
	})
	confirmedSince(t, c, time.Now())
	c.Put(c.Begin(), cacheEntry("a", "p1"))
	p.freeze()
	notify(t, pool, "a") // committed, but the frozen session cannot deliver it
	deadline := time.Now().Add(10 * time.Second)
	for c.Fresh() {
		if time.Now().After(deadline) {
			t.Fatal("a silent listener kept the cache fresh")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, ok := c.Get("a"); ok {
		t.Fatal("a stale cache served a connection changed since")
	}
	if n := sessions.Load(); n != 1 {
		t.Fatalf("%d sessions before the silence limit, want 1", n)
	}
	confirmedSince(t, c, time.Now())
	if n := sessions.Load(); n < 2 {
		t.Fatalf("%d sessions: the silent one was not replaced", n)
	}
	if _, ok := c.Get("a"); ok {
		t.Fatal("after the new session the changed connection was served from the cache")
	}
}

// freezingProxy forwards TCP to PostgreSQL; freeze stops every connection
// open at that moment from carrying anything more, without closing it.
type freezingProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	frozen []*atomic.Bool
}

func newFreezingProxy(t *testing.T, host string, port uint16) *freezingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln}
	t.Cleanup(func() { _ = ln.Close() })
	target := net.JoinHostPort(host, strconv.Itoa(int(port)))
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			f := &atomic.Bool{}
			p.mu.Lock()
			p.frozen = append(p.frozen, f)
			p.mu.Unlock()
			go pipe(in, out, f)
			go pipe(out, in, f)
		}
	}()
	return p
}

func (p *freezingProxy) port() uint16 { return uint16(p.ln.Addr().(*net.TCPAddr).Port) }

func (p *freezingProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.frozen {
		f.Store(true)
	}
}

// pipe copies src to dst until either closes; once frozen it drops what it
// reads, as a path that went quiet would.
func pipe(dst, src net.Conn, frozen *atomic.Bool) {
	defer func() { _ = dst.Close(); _ = src.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestChangesProbesBypassThePool: with every connection of the vault's
// pool taken (a burst of cache misses), probes still come back and keep
// the cache confirmed: they have a session of their own.
func TestChangesProbesBypassThePool(t *testing.T) {
	t.Parallel()
	cfg, err := pgxpool.ParseConfig(testkit.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	busy, err := pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Release()
	c := startChanges(t, pool, time.Second, nil)
	confirmedSince(t, c, time.Now())
	confirmedSince(t, c, time.Now().Add(cache.DefaultWindow))
}
