// Package storetest opens the vault's store on a fresh, migrated test
// database, for tests outside the store package.
package storetest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/pg"
	"github.com/nexus-broker/nexus/shared/testkit"
)

// Open returns a store with a random key, with o, on a fresh database with
// the vault's schema, and the pool under it; both close when the test ends.
func Open(t testing.TB, o store.Options) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	pool, err := pg.Connect(ctx, testkit.Postgres(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return store.New(pool, Keyring(t), o), pool
}

// Keyring returns a keyring holding one random key.
func Keyring(t testing.TB) *keyring.Keyring {
	t.Helper()
	key, err := config.DecodeKey(testkit.Key32(t))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keyring.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}
