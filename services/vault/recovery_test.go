package vault_test

import (
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// holdAfterRotation makes the provider lock connection id's row, from the
// test's own session, when it has computed its first refresh answer and
// before it writes it: the vault hears the rotated token and its store
// (finish) waits on the row lock. It returns the transaction, once the
// vault's backend waits on that lock, and the backend's pid.
type rotationHold struct {
	e    *env
	id   string
	once sync.Once
	tx   chan pgx.Tx
	err  chan error
}

func holdAfterRotation(e *env, id string) *rotationHold {
	h := &rotationHold{e: e, id: id, tx: make(chan pgx.Tx, 1), err: make(chan error, 1)}
	e.op.BeforeTokenResponse(func(grant string) {
		if grant != "refresh_token" {
			return
		}
		h.once.Do(func() {
			tx, err := e.pool.Begin(context.Background())
			if err == nil {
				_, err = tx.Exec(context.Background(), "select from vault.connections where id = $1 for update", id)
			}
			if err != nil {
				h.err <- err
				return
			}
			h.tx <- tx
		})
	})
	return h
}

// wait returns the held transaction and the pid of the vault's backend
// waiting on the row lock.
func (h *rotationHold) wait(t *testing.T) (pgx.Tx, int) {
	t.Helper()
	var tx pgx.Tx
	select {
	case tx = <-h.tx:
	case err := <-h.err:
		t.Fatalf("lock the row from the provider: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the provider answered no refresh within 60s")
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	var holder, pid int
	if err := tx.QueryRow(context.Background(), "select pg_backend_pid()").Scan(&holder); err != nil {
		t.Fatal(err)
	}
	within(t, "the vault's store waits on the row lock", func() bool {
		err := h.e.pool.QueryRow(context.Background(), "select pid from pg_stat_activity where $1 = any(pg_blocking_pids(pid)) limit 1", holder).Scan(&pid)
		return err == nil
	})
	return tx, pid
}

// refreshInBackground asks for a forced refresh of id and reports its
// outcome on the channel.
func (e *env) refreshInBackground(id string) <-chan error {
	done := make(chan error, 1)
	go func() {
		var cr messages.Credential
		done <- e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: id}, &cr)
	}()
	return done
}

// inFlight reports whether connection id has a refresh in flight, and its
// token version.
func (e *env) inFlight(id string) (bool, int64) {
	e.t.Helper()
	var owner *string
	var version int64
	if err := e.pool.QueryRow(context.Background(), "select refresh_inflight_owner, token_version from vault.connections where id = $1", id).Scan(&owner, &version); err != nil {
		e.t.Fatal(err)
	}
	return owner != nil, version
}

// crashAfterRotation runs a vault process under replica id replica, has it
// refresh connection id, and kills it with SIGKILL after the provider
// rotated the refresh token and before the vault stored it. The row lock
// is released once the process is gone.
func (e *env) crashAfterRotation(bin string, env []string, id string) {
	t := e.t
	t.Helper()
	p := runVault(t, bin, env)
	within(t, "the vault process serves", func() bool { return strings.Contains(p.out.String(), "vault started") })
	hold := holdAfterRotation(e, id)
	_ = e.refreshInBackground(id)
	tx, _ := hold.wait(t)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	e.op.BeforeTokenResponse(nil)
	if err := tx.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	if busy, _ := e.inFlight(id); !busy {
		t.Fatal("the killed vault left no refresh in flight")
	}
}

// processReplica is the environment of a vault process with replica id
// "crash-<test>" and the test provider reachable.
func (e *env) processReplica() []string {
	return append(e.processEnv(e.key), "PROVIDER_PRIVATE_NETWORKS=127.0.0.1/32", "VAULT_REPLICA_ID=crash-"+strings.ReplaceAll(e.t.Name(), "/", "-"))
}

// TestRefreshRetriedAtOnceAfterKill9 (issue 10): the vault is killed after
// the provider rotated the refresh token and before the vault stored it,
// and is back within a second. Its refresh mark would keep everyone off
// the connection until past the provider's reuse window; instead the
// restarted replica finds the mark its earlier boot left and refreshes at
// once with the stored token, which the provider still honours: the
// connection stays active, and no token is presented beyond the window.
func TestRefreshRetriedAtOnceAfterKill9(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin := vaultBinary(t)
	// The window is shorter than a mark's life (30s): a retry only after the
	// mark ran out would be refused.
	e := newEnv(t, envOptions{provider: oidcprovider.Options{RefreshTokenReuseWindow: 20 * time.Second}})
	c := e.connect(workspace)
	if err := e.svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	stored := e.storedRefreshToken(c.ConnectionID)
	_, version := e.inFlight(c.ConnectionID)
	env := e.processReplica()

	e.crashAfterRotation(bin, env, c.ConnectionID)
	if e.op.RefreshGrants() != 1 || e.storedRefreshToken(c.ConnectionID) != stored {
		t.Fatalf("before the restart: %d grants, stored token changed: %v", e.op.RefreshGrants(), e.storedRefreshToken(c.ConnectionID) != stored)
	}

	again := runVault(t, bin, env)
	within(t, "the restarted vault refreshes the connection", func() bool {
		busy, v := e.inFlight(c.ConnectionID)
		return !busy && v > version
	})
	if !strings.Contains(again.out.String(), "retrying a refresh whose owner died") {
		t.Fatalf("the refresh was not retried by the restarted vault's recovery:\n%s", again.out)
	}
	issued := e.op.Issued().RefreshTokens
	if got := e.storedRefreshToken(c.ConnectionID); got != issued[len(issued)-1] {
		t.Fatal("the stored refresh token is not the provider's newest")
	}
	if r := e.op.RefreshTokenReuses(); r != (oidcprovider.Reuses{Within: 1}) {
		t.Fatalf("reuses of rotated tokens = %+v, want one within the window", r)
	}
	if s := e.get(c.ConnectionID); s.Status != messages.StatusActive {
		t.Fatalf("status = %s", s.Status)
	}

	// The next refresh presents the stored token, which is live.
	if err := <-e.refreshInBackground(c.ConnectionID); err != nil {
		t.Fatalf("the next refresh: %v", err)
	}
	if r := e.op.RefreshTokenReuses(); r.Beyond != 0 {
		t.Fatalf("a rotated token was presented beyond the reuse window: %+v", r)
	}
	for hash, n := range e.op.RefreshTokenUses() {
		if n > 1 && hash != oidcprovider.TokenHash(stored) {
			t.Fatalf("a refresh token was presented %d times", n)
		}
	}
	if n := e.op.RefreshTokenUses()[oidcprovider.TokenHash(stored)]; n != 2 {
		t.Fatalf("the token the killed vault presented was presented %d times, want 2 (the kill, the retry)", n)
	}
}

// TestRefreshRefusedAfterKill9NeedsAttention: the provider does not honour
// a rotated token again. The retry after the crash is refused for good, and
// the connection needs its user at once, with its event, rather than
// staying active and failing every read.
func TestRefreshRefusedAfterKill9NeedsAttention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin := vaultBinary(t)
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	if err := e.svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	env := e.processReplica()
	e.crashAfterRotation(bin, env, c.ConnectionID)

	runVault(t, bin, env)
	within(t, "the restarted vault settles the connection", func() bool {
		busy, _ := e.inFlight(c.ConnectionID)
		var status string
		_ = e.pool.QueryRow(ctx, "select status from vault.connections where id = $1", c.ConnectionID).Scan(&status)
		return !busy && status != string(messages.StatusActive)
	})
	got := e.get(c.ConnectionID)
	if got.Status != messages.StatusAttentionRequired || got.Attention == nil || got.Attention.Code != "invalid_grant" {
		t.Fatalf("after the refused retry: %s", mustJSON(t, got))
	}
	evs := eventTypes(e.events(c.ConnectionID))
	if len(evs) == 0 || evs[len(evs)-1] != "attention_required" {
		t.Fatalf("events = %v", evs)
	}
	if r := e.op.RefreshTokenReuses(); r != (oidcprovider.Reuses{Beyond: 1}) {
		t.Fatalf("reuses = %+v", r)
	}
}

// TestRefreshStoredAfterItsConnectionIsTerminated: the vault's database
// connection dies while its store waits on the row lock, right after the
// provider rotated the token. The vault stores the result it holds on a
// fresh connection: the rotated token lands and the next refresh succeeds.
func TestRefreshStoredAfterItsConnectionIsTerminated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	hold := holdAfterRotation(e, c.ConnectionID)
	done := e.refreshInBackground(c.ConnectionID)
	tx, pid := hold.wait(t)
	var ok bool
	if err := e.pool.QueryRow(ctx, "select pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate the vault's backend: %v %v", ok, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the refresh whose connection was terminated: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the refresh did not answer within 60s")
	}
	issued := e.op.Issued().RefreshTokens
	if got := e.storedRefreshToken(c.ConnectionID); got != issued[len(issued)-1] {
		t.Fatal("the stored refresh token is not the rotated one")
	}
	if err := <-e.refreshInBackground(c.ConnectionID); err != nil {
		t.Fatalf("the next refresh: %v", err)
	}
	if r := e.op.RefreshTokenReuses(); r != (oidcprovider.Reuses{}) || e.op.RefreshGrants() != 2 {
		t.Fatalf("reuses = %+v, grants = %d", r, e.op.RefreshGrants())
	}
	if s := e.get(c.ConnectionID); s.Status != messages.StatusActive {
		t.Fatalf("status = %s", s.Status)
	}
}

// TestRefreshesRunOutAreRetried: a refresh whose owner died elsewhere (its
// mark ran out) is retried by any replica, and the connection is refreshed;
// a mark still running is left to its owner.
func TestRefreshesRunOutAreRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{configure: func(c *vault.Config) { c.RecoveryInterval = 50 * time.Millisecond }})
	dead, live := e.connect(workspace), e.connect(workspace)
	_, version := e.inFlight(dead.ConnectionID)
	if _, err := e.pool.Exec(ctx, `update vault.connections set refresh_inflight_owner = 'gone/0/1', refresh_inflight_until = now() - interval '1 minute' where id = $1`, dead.ConnectionID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `update vault.connections set refresh_inflight_owner = 'other/0/1', refresh_inflight_until = now() + interval '1 hour' where id = $1`, live.ConnectionID); err != nil {
		t.Fatal(err)
	}
	within(t, "the refresh whose mark ran out is retried", func() bool {
		busy, v := e.inFlight(dead.ConnectionID)
		return !busy && v > version
	})
	if busy, _ := e.inFlight(live.ConnectionID); !busy || e.op.RefreshGrants() != 1 {
		t.Fatalf("a running mark was taken over (in flight %v, %d grants)", busy, e.op.RefreshGrants())
	}
}
