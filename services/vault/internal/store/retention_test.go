package store

import (
	"context"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/pg"
	"github.com/nexus-broker/nexus/shared/testkit"
)

func testStore(t *testing.T) *Store {
	t.Helper()
	ctx := context.Background()
	pool, err := pg.Connect(ctx, testkit.Postgres(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	key, err := config.DecodeKey(testkit.Key32(t))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keyring.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return New(pool, keys, Options{})
}

// One call deletes at most pruneBatch connections, oldest first; the next
// takes the rest.
func TestPruneEndedIsBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testStore(t)
	ended := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := s.pool.Exec(ctx, `insert into vault.connections (id, provider_id, workspace_id, status, created_at, updated_at)
		select gen_random_uuid(), 'p', 'w', (array['failed', 'expired', 'revoked'])[1 + i % 3], $1::timestamptz, $1::timestamptz + make_interval(secs => i)
		from generate_series(1, $2) i`, ended, pruneBatch+1); err != nil {
		t.Fatal(err)
	}
	cutoff := ended.Add(time.Hour)
	for _, want := range []int64{pruneBatch, 1, 0} {
		n, err := s.PruneEnded(ctx, cutoff)
		if err != nil || n != want {
			t.Fatalf("pruned %d (%v), want %d", n, err, want)
		}
	}
}
