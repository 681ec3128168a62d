package store

import (
	"context"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexus-broker/nexus/shared/pg"
	"github.com/nexus-broker/nexus/shared/testkit"
)

// TestMigrateUpgrades: databases that took an earlier numbering of the
// migrations reach the current schema. tern records only a version number,
// so a renumbered file would be skipped (or applied twice) on upgrade.
func TestMigrateUpgrades(t *testing.T) {
	file := func(name string) *fstest.MapFile {
		b, err := fs.ReadFile(migrations, "migrations/"+name)
		if err != nil {
			t.Fatal(err)
		}
		return &fstest.MapFile{Data: b}
	}
	base := fstest.MapFS{}
	for _, name := range []string{"001_init.sql", "002_static.sql", "003_token_lifetime.sql", "004_issuers.sql", "005_audit.sql", "006_quirks_templates.sql"} {
		base["migrations/"+name] = file(name)
	}
	with := func(extra map[string]string) fstest.MapFS {
		m := fstest.MapFS{}
		for k, v := range base {
			m[k] = v
		}
		for as, name := range extra {
			m["migrations/"+as] = file(name)
		}
		return m
	}
	for name, earlier := range map[string]fstest.MapFS{
		"digest as 007, no console":        with(map[string]string{"007_client_secret_digest.sql": "007_client_secret_digest.sql"}),
		"console as 007, digest as 008":    with(map[string]string{"007_console.sql": "008_console.sql", "008_client_secret_digest.sql": "007_client_secret_digest.sql"}),
		"nothing after the quirks' tables": base,
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			pool, err := pgxpool.New(ctx, testkit.Postgres(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			if err := pg.Migrate(ctx, pool, Schema, earlier); err != nil {
				t.Fatalf("the earlier migrations: %v", err)
			}
			if err := Migrate(ctx, pool); err != nil {
				t.Fatalf("upgrade: %v", err)
			}
			var columns int
			if err := pool.QueryRow(ctx, `select count(*) from information_schema.columns where table_schema = 'admin' and
				((table_name = 'providers' and column_name = 'client_secret_digest') or (table_name = 'console_sessions' and column_name = 'last_seen_at'))`).Scan(&columns); err != nil {
				t.Fatal(err)
			}
			if columns != 2 {
				t.Fatalf("after the upgrade %d of the digest and console columns exist, want 2", columns)
			}
		})
	}
}
