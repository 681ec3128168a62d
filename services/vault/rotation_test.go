package vault_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault"
	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/testkit"
)

// Key rotation as an operator lives it: a pass interrupted, keys dropped too
// soon, old and new replicas running at once, a database that lost its
// canary, and values put back from an earlier state of their row.

// logBuffer collects a vault's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

// mayBeRemoved is what a vault logs once the database needs no previous key.
const mayBeRemoved = "ENCRYPTION_KEYS_PREVIOUS may be removed"

// replica is another vault over the env's database, on a NATS server of its
// own so that a test can ask it and only it.
type replica struct {
	t    *testing.T
	svc  *vault.Service
	as   map[string]*natsx.Client
	logs *logBuffer
}

func (e *env) replica(active []byte, previous ...[]byte) *replica {
	e.t.Helper()
	url := testkit.NATS(e.t)
	cfg := e.config(active, previous...)
	cfg.NATSURL = url
	r := &replica{t: e.t, logs: &logBuffer{}, as: map[string]*natsx.Client{}}
	svc, err := vault.Start(context.Background(), cfg, r.logs.logger())
	if err != nil {
		e.t.Fatalf("start replica: %v", err)
	}
	r.svc = svc
	e.t.Cleanup(func() { _ = svc.Close(context.Background()) })
	nc := testkit.Conn(e.t, url)
	for principal, key := range map[string]string{apikey.Gateway: apiKey, apikey.Handshake: handshakeKey, apikey.Admin: adminKey} {
		r.as[principal] = &natsx.Client{NC: nc, Prefix: messages.DefaultPrefix, APIKey: key}
	}
	return r
}

func (r *replica) call(subject string, req, reply any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return r.as[callerOf(subject)].Request(ctx, subject, req, reply)
}

func (r *replica) token(id string) (messages.Credential, error) {
	var cr messages.Credential
	err := r.call(messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: id, MinValidSeconds: intp(0)}, &cr)
	return cr, err
}

func (r *replica) keys() messages.KeysStatus {
	r.t.Helper()
	var st messages.KeysStatus
	if err := r.call(messages.SubjectVaultKeysStatus, messages.KeysStatusRequest{}, &st); err != nil {
		r.t.Fatalf("keys.status: %v", err)
	}
	return st
}

// startLogged runs a vault on the env's NATS and returns its log.
func (e *env) startLogged(active []byte, previous ...[]byte) (*vault.Service, *logBuffer) {
	e.t.Helper()
	logs := &logBuffer{}
	svc, err := vault.Start(context.Background(), e.config(active, previous...), logs.logger())
	if err != nil {
		e.t.Fatalf("start vault: %v", err)
	}
	e.t.Cleanup(func() { _ = svc.Close(context.Background()) })
	return svc, logs
}

func (e *env) keys() messages.KeysStatus {
	e.t.Helper()
	var st messages.KeysStatus
	e.mustCall(messages.SubjectVaultKeysStatus, messages.KeysStatusRequest{}, &st)
	return st
}

// within polls cond until it holds, failing after 30 seconds.
func within(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func kid(k []byte) string { return keyring.IDOf(k).String() }

// sealedKeys are the key ids of a connection's live secrets, from the key
// id columns the database keeps ("" for none).
func (e *env) sealedKeys(connID string) (access, refresh, static string) {
	e.t.Helper()
	if err := e.pool.QueryRow(context.Background(), `select coalesce(access_token_key_id, ''), coalesce(refresh_token_key_id, ''),
		coalesce(static_credentials_key_id, '') from vault.connections where id = $1`, connID).Scan(&access, &refresh, &static); err != nil {
		e.t.Fatal(err)
	}
	return
}

func (e *env) canaryKey() string {
	e.t.Helper()
	var k string
	if err := e.pool.QueryRow(context.Background(), "select sealed_key_id from vault.canary").Scan(&k); err != nil {
		e.t.Fatal(err)
	}
	return k
}

// valuesUnder counts the sealed values under key id k, the canary included.
func (e *env) valuesUnder(k string) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), `select
		(select count(*) from vault.connections where access_token_key_id = $1) +
		(select count(*) from vault.connections where refresh_token_key_id = $1) +
		(select count(*) from vault.connections where static_credentials_key_id = $1) +
		(select count(*) from vault.connections where staged_access_token_key_id = $1) +
		(select count(*) from vault.connections where staged_refresh_token_key_id = $1) +
		(select count(*) from vault.connections where staged_static_credentials_key_id = $1) +
		(select count(*) from vault.provider_clients where client_secret_key_id = $1) +
		(select count(*) from vault.canary where sealed_key_id = $1)`, k).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

var errKilled = errors.New("killed")

// TestDroppingTheOldKeyAfterAnInterruptedRotation: the operator sets the new
// key with the old one as previous, the pass dies half way, and the old key
// is dropped anyway. The vault refuses to start, naming the old key id and
// what it still seals; with the old key back, the rotation finishes, the
// database says so, and then the old key can go.
func TestDroppingTheOldKeyAfterAnInterruptedRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	c1, c2 := e.connect(workspace), e.connect(workspace)
	cred, err := e.token(c1.ConnectionID, intp(0))
	if err != nil {
		t.Fatal(err)
	}
	e.putClient(apiKeyClient(staticProviderID, "keys"))
	sc := e.connectStatic(staticProviderID, map[string]any{"api_key": "rotated-key-value"})
	keyA, keyB := e.key, randomKey(t)
	if err := e.svc.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// A vault with the new key and the old one as previous starts a pass and
	// dies after its first batch (one row): the second batch never commits.
	ring, err := keyring.New(keyB, keyA)
	if err != nil {
		t.Fatal(err)
	}
	batches := 0
	st := store.New(e.pool, ring, store.Options{ResealBatch: 1, BeforeResealCommit: func() error {
		if batches++; batches == 2 {
			return errKilled
		}
		return nil
	}})
	if err := st.CheckKeys(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Reseal(ctx, slog.New(slog.DiscardHandler)); !errors.Is(err, errKilled) {
		t.Fatalf("interrupted pass: %v", err)
	}
	if a, r, _ := e.sealedKeys(c1.ConnectionID); a != kid(keyB) || r != kid(keyB) {
		t.Fatalf("the first batch's row is under %s/%s, want %s", a, r, kid(keyB))
	}
	underA := e.valuesUnder(kid(keyA))
	if underA == 0 || e.canaryKey() != kid(keyA) {
		t.Fatalf("after the interrupted pass: %d values and the canary (%s) should still be under the old key", underA, e.canaryKey())
	}

	// The old key is dropped too soon: the vault does not start, and says
	// which key id, what it seals, and what to do.
	_, err = vault.Start(ctx, e.config(keyB), nil)
	var uk *store.UnheldKeyError
	if !errors.As(err, &uk) || len(uk.Keys) != 1 || uk.Keys[0].KeyID != kid(keyA) || uk.Keys[0].Total() != int64(underA) {
		t.Fatalf("start without the old key: %v", err)
	}
	if uk.Keys[0].Rows["vault.connections.access_token"] != 1 || uk.Keys[0].Rows["vault.connections.static_credentials"] != 1 ||
		uk.Keys[0].Rows["vault.canary.sealed"] != 1 || uk.Keys[0].Rows["vault.provider_clients.client_secret"] != 1 {
		t.Fatalf("rows under the old key: %v", uk.Keys[0].Rows)
	}
	for _, want := range []string{"ENCRYPTION_KEY does not open this database", "key id " + kid(keyA), "vault.connections.refresh_token 1",
		"ENCRYPTION_KEYS_PREVIOUS", "canary is sealed under key id " + kid(keyA), "nexus-admin keys status"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), b64(keyA)) || strings.Contains(err.Error(), b64(keyB)) {
		t.Fatal("the refusal shows key material")
	}
	if e.valuesUnder(kid(keyA)) != underA {
		t.Fatal("the refused start changed the database")
	}

	// The old key back as previous: the pass resumes and finishes, canary last.
	_, logs := e.startLogged(keyB, keyA)
	within(t, "the rotation completes", func() bool { return e.keys().RotationComplete })
	within(t, "a vault says the previous key may be removed", func() bool { return strings.Contains(logs.String(), mayBeRemoved) })
	if e.valuesUnder(kid(keyA)) != 0 || e.canaryKey() != kid(keyB) {
		t.Fatalf("after the rotation: %d values under the old key, canary under %s", e.valuesUnder(kid(keyA)), e.canaryKey())
	}
	ks := e.keys()
	if ks.NewestKeyID != kid(keyB) || ks.CanaryKeyID != kid(keyB) || ks.OlderFormatRows != 0 {
		t.Fatalf("keys.status: %+v", ks)
	}

	// Now the old key can go.
	e.svc = e.start(keyB)
	got, err := e.token(c1.ConnectionID, intp(0))
	if err != nil || got.AccessToken != cred.AccessToken {
		t.Fatalf("tokens.get after the rotation: %v", err)
	}
	if _, err := e.token(c2.ConnectionID, intp(0)); err != nil {
		t.Fatal(err)
	}
	if got, err := e.token(sc.ConnectionID, nil); err != nil || got.Credentials["api_key"] != "rotated-key-value" {
		t.Fatalf("static credentials after the rotation: %v", err)
	}
	var r messages.Credential
	e.mustCall(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c1.ConnectionID}, &r) // client secret and refresh token open
}

// TestRollingRestartWithOldAndNewReplicas: the operator rolls the new key out
// in one step, so for a while an old replica (the old key only) runs beside
// a new one (the new key, the old as previous). The old replica cannot open
// what the new one re-sealed: it answers unavailable for those rows and
// changes nothing. Everything the old one writes stays readable by the new
// one, which re-seals it; nobody says the old key may go while the old
// replica runs; once it has stopped, the new one says so.
func TestRollingRestartWithOldAndNewReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{}) // the old replica: e.svc, key A, on e's NATS
	c := e.connect(workspace)
	before, err := e.token(c.ConnectionID, intp(0))
	if err != nil {
		t.Fatal(err)
	}
	e.putClient(apiKeyClient(staticProviderID, "keys"))
	keyA, keyB := e.key, randomKey(t)

	newer := e.replica(keyB, keyA)
	within(t, "the new replica re-seals the connection under the new key", func() bool {
		a, r, _ := e.sealedKeys(c.ConnectionID)
		return a == kid(keyB) && r == kid(keyB)
	})

	// The old replica, asked for that connection: a clear, retryable error,
	// and the row exactly as it was (no write of what it could not open).
	// Re-sealing changes nothing tokens.get serves, so the old replica may
	// answer from its cache; once the connection changes it must read it.
	e.changedOutOfBand(c.ConnectionID)
	row := e.rawRow(c.ConnectionID)
	within(t, "the old replica reads the re-sealed row", func() bool {
		_, err = e.token(c.ConnectionID, intp(0))
		return err != nil
	})
	wantCode(t, err, messages.ErrUnavailable)
	if !strings.Contains(err.Error(), "key rotation") {
		t.Fatalf("the old replica's answer does not say why: %v", err)
	}
	var cr messages.Credential
	wantCode(t, e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, &cr), messages.ErrUnavailable)
	var revoked messages.Connection
	wantCode(t, e.call(messages.SubjectConnectionsRevoke, messages.ConnectionRef{ConnectionID: c.ConnectionID}, &revoked), messages.ErrUnavailable)
	if e.rawRow(c.ConnectionID) != row {
		t.Fatal("the old replica changed a row it could not open")
	}
	// The new replica serves it, the same token as before.
	if got, err := newer.token(c.ConnectionID); err != nil || got.AccessToken != before.AccessToken {
		t.Fatalf("the new replica: %v", err)
	}

	// The old replica writes under the old key; the new one reads it and
	// re-seals it.
	sc := e.connectStatic(staticProviderID, map[string]any{"api_key": "written-by-the-old-replica"})
	if _, _, s := e.sealedKeys(sc.ConnectionID); s != kid(keyA) {
		t.Fatalf("the old replica sealed under %s", s)
	}
	if got, err := newer.token(sc.ConnectionID); err != nil || got.Credentials["api_key"] != "written-by-the-old-replica" {
		t.Fatalf("the new replica reads what the old one wrote: %v", err)
	}
	within(t, "the new replica re-seals what the old one wrote", func() bool {
		_, _, s := e.sealedKeys(sc.ConnectionID)
		return s == kid(keyB)
	})

	// While the old replica runs and seals with the old key, nothing says the
	// old key may go: the database knows a vault still uses it.
	within(t, "the canary moves to the new key", func() bool { return e.canaryKey() == kid(keyB) })
	ks := newer.keys()
	if ks.RotationComplete || len(ks.Replicas) != 2 {
		t.Fatalf("keys.status with the old replica running: %+v", ks)
	}
	sealing := map[string]bool{}
	for _, r := range ks.Replicas {
		sealing[r.SealingKeyID] = true
	}
	if !sealing[kid(keyA)] || !sealing[kid(keyB)] {
		t.Fatalf("replicas: %+v", ks.Replicas)
	}
	time.Sleep(time.Second) // several passes of the new replica
	if strings.Contains(newer.logs.String(), mayBeRemoved) {
		t.Fatal("the new replica said the old key may be removed while a vault seals with it")
	}

	// The rolling restart ends: the old replica stops.
	if err := e.svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	within(t, "the new replica says the old key may be removed", func() bool { return strings.Contains(newer.logs.String(), mayBeRemoved) })
	if ks := newer.keys(); !ks.RotationComplete || ks.NewestKeyID != kid(keyB) || len(ks.Keys) != 2 || ks.Keys[0].KeyID != kid(keyA) ||
		ks.Keys[0].Total != 0 || ks.Keys[1].Total == 0 {
		t.Fatalf("keys.status after the rotation: %+v", ks)
	}

	// The old configuration cannot come back: with the old key alone it
	// holds nothing of the database; with the new key as previous (a
	// rollback) it would re-seal backwards.
	_, err = vault.Start(ctx, e.config(keyA), nil)
	var uk *store.UnheldKeyError
	if !errors.As(err, &uk) || uk.Keys[0].KeyID != kid(keyB) {
		t.Fatalf("the old key alone: %v", err)
	}
	_, err = vault.Start(ctx, e.config(keyA, keyB), nil)
	var sk *store.SupersededKeyError
	if !errors.As(err, &sk) || sk.Newest != kid(keyB) || !strings.Contains(err.Error(), "rotate to a new key") {
		t.Fatalf("the old key with the new one as previous: %v", err)
	}

	// The new key alone serves everything.
	last := e.replica(keyB)
	if got, err := last.token(c.ConnectionID); err != nil || got.AccessToken != before.AccessToken {
		t.Fatalf("the new key alone: %v", err)
	}
	if got, err := last.token(sc.ConnectionID); err != nil || got.Credentials["api_key"] != "written-by-the-old-replica" {
		t.Fatalf("the new key alone, static: %v", err)
	}
}

// TestTwoPhaseRotationFailsNoRead: the procedure the README gives. First every
// replica gets the new key as a previous key (nothing changes); then the
// replicas switch to the new key one by one. During the overlap every
// replica reads everything, the ones still on the old key never move
// values back, and a replica restarted on the old configuration is refused.
func TestTwoPhaseRotationFailsNoRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	c1, c2 := e.connect(workspace), e.connect(workspace)
	keyA, keyB := e.key, randomKey(t)

	// Phase 1: the old key seals, the new one is known.
	if err := e.svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var oldLogs *logBuffer
	e.svc, oldLogs = e.startLogged(keyA, keyB)
	time.Sleep(600 * time.Millisecond)
	if a, _, _ := e.sealedKeys(c1.ConnectionID); a != kid(keyA) || e.keys().NewestKeyID != kid(keyA) {
		t.Fatalf("phase 1 moved something: %s, newest %s", a, e.keys().NewestKeyID)
	}
	if strings.Contains(oldLogs.String(), mayBeRemoved) {
		t.Fatal("a key given ahead of the switch is said to be removable")
	}

	// Phase 2: one replica switches; the phase-1 one still runs.
	newer := e.replica(keyB, keyA)
	within(t, "the switched replica re-seals under the new key", func() bool {
		a, _, _ := e.sealedKeys(c2.ConnectionID)
		return a == kid(keyB)
	})
	// The phase-1 replica reads what was re-sealed, refreshes with it, and
	// writes under its own key; the switched one reads that.
	if _, err := e.token(c2.ConnectionID, intp(0)); err != nil {
		t.Fatalf("the phase-1 replica reads a value re-sealed under the new key: %v", err)
	}
	var fresh messages.Credential
	e.mustCall(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c1.ConnectionID}, &fresh)
	if got, err := newer.token(c1.ConnectionID); err != nil || got.AccessToken != fresh.AccessToken {
		t.Fatalf("the switched replica reads what the phase-1 one wrote: %v", err)
	}
	within(t, "the phase-1 replica sees a newer key and stops re-sealing", func() bool {
		return strings.Contains(oldLogs.String(), "another vault seals with a newer key")
	})
	// It never moves values back to the old key.
	time.Sleep(time.Second)
	if a, r, _ := e.sealedKeys(c2.ConnectionID); a != kid(keyB) || r != kid(keyB) {
		t.Fatalf("a value went back to %s/%s", a, r)
	}
	// A replica restarted with the phase-1 configuration is refused.
	_, err := vault.Start(ctx, e.config(keyA, keyB), nil)
	var sk *store.SupersededKeyError
	if !errors.As(err, &sk) {
		t.Fatalf("phase-1 configuration after the switch began: %v", err)
	}

	// The last phase-1 replica switches: the rotation completes.
	if err := e.svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	within(t, "the rotation completes", func() bool { return newer.keys().RotationComplete })
	within(t, "the vault says the old key may be removed", func() bool { return strings.Contains(newer.logs.String(), mayBeRemoved) })
	for _, c := range []string{c1.ConnectionID, c2.ConnectionID} {
		if a, r, _ := e.sealedKeys(c); a != kid(keyB) || r != kid(keyB) {
			t.Fatalf("%s under %s/%s", c, a, r)
		}
	}
}

// TestRolledBackCiphertextIsRefused: someone who can write the database puts
// an earlier ciphertext of a row back on it (an old refresh token, from a
// backup or a copy taken before a refresh). It is authenticated with the
// row's token version, which has moved on, so the vault refuses it instead
// of presenting an old token to the provider, and changes nothing.
func TestRolledBackCiphertextIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	var oldRefresh, oldAccess []byte
	var oldVersion int64
	if err := e.pool.QueryRow(ctx, "select access_token, refresh_token, token_version from vault.connections where id = $1", c.ConnectionID).
		Scan(&oldAccess, &oldRefresh, &oldVersion); err != nil {
		t.Fatal(err)
	}
	var fresh messages.Credential
	e.mustCall(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, &fresh)
	var curRefresh []byte
	if err := e.pool.QueryRow(ctx, "select refresh_token from vault.connections where id = $1", c.ConnectionID).Scan(&curRefresh); err != nil {
		t.Fatal(err)
	}
	// put writes a column behind the vault's back, and tells the caches as
	// the vault's own changes do.
	put := func(col string, v any) {
		t.Helper()
		if _, err := e.pool.Exec(ctx, "update vault.connections set "+col+" = $2 where id = $1", c.ConnectionID, v); err != nil {
			t.Fatal(err)
		}
		e.changedOutOfBand(c.ConnectionID)
	}
	refused := func(what string) {
		t.Helper()
		row := e.rawRow(c.ConnectionID)
		var cr messages.Credential
		if err := e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, &cr); !errors.Is(err, messages.ErrInternal) {
			t.Fatalf("%s: tokens.refresh = %v, want internal", what, err)
		}
		var err error
		within(t, what+": tokens.get reads the row", func() bool {
			_, err = e.token(c.ConnectionID, intp(0))
			return err != nil
		})
		if !errors.Is(err, messages.ErrInternal) {
			t.Fatalf("%s: tokens.get = %v, want internal", what, err)
		}
		if e.rawRow(c.ConnectionID) != row || e.get(c.ConnectionID).Status != messages.StatusActive {
			t.Fatalf("%s: the refused value changed the row", what)
		}
	}

	put("refresh_token", oldRefresh)
	refused("the refresh token of the previous version")
	// Rolling the version back with it does not help: the access token is
	// the current version's.
	put("token_version", oldVersion)
	refused("the refresh token and the version rolled back")
	// The whole row's secrets rolled back together is an earlier state of
	// the row as a whole; that, only keeping backups as safe as the keys
	// prevents. Put the current values back: it works again.
	put("token_version", oldVersion+1)
	put("refresh_token", curRefresh)
	if got, err := e.token(c.ConnectionID, intp(0)); err != nil || got.AccessToken != fresh.AccessToken {
		t.Fatalf("current values back: %v", err)
	}

	// A ciphertext of the old format, bound to the location only, for this
	// very row: refused, since this database finished with that format.
	put("refresh_token", sealFormat1(t, e.key, "vault.connections/"+c.ConnectionID+"/refresh_token", []byte("an-old-refresh-token")))
	refused("a format 1 refresh token")
}

// sealFormat1 seals as the vault did before ciphertext format 2: the same
// layout, authenticated with the header and the location only.
func sealFormat1(t *testing.T, key []byte, location string, plaintext []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	kid := keyring.IDOf(key)
	out := make([]byte, 17, 17+len(plaintext)+aead.Overhead())
	out[0] = keyring.Format1
	copy(out[1:5], kid[:])
	if _, err := rand.Read(out[5:17]); err != nil {
		t.Fatal(err)
	}
	aad := append(bytes.Clone(out), location...)
	return aead.Seal(out, out[5:17], plaintext, aad)
}

// TestNoCanaryWithSealedValuesIsRefused: the canary is gone (deleted, or a
// restore left it out) but sealed values remain. The vault does not seal a
// new canary under whatever key it was given: it refuses, says how to
// recover, and recovers only when told ENCRYPTION_KEY's own id, after its
// keys have opened a value of every key id in use.
func TestNoCanaryWithSealedValuesIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	if err := e.svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, "delete from vault.canary"); err != nil {
		t.Fatal(err)
	}

	// Not even with the right key.
	_, err := vault.Start(ctx, e.config(e.key), nil)
	var nc *store.NoCanaryError
	if !errors.As(err, &nc) || len(nc.Keys) != 1 || nc.Keys[0].KeyID != kid(e.key) {
		t.Fatalf("start without a canary: %v", err)
	}
	for _, want := range []string{"vault.canary is missing", "key id " + kid(e.key), "vault.connections.refresh_token 1",
		"vault.provider_clients.client_secret 1", "Restore vault.canary", "ENCRYPTION_CANARY_RECREATE=" + kid(e.key)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	// And not with another key, even told to recreate (its own id): the
	// values are under a key it does not hold.
	other := randomKey(t)
	cfg := e.config(other)
	cfg.CanaryRecreate = kid(other)
	var uk *store.UnheldKeyError
	if _, err := vault.Start(ctx, cfg, nil); !errors.As(err, &uk) {
		t.Fatalf("another key told to recreate: %v", err)
	}
	// Told another id than ENCRYPTION_KEY's: refused.
	cfg = e.config(e.key)
	cfg.CanaryRecreate = kid(other)
	if _, err := vault.Start(ctx, cfg, nil); !errors.Is(err, store.ErrRecreateMismatch) {
		t.Fatalf("ENCRYPTION_CANARY_RECREATE naming another key: %v", err)
	}
	if n := e.valuesUnder(kid(other)); n != 0 {
		t.Fatalf("a refused start sealed %d values", n)
	}

	// Values that do not open with the configured key (tampered with): no
	// recreation either.
	flip := func() {
		t.Helper()
		if _, err := e.pool.Exec(ctx, `update vault.connections set
			access_token = set_byte(access_token, 20, get_byte(access_token, 20) # 1),
			refresh_token = set_byte(refresh_token, 20, get_byte(refresh_token, 20) # 1)`); err != nil {
			t.Fatal(err)
		}
		if _, err := e.pool.Exec(ctx, `update vault.provider_clients set
			client_secret = set_byte(client_secret, 20, get_byte(client_secret, 20) # 1)`); err != nil {
			t.Fatal(err)
		}
	}
	flip()
	cfg.CanaryRecreate = kid(e.key)
	if _, err := vault.Start(ctx, cfg, nil); !errors.Is(err, keyring.ErrAuthentication) || !strings.Contains(err.Error(), "no new canary") {
		t.Fatalf("recreate with values that do not open: %v", err)
	}
	flip() // back as they were

	// Told ENCRYPTION_KEY's id, with values that open: a new canary, and
	// the vault serves what it had.
	svc, err := vault.Start(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("recreate: %v", err)
	}
	t.Cleanup(func() { _ = svc.Close(ctx) })
	if e.canaryKey() != kid(e.key) {
		t.Fatalf("the new canary is under %s", e.canaryKey())
	}
	if _, err := e.token(c.ConnectionID, intp(0)); err != nil {
		t.Fatalf("after recreating the canary: %v", err)
	}
	// Left set, it does nothing more.
	svc2, err := vault.Start(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("a second start with ENCRYPTION_CANARY_RECREATE: %v", err)
	}
	_ = svc2.Close(ctx)
}
