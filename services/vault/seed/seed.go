// Package seed writes many connections straight into the vault's database
// with PostgreSQL COPY, for benchmarks and soaks that need more connections
// than consents could make in their time. Each row is what a completed
// consent leaves (store.Locked.Activate): status active, token version 1,
// the tokens sealed under the active key bound to their row, field and
// version exactly as the store seals them, and refresh_due_at as the store
// schedules it, so a running vault serves, lists and refreshes the seeded
// connections as if they had been consented.
//
// What seeding does not do: write the outbox events a consent writes
// (created, active), so no event consumer hears of the seeded connections.
package seed

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/shared/config"
)

// Version is the token version of a seeded row: a connection is created at
// 0 and its consent's tokens are sealed for 1.
const Version = 1

// Tokens are one connection's tokens in plaintext. An empty Refresh stores
// none (and nothing is due for background refresh).
type Tokens struct {
	Access, Refresh string
}

// Spec says what to seed.
type Spec struct {
	// ProviderID is the provider the connections belong to; the vault
	// serves them once a client registration with this id exists.
	ProviderID  string
	WorkspaceID string
	// Count is how many connections to seed.
	Count int
	// Scopes granted to every connection (nil: none).
	Scopes []string
	// Tokens gives connection i's tokens, i in [0, Count). It is called
	// from several goroutines at once.
	Tokens func(i int) (Tokens, error)
	// ExpiresAt is when connection i's access token expires; a time already
	// past makes the connection due at once. Nil: every token expires
	// ExpiresIn after Connections starts.
	ExpiresAt func(i int) time.Time
	ExpiresIn time.Duration
	// RefreshLead is the vault's REFRESH_LEAD_TIME, which refresh_due_at
	// follows (store.DefaultRefreshLead when zero).
	RefreshLead time.Duration
	// Workers is how many COPY streams run at once, each sealing its own
	// rows on its own pool connection (default: GOMAXPROCS, at most the
	// pool's size).
	Workers int
}

// Keyring is the vault's keyring for a key as ENCRYPTION_KEY gives it
// (32 bytes, base64), for callers outside the vault's module, which cannot
// name its internal keyring package.
func Keyring(encryptionKey string) (*keyring.Keyring, error) {
	key, err := config.DecodeKey(encryptionKey)
	if err != nil {
		return nil, fmt.Errorf("seed: ENCRYPTION_KEY %w", err)
	}
	return keyring.New(key)
}

// columns are the vault.connections columns a seeded row sets; the others
// keep their defaults (no attention, failure, staging, lease or refusal).
var columns = []string{"id", "provider_id", "workspace_id", "status", "scopes", "requested_scopes",
	"access_token", "refresh_token", "token_type", "token_version", "expires_at", "refresh_due_at",
	"created_at", "updated_at"}

// Connections seeds spec.Count active connections into the vault's schema
// on pool, sealed with ring (the vault's ENCRYPTION_KEY), and returns their
// ids, connection i's at index i. The rows are written in Workers COPY
// statements, each its own transaction: on an error some of them may have
// been written.
func Connections(ctx context.Context, pool *pgxpool.Pool, ring *keyring.Keyring, spec Spec) ([]string, error) {
	if err := spec.check(); err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	if spec.ExpiresAt == nil {
		exp := now.Add(spec.ExpiresIn)
		spec.ExpiresAt = func(int) time.Time { return exp }
	}
	if spec.RefreshLead <= 0 {
		spec.RefreshLead = store.DefaultRefreshLead
	}
	workers := spec.Workers
	if workers <= 0 {
		workers = min(runtime.GOMAXPROCS(0), int(pool.Config().MaxConns))
	}
	workers = max(1, min(workers, spec.Count))
	ids := make([]string, spec.Count)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*spec.Count/workers, (w+1)*spec.Count/workers
		wg.Go(func() {
			errs[w] = copyRows(ctx, pool, rows{ring: ring, spec: spec, now: now, ids: ids, next: lo, end: hi})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return ids, nil
}

func (s Spec) check() error {
	switch {
	case s.ProviderID == "" || s.WorkspaceID == "":
		return errors.New("seed: a provider id and a workspace id are required")
	case s.Count < 0:
		return fmt.Errorf("seed: count %d", s.Count)
	case s.Tokens == nil:
		return errors.New("seed: Spec.Tokens is required")
	}
	return nil
}

func copyRows(ctx context.Context, pool *pgxpool.Pool, r rows) error {
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{store.Schema, "connections"}, columns, &r); err != nil {
		return fmt.Errorf("seed: copy connections %d..%d: %w", r.next, r.end, err)
	}
	return nil
}

// rows is one worker's range of connections, [next, end), as a
// pgx.CopyFromSource that seals each row as COPY asks for it.
type rows struct {
	ring      *keyring.Keyring
	spec      Spec
	now       time.Time
	ids       []string // every worker's; this one writes only its range
	next, end int
	row       []any
	err       error
}

func (r *rows) Next() bool {
	if r.err != nil || r.next >= r.end {
		return false
	}
	r.row, r.err = r.build(r.next)
	r.next++
	return r.err == nil
}

func (r *rows) Values() ([]any, error) { return r.row, r.err }

func (r *rows) Err() error { return r.err }

// build is connection i's row, its tokens sealed as the store seals them
// for token version Version.
func (r *rows) build(i int) ([]any, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	id := u.String()
	t, err := r.spec.Tokens(i)
	if err != nil {
		return nil, fmt.Errorf("seed: tokens of connection %d: %w", i, err)
	}
	if t.Access == "" {
		return nil, fmt.Errorf("seed: connection %d has no access token", i)
	}
	access, err := r.seal(id, "access_token", t.Access)
	if err != nil {
		return nil, err
	}
	refresh, err := r.seal(id, "refresh_token", t.Refresh)
	if err != nil {
		return nil, err
	}
	expires := r.spec.ExpiresAt(i).UTC().Truncate(time.Microsecond)
	due := store.RefreshDue(r.now, store.Tokens{ExpiresAt: &expires}, refresh != nil, r.spec.RefreshLead)
	scopes := r.spec.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	r.ids[i] = id
	return []any{u, r.spec.ProviderID, r.spec.WorkspaceID, "active", scopes, scopes,
		access, refresh, "bearer", int64(Version), expires, due, r.now, r.now}, nil
}

// seal seals v for field of connection id at Version; empty is NULL.
func (r *rows) seal(id, field, v string) ([]byte, error) {
	if v == "" {
		return nil, nil
	}
	out, err := r.ring.Seal(store.ConnectionPlace(id, field, Version), []byte(v))
	if err != nil {
		return nil, fmt.Errorf("seed: seal %s: %w", field, err)
	}
	return out, nil
}
