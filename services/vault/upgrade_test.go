package vault_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/shared/pg"
	"github.com/nexus-broker/nexus/shared/testkit"
)

// migrationsBefore is the vault's migrations numbered below n, as a
// database written by an earlier version has them.
func migrationsBefore(t *testing.T, n string) fs.FS {
	t.Helper()
	dir := os.DirFS("internal/store")
	names, err := fs.Glob(dir, "migrations/*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("migrations: %v", err)
	}
	out := fstest.MapFS{}
	for _, name := range names {
		if strings.TrimPrefix(name, "migrations/") >= n {
			continue
		}
		b, err := fs.ReadFile(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = &fstest.MapFile{Data: b}
	}
	return out
}

// keyIDColumnsAgree checks, for every sealed value, that the key id column
// PostgreSQL derives from it is what keyring.IDOfCiphertext reads.
func keyIDColumnsAgree(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	check := func(table, col string) {
		rows, err := pool.Query(ctx, "select "+col+", "+col+"_key_id from vault."+table+" where "+col+" is not null")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var sealed []byte
			var kid string
			if err := rows.Scan(&sealed, &kid); err != nil {
				t.Fatal(err)
			}
			want, err := keyring.IDOfCiphertext(sealed)
			if err != nil || kid != want.String() {
				t.Errorf("vault.%s.%s: key id column %s, the ciphertext says %s (%v)", table, col, kid, want, err)
			}
		}
	}
	for _, col := range []string{"access_token", "refresh_token", "static_credentials", "staged_access_token", "staged_refresh_token", "staged_static_credentials"} {
		check("connections", col)
	}
	check("provider_clients", "client_secret")
	check("canary", "sealed")
}

// TestUpgradeFromFormat1: a database an earlier version wrote (migrations up
// to 009, every value in ciphertext format 1, bound to its location only).
// Migration 011 derives every key id from the ciphertexts' headers; the
// vault opens the old values, its pass re-seals them in format 2 bound to
// the token version, the canary last, and from then on a format 1 value is
// refused.
func TestUpgradeFromFormat1(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pg.Connect(ctx, testkit.Postgres(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pg.Migrate(ctx, pool, store.Schema, migrationsBefore(t, "010")); err != nil {
		t.Fatal(err)
	}
	key := randomKey(t)
	conn := uuid.Must(uuid.NewV7()).String()
	loc := func(field string) string { return "vault.connections/" + conn + "/" + field }
	if _, err := pool.Exec(ctx, "insert into vault.canary (id, sealed) values (1, $1)",
		sealFormat1(t, key, "vault.canary/1/sealed", []byte("nexus-vault-canary-v1"))); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `insert into vault.provider_clients (provider_id, provider_name, type, client_id, client_secret, token_endpoint)
		values ('p', 'p', 'oauth2', 'c', $1, 'https://p.example/token')`,
		sealFormat1(t, key, "vault.provider_clients/p/client_secret", []byte("old-client-secret"))); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `insert into vault.connections (id, provider_id, workspace_id, status, access_token, refresh_token,
		token_type, token_version, expires_at) values ($1, 'p', 'w', 'active', $2, $3, 'bearer', 3, now() + interval '1 hour')`,
		conn, sealFormat1(t, key, loc("access_token"), []byte("old-access")), sealFormat1(t, key, loc("refresh_token"), []byte("old-refresh"))); err != nil {
		t.Fatal(err)
	}

	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	keyIDColumnsAgree(t, pool)
	var format int
	var registered string
	if err := pool.QueryRow(ctx, "select c.seal_format, k.key_id from vault.connections c, vault.keys k where c.id = $1", conn).Scan(&format, &registered); err != nil {
		t.Fatal(err)
	}
	if format != 1 || registered != kid(key) {
		t.Fatalf("after migration 011: seal_format %d, keys %s", format, registered)
	}

	ring, err := keyring.New(key)
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(pool, ring, store.Options{})
	if err := st.CheckKeys(ctx, ""); err != nil {
		t.Fatalf("the upgraded vault starts: %v", err)
	}
	// The old values open during the transition.
	_, tok, err := st.GetWithTokens(ctx, conn)
	if err != nil || tok.Access.Reveal() != "old-access" || tok.Refresh.Reveal() != "old-refresh" {
		t.Fatalf("format 1 tokens: %v", err)
	}
	if cl, err := st.GetClient(ctx, "p"); err != nil || cl.ClientSecret.Reveal() != "old-client-secret" {
		t.Fatalf("format 1 client secret: %v", err)
	}
	ks, err := st.KeysStatus(ctx)
	if err != nil || ks.OlderFormatRows != 3 || ks.RotationComplete() {
		t.Fatalf("keys status before the pass: %+v, %v", ks, err)
	}

	// The pass moves everything to format 2, canary last.
	stats, err := st.Reseal(ctx, slog.New(slog.DiscardHandler))
	if err != nil || stats.Rows != 2 || !stats.Canary || !stats.Done {
		t.Fatalf("pass: %+v, %v", stats, err)
	}
	keyIDColumnsAgree(t, pool)
	if ks, err := st.KeysStatus(ctx); err != nil || ks.OlderFormatRows != 0 || !ks.RotationComplete() {
		t.Fatalf("keys status after the pass: %+v, %v", ks, err)
	}
	var access []byte
	if err := pool.QueryRow(ctx, "select access_token from vault.connections where id = $1", conn).Scan(&access); err != nil {
		t.Fatal(err)
	}
	if f, _ := keyring.FormatOf(access); f != keyring.Format2 {
		t.Fatalf("re-sealed in format %d", f)
	}
	// Bound to the token version now.
	if _, err := ring.Open(store.ConnectionPlace(conn, "access_token", 4), access); !errors.Is(err, keyring.ErrAuthentication) {
		t.Fatalf("a re-sealed value opens at another token version: %v", err)
	}
	if _, tok, err := st.GetWithTokens(ctx, conn); err != nil || tok.Access.Reveal() != "old-access" {
		t.Fatalf("after the pass: %v", err)
	}

	// A format 1 value put back is refused, now and by a vault started later.
	if _, err := pool.Exec(ctx, "update vault.connections set refresh_token = $2 where id = $1", conn,
		sealFormat1(t, key, loc("refresh_token"), []byte("old-refresh"))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.GetWithTokens(ctx, conn); !errors.Is(err, store.ErrRetiredFormat) {
		t.Fatalf("format 1 after the transition: %v", err)
	}
	later := store.New(pool, ring, store.Options{})
	if err := later.CheckKeys(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := later.GetWithTokens(ctx, conn); !errors.Is(err, store.ErrRetiredFormat) {
		t.Fatalf("format 1, a vault started after the transition: %v", err)
	}
	// The pass does not re-seal it either (it does not open): it is logged
	// and left alone.
	stats, err = later.Reseal(ctx, slog.New(slog.DiscardHandler))
	if err != nil || stats.Failed != 1 || stats.Done {
		t.Fatalf("pass over a retired value: %+v, %v", stats, err)
	}
}
