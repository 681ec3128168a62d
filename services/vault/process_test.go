package vault_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
)

// vaultBinary builds cmd/vault into a temporary directory.
func vaultBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vault")
	build := exec.Command("go", "build", "-o", bin, "./cmd/vault")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the vault: %v\n%s", err, out)
	}
	return bin
}

// process is a vault binary running; done is closed when it has exited,
// with err its exit.
type process struct {
	cmd  *exec.Cmd
	out  *logBuffer
	done chan struct{}
	err  error
}

func (e *env) processEnv(active []byte, previous ...[]byte) []string {
	prev := make([]string, len(previous))
	for i, k := range previous {
		prev[i] = b64(k)
	}
	return []string{
		"PATH=" + os.Getenv("PATH"), "NATS_URL=" + e.natsURL, "DATABASE_URL=" + e.dbURL,
		"ENCRYPTION_KEY=" + b64(active), "ENCRYPTION_KEYS_PREVIOUS=" + strings.Join(prev, ","),
		"API_KEY=" + workspaceKey, "CROSS_WORKSPACE_API_KEY=" + apiKey, "HANDSHAKE_SERVICE_KEY=" + handshakeKey,
		"ADMIN_SERVICE_KEY=" + adminKey, "REFRESHER_SERVICE_KEY=" + refresherKey, "HTTP_ADDR=127.0.0.1:0", "LOG_FORMAT=text",
	}
}

func runVault(t *testing.T, bin string, env []string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin), out: &logBuffer{}, done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// TestResealResumesAfterKill9: the vault process re-sealing under a new key
// is killed with SIGKILL in the middle of its pass. What it committed is
// whole rows; the canary still names the old key; a start without the old
// key is refused, naming it and what it still seals; a restart with it
// finishes the pass and says the old key may go.
func TestResealResumesAfterKill9(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin := vaultBinary(t)
	e := newEnv(t, envOptions{})
	keyA, keyB := e.key, randomKey(t)
	if err := e.svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Enough connections under the old key that a pass takes a while.
	const n = 30_000
	ringA, err := keyring.New(keyA)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, n)
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if len(ids) == n {
			return nil, nil
		}
		u := uuid.Must(uuid.NewV7())
		cid := u.String()
		ids = append(ids, cid)
		at, err := ringA.Seal(store.ConnectionPlace(cid, "access_token", 0), []byte("access-"+cid))
		if err != nil {
			return nil, err
		}
		rt, err := ringA.Seal(store.ConnectionPlace(cid, "refresh_token", 0), []byte("refresh-"+cid))
		if err != nil {
			return nil, err
		}
		return []any{u, providerID, workspace, "active", at, rt, "bearer", time.Now().Add(time.Hour)}, nil
	})
	if _, err := e.pool.CopyFrom(ctx, pgx.Identifier{"vault", "connections"},
		[]string{"id", "provider_id", "workspace_id", "status", "access_token", "refresh_token", "token_type", "expires_at"}, src); err != nil {
		t.Fatal(err)
	}
	total := e.valuesUnder(kid(keyA))

	p := runVault(t, bin, e.processEnv(keyB, keyA))
	within(t, "the pass commits a batch", func() bool { return e.valuesUnder(kid(keyB)) > 0 })
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	underA, underB := e.valuesUnder(kid(keyA)), e.valuesUnder(kid(keyB))
	t.Logf("killed with %d values under the new key, %d under the old", underB, underA)
	if underA == 0 {
		t.Fatalf("the pass finished before it was killed (%d values); it needs more rows to be killed in the middle", underB)
	}
	var mixed int
	if err := e.pool.QueryRow(ctx, "select count(*) from vault.connections where access_token_key_id <> refresh_token_key_id").Scan(&mixed); err != nil {
		t.Fatal(err)
	}
	if mixed != 0 || underA+underB != total || e.canaryKey() != kid(keyA) {
		t.Fatalf("after the kill: %d rows half re-sealed, %d+%d of %d values, canary under %s", mixed, underA, underB, total, e.canaryKey())
	}

	// The operator, thinking the rotation done, drops the old key.
	refused := runVault(t, bin, e.processEnv(keyB))
	select {
	case <-refused.done:
		if refused.err == nil {
			t.Fatal("the vault started without the old key")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the vault without the old key neither started serving nor exited")
	}
	for _, want := range []string{"key id " + kid(keyA) + fmt.Sprintf(" seals %d", underA), "ENCRYPTION_KEYS_PREVIOUS"} {
		if !strings.Contains(refused.out.String(), want) {
			t.Fatalf("the refusal does not say %q:\n%s", want, refused.out)
		}
	}

	// With the old key back, a restart finishes the pass.
	again := runVault(t, bin, e.processEnv(keyB, keyA))
	within(t, "the restarted vault finishes the pass", func() bool {
		return e.valuesUnder(kid(keyA)) == 0 && e.canaryKey() == kid(keyB)
	})
	within(t, "it says the old key may be removed", func() bool { return strings.Contains(again.out.String(), mayBeRemoved) })
	if err := again.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if <-again.done; again.err != nil {
		t.Fatalf("stop: %v\n%s", again.err, again.out)
	}

	// The new key alone opens every row, each still its own.
	ringB, err := keyring.New(keyB)
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(e.pool, ringB, store.Options{})
	if err := st.CheckKeys(ctx, ""); err != nil {
		t.Fatal(err)
	}
	for _, cid := range []string{ids[0], ids[n/2], ids[n-1]} {
		if _, tok, err := st.GetWithTokens(ctx, cid); err != nil || tok.Access.Reveal() != "access-"+cid || tok.Refresh.Reveal() != "refresh-"+cid {
			t.Fatalf("connection %s after the rotation: %v", cid, err)
		}
	}
}
