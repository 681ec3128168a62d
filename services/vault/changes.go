package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexus-broker/nexus/services/vault/internal/cache"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
)

// The change listener's timing: a probe every probeInterval keeps the cache
// confirmed well inside cache.DefaultWindow; a listener that has received
// no probe back for listenSilence reconnects (a connection that died without
// a word), and a failed connection is retried after listenRetry.
const (
	probeInterval = 200 * time.Millisecond
	listenSilence = 5 * time.Second
	listenRetry   = time.Second
	// listenerName is the listener's application_name in pg_stat_activity,
	// proberName its probes' session's.
	listenerName = "nexus-vault-changes"
	proberName   = "nexus-vault-probes"
)

// changes keeps this replica's tokens.get cache in step with every replica's
// commits. It LISTENs on store.ChangesChannel, dropping what each
// notification names, and on a probe channel of its own: each probe it sends
// (a notification, a transaction like any other) comes back after every
// change committed before it, so receiving a probe sent at T confirms the
// cache up to T (cache.Confirm). Probes go out on a second session of their
// own, not through the pool: a pool busy with a burst of cache misses must
// not delay them past the cache's window, or the cache would switch itself
// off just when it saves the most. The listener is written here
// rather than with a LISTEN library because its probes decide both the
// cache's freshness and when a silent connection must be replaced.
type changes struct {
	// connect opens the listener's own session (not a pool connection:
	// LISTEN belongs to a session, and it stays open); connectProber the
	// session its probes go out on.
	connect, connectProber func(ctx context.Context) (*pgx.Conn, error)
	cache                  *cache.Cache
	channel                string // this replica's probe channel
	log                    *slog.Logger

	every, silence, retry time.Duration

	mu    sync.Mutex
	seq   uint64
	sent  map[uint64]time.Time // this session's probes in flight, by sequence number
	heard time.Time            // when a probe last came back
}

// newChanges returns the listener of a vault replica (replica: its id in
// vault.replicas) over pool's database.
func newChanges(pool *pgxpool.Pool, c *cache.Cache, replica string, log *slog.Logger) *changes {
	cfg := pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = listenerName
	// A session this listener gave up on (silent) holds back PostgreSQL's
	// notification queue until the server notices it is gone: have the
	// server probe it within about a minute, not the system's two hours.
	cfg.RuntimeParams["tcp_keepalives_idle"] = "30"
	cfg.RuntimeParams["tcp_keepalives_interval"] = "10"
	cfg.RuntimeParams["tcp_keepalives_count"] = "3"
	prober := cfg.Copy()
	prober.RuntimeParams["application_name"] = proberName
	return &changes{
		connect:       func(ctx context.Context) (*pgx.Conn, error) { return pgx.ConnectConfig(ctx, cfg.Copy()) },
		connectProber: func(ctx context.Context) (*pgx.Conn, error) { return pgx.ConnectConfig(ctx, prober.Copy()) },
		cache:         c,
		channel:       probeChannel(replica),
		log:           log,
		every:         probeInterval, silence: listenSilence, retry: listenRetry,
		sent: map[uint64]time.Time{},
	}
}

// probeChannel is a replica's own channel: only it listens there, so probes
// cost each replica its own, not every replica's.
func probeChannel(replica string) string {
	id := make([]byte, 0, len(replica))
	for _, r := range []byte(replica) {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'f' {
			id = append(id, r)
		}
	}
	return "nexus_vault_probe_" + string(id)
}

// run listens until ctx ends, reconnecting after every failure. While it is
// not listening the cache is not confirmed, and tokens.get reads the
// database.
func (ch *changes) run(ctx context.Context) {
	for {
		err := ch.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		ch.log.Warn("vault change listener stopped; tokens.get reads the database until it is back", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(ch.retry):
		}
	}
}

var errSilent = errors.New("no probe came back: the listener's connection is silent")

// listen runs one session: LISTEN, flush what may have been missed, then
// apply notifications while probes go out, until the session (or its
// prober's) fails or goes silent.
func (ch *changes) listen(ctx context.Context) error {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	conn, err := ch.connect(sctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer closeSession(ctx, conn)
	prober, err := ch.connectProber(sctx)
	if err != nil {
		return fmt.Errorf("connect the prober: %w", err)
	}
	defer closeSession(ctx, prober)
	for _, c := range []string{store.ChangesChannel, ch.channel} {
		if _, err := conn.Exec(sctx, "listen "+pgx.Identifier{c}.Sanitize()); err != nil {
			return fmt.Errorf("listen %s: %w", c, err)
		}
	}
	// Changes committed while nobody listened were not heard: drop
	// everything. From here on every commit is heard.
	ch.cache.Flush()
	ch.mu.Lock()
	ch.heard = time.Now()
	clear(ch.sent) // an earlier session's probes prove nothing about this one
	ch.mu.Unlock()

	done := make(chan struct{})
	defer func() { cancel(nil); <-done }()
	go func() { defer close(done); ch.sendProbes(sctx, prober, cancel) }()
	for {
		n, err := conn.WaitForNotification(sctx)
		if err != nil {
			if cause := context.Cause(sctx); cause != nil && ctx.Err() == nil {
				return cause
			}
			return err
		}
		switch n.Channel {
		case store.ChangesChannel:
			applyChange(ch.cache, store.ParseChange(n.Payload))
		case ch.channel:
			ch.heardProbe(n.Payload)
		}
	}
}

// closeSession closes a session of the listener's, within a second.
func closeSession(ctx context.Context, conn *pgx.Conn) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = conn.Close(cctx)
}

// sendProbes sends a probe on prober every interval, and ends the session
// (cancel) when none has come back for the silence limit, or the prober's
// session failed (the next session opens another).
func (ch *changes) sendProbes(ctx context.Context, prober *pgx.Conn, cancel context.CancelCauseFunc) {
	t := time.NewTicker(ch.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ch.mu.Lock()
		ch.seq++
		seq := ch.seq
		ch.sent[seq] = ch.cache.Now() // before the probe commits: any change before it is older
		silent := time.Since(ch.heard) > ch.silence
		ch.mu.Unlock()
		if silent {
			cancel(errSilent)
			return
		}
		pctx, pcancel := context.WithTimeout(ctx, ch.silence)
		_, err := prober.Exec(pctx, "select pg_notify($1, $2)", ch.channel, strconv.FormatUint(seq, 10))
		pcancel()
		if err != nil && ctx.Err() == nil {
			if prober.IsClosed() {
				cancel(fmt.Errorf("the probes' session: %w", err))
				return
			}
			ch.log.Debug("vault change probe failed", "err", err)
		}
	}
}

// heardProbe confirms the cache up to the probe's sending time.
func (ch *changes) heardProbe(payload string) {
	seq, err := strconv.ParseUint(payload, 10, 64)
	if err != nil {
		return
	}
	ch.mu.Lock()
	at, ok := ch.sent[seq]
	if ok {
		// Older probes still in flight would confirm less: forget them.
		for s := range ch.sent {
			if s <= seq {
				delete(ch.sent, s)
			}
		}
		ch.heard = time.Now()
	}
	ch.mu.Unlock()
	if ok {
		ch.cache.Confirm(at)
	}
}
