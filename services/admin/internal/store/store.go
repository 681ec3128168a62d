// Package store keeps the provider registry in PostgreSQL (schema admin):
// public provider configuration and aliases. It never sees a client secret;
// those go from the registry straight to the vault.
package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexus-broker/nexus/shared/pg"
)

// Schema is the PostgreSQL schema admin owns.
const Schema = "admin"

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies the embedded migrations to schema admin.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return pg.Migrate(ctx, pool, Schema, migrations)
}

// Errors callers branch on.
var (
	// ErrNotFound: no provider has this id, name or alias.
	ErrNotFound = errors.New("store: provider not found")
	// ErrStale: the provider changed since the caller read it.
	ErrStale = errors.New("store: provider changed concurrently")
	// ErrNameInUse: a name or alias is already another provider's name,
	// alias or id. Returned wrapped in a *NameInUseError when the name is known.
	ErrNameInUse = errors.New("store: name or alias already in use")
)

// NameInUseError names the name or alias that is taken (Name may be empty
// when only the database's unique key caught it).
type NameInUseError struct{ Name string }

func (e *NameInUseError) Error() string {
	if e.Name == "" {
		return ErrNameInUse.Error()
	}
	return fmt.Sprintf("%v: %q", ErrNameInUse, e.Name)
}

// IssuerInUseError: another provider has this issuer.
type IssuerInUseError struct{ Issuer, Provider string }

func (e *IssuerInUseError) Error() string {
	return fmt.Sprintf("store: issuer %q is provider %q's", e.Issuer, e.Provider)
}

// Is makes errors.Is(err, ErrNameInUse) true.
func (e *NameInUseError) Is(target error) bool { return target == ErrNameInUse }

// Store is the provider registry's PostgreSQL storage.
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// New returns a store over pool. now may be nil.
func New(pool *pgxpool.Pool, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{pool: pool, now: now}
}

// Ping checks the database answers (readiness).
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// clock returns the current time at PostgreSQL's precision.
func (s *Store) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// inTx runs fn in a transaction, committing when it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// uniqueViolation maps PostgreSQL's unique_violation to ErrNameInUse.
func uniqueViolation(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return &NameInUseError{}
	}
	return err
}
