package vault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexus-broker/nexus/services/vault/internal/refresh"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
)

// A refresh records its owner on the row while it calls the provider
// (invariant 5). Owners are "<replica>/<boot>/<flight>": the replica is
// VAULT_REPLICA_ID (the host name by default), stable across restarts; the
// boot a random value of each start. A vault that dies in a refresh leaves
// the mark, and a provider that rotates refresh tokens may have rotated the
// token it presented: only a retry within the provider's reuse window, with
// the stored token, saves the grant. So a vault coming back finds the marks
// its replica left in an earlier boot and retries those refreshes at once,
// and every vault retries the refreshes whose mark ran out (their owner died
// anywhere) every recoveryInterval.

// recoveryInterval is how often a vault looks for refreshes whose mark ran
// out; recoveryBatch bounds the refreshes taken over per pass, of which
// recoveryConcurrency run at once.
const (
	recoveryInterval    = 5 * time.Second
	recoveryBatch       = 1000
	recoveryConcurrency = 16
)

// replicaIDMax bounds VAULT_REPLICA_ID; replicaIDWait is how long a start
// waits for an earlier boot's session, and its lock on the id, to end.
const (
	replicaIDMax  = 64
	replicaIDWait = 2 * time.Second
)

// defaultReplicaID is the host name: one vault per host (a pod, a VM) is
// the usual deployment, and the host keeps its name across restarts.
func defaultReplicaID() string {
	host, _ := os.Hostname()
	if host == "" || !validReplicaID(host) {
		return "vault"
	}
	return host
}

// validReplicaID: printable, no space, no "/" (the owner's separator).
func validReplicaID(id string) bool {
	if id == "" || len(id) > replicaIDMax || strings.Contains(id, "/") {
		return false
	}
	for _, r := range id {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// newBoot names this start of the vault.
func newBoot() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// holdReplicaID takes a session advisory lock on the replica id on a
// connection of its own, held while the vault runs: the marks of an
// earlier boot of this replica are only a dead vault's while no other
// running vault has the same id (two vaults on one host under the default
// id). A killed vault's session ends as soon as PostgreSQL sees its socket
// close, so the lock is retried for replicaIDWait. It returns nil when
// another running vault holds the id.
func holdReplicaID(ctx context.Context, pool *pgxpool.Pool, replica string) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(replicaIDWait); ; {
		var held bool
		if err := conn.QueryRow(ctx, "select pg_try_advisory_lock(hashtextextended('nexus-vault-replica:' || $1, 0))", replica).Scan(&held); err != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
			return nil, err
		}
		if held {
			return conn, nil
		}
		if time.Now().After(deadline) || sleepCtx(ctx, 100*time.Millisecond) != nil {
			return nil, conn.Close(context.WithoutCancel(ctx))
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// recoveryStore is what the recovery reads and changes.
type recoveryStore interface {
	RefreshesLeftBy(ctx context.Context, replica, boot string, limit int) ([]store.StrandedRefresh, error)
	RefreshesRunOut(ctx context.Context, before time.Time, limit int) ([]store.StrandedRefresh, error)
	WithLock(ctx context.Context, id string, fn func(ctx context.Context, l *store.Locked) error) (store.Connection, error)
	DeferRefresh(ctx context.Context, id string, until time.Time) error
}

var _ recoveryStore = (*store.Store)(nil)

// refresher is the refresh a recovery retries.
type refresher interface {
	Refresh(ctx context.Context, id, providerID string, need refresh.Need) (refresh.Result, error)
}

// runRecovery retries the refreshes this replica's earlier boots left (once,
// at start, when leftBy: this vault holds its replica id), then every
// interval until ctx ends those whose mark ran out more than
// refresh.StoreOverrun ago, reading the time from now.
func runRecovery(ctx context.Context, st recoveryStore, r refresher, replica, boot string, leftBy bool, every time.Duration, now func() time.Time, log *slog.Logger) {
	if leftBy {
		ms, err := st.RefreshesLeftBy(ctx, replica, boot, recoveryBatch)
		if err != nil && ctx.Err() == nil {
			log.Warn("finding the refreshes an earlier boot left failed; they are retried when their marks run out", "err", err)
		}
		recoverRefreshes(ctx, st, r, ms, now, log)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ms, err := st.RefreshesRunOut(ctx, now().Add(-refresh.StoreOverrun), recoveryBatch)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("finding refreshes whose owner died failed", "err", err)
			}
			continue
		}
		recoverRefreshes(ctx, st, r, ms, now, log)
	}
}

// recoverRefreshes retries each stranded refresh, recoveryConcurrency at a
// time (a provider's reuse window is seconds).
func recoverRefreshes(ctx context.Context, st recoveryStore, r refresher, ms []store.StrandedRefresh, now func() time.Time, log *slog.Logger) {
	sem := make(chan struct{}, recoveryConcurrency)
	var wg sync.WaitGroup
	for _, m := range ms {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			recoverRefresh(ctx, st, r, m, now, log)
		}()
	}
	wg.Wait()
}

// recoverRefresh releases a dead owner's mark, if it is still there, and
// refreshes at once with the stored token: within the provider's reuse
// window that saves a rotation the owner never stored; a provider that
// refuses the token for good moves the connection to attention_required (the
// refresh's own rule). A transient failure makes the connection due now, for
// the refresher's backoff.
func recoverRefresh(ctx context.Context, st recoveryStore, r refresher, m store.StrandedRefresh, now func() time.Time, log *slog.Logger) {
	released := false
	conn, err := st.WithLock(ctx, m.ID, func(ctx context.Context, l *store.Locked) error {
		if l.Conn.RefreshInFlightOwner != m.Owner || !l.Conn.RefreshInFlightUntil.Equal(m.Until) {
			return nil // finished, or taken again, meanwhile
		}
		released = true
		return l.ReleaseRefresh(ctx, m.Owner)
	})
	if err != nil || !released {
		if err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrNotFound) {
			log.Warn("releasing a dead refresh failed", "connection_id", m.ID, "err", err)
		}
		return
	}
	log.Info("retrying a refresh whose owner died", "connection_id", m.ID, "provider_id", m.ProviderID, "owner", m.Owner)
	_, err = r.Refresh(ctx, m.ID, m.ProviderID, refresh.Need{Force: true, SeenVersion: conn.TokenVersion})
	var na *store.NotActiveError
	switch {
	case err == nil:
	case errors.As(err, &na):
		log.Warn("a refresh whose owner died was refused; the connection needs its user", "connection_id", m.ID, "provider_id", m.ProviderID, "status", na.Conn.Status)
	case ctx.Err() != nil:
	default:
		log.Warn("retrying a refresh whose owner died failed; the refresher retries it", "connection_id", m.ID, "provider_id", m.ProviderID, "err", err)
		if err := st.DeferRefresh(ctx, m.ID, now()); err != nil && ctx.Err() == nil {
			log.Warn("making a connection due failed", "connection_id", m.ID, "err", err)
		}
	}
}
