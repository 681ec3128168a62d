// Package pg connects to PostgreSQL and applies a service's embedded migrations.
package pg

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"github.com/nexus-broker/nexus/shared/config"
)

// DefaultMaxConns sizes a service's pool when DATABASE_URL does not
// (pool_max_conns=N): pgxpool's own default, max(4, cores), is smaller than
// the refreshes a vault may hold open at once while providers answer.
const DefaultMaxConns = 32

// Connect opens a pool and checks the server answers. maxConns 0 means
// DefaultMaxConns; a pool_max_conns in the URL wins over both. No error
// shows the password, whole or in part (redact.go).
func Connect(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := parse(url)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	secrets := append(config.URLSecrets(url), cfg.ConnConfig.Password)
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, config.HideSecrets(fmt.Errorf("postgres: %w", err), secrets...)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, config.HideSecrets(fmt.Errorf("postgres at %s does not answer: %w", redactURL(cfg.ConnConfig), err), secrets...)
	}
	return pool, nil
}

func redactURL(c *pgx.ConnConfig) string { return fmt.Sprintf("%s:%d/%s", c.Host, c.Port, c.Database) }

// Migrate applies the numbered SQL files (001_name.sql, ...) in the
// migrations/ directory of fsys (a service's //go:embed migrations/*.sql) to
// schema, each in its own transaction, recording the version in
// <schema>.schema_version. Concurrent replicas are serialised by an advisory lock.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, fsys fs.FS) error {
	migrations, err := fs.Sub(fsys, "migrations")
	if err != nil {
		return fmt.Errorf("migrate %s: %w", schema, err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", schema, err)
	}
	defer conn.Release()
	c := conn.Conn()
	if _, err := c.Exec(ctx, "select pg_advisory_lock(hashtext($1))", "nexus-migrate-"+schema); err != nil {
		return fmt.Errorf("migrate %s: lock: %w", schema, err)
	}
	defer c.Exec(context.WithoutCancel(ctx), "select pg_advisory_unlock(hashtext($1))", "nexus-migrate-"+schema) //nolint:errcheck
	if _, err := c.Exec(ctx, "create schema if not exists "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return fmt.Errorf("migrate %s: create schema: %w", schema, err)
	}
	m, err := migrate.NewMigrator(ctx, c, schema+".schema_version")
	if err != nil {
		return fmt.Errorf("migrate %s: %w", schema, err)
	}
	if err := m.LoadMigrations(migrations); err != nil {
		return fmt.Errorf("migrate %s: load: %w", schema, err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", schema, err)
	}
	return nil
}
