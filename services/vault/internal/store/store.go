// Package store keeps connections, provider client registrations and the
// event outbox in PostgreSQL (schema vault). It is the vault's crypto
// boundary: secrets go in and come out in plaintext, and are sealed with the
// keyring, bound to their row, field and the row's version, on the way to
// the database (sealed.go), and kept honest across key rotations (keys.go,
// rotate.go).
package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
	"github.com/nexus-broker/nexus/shared/pg"
)

// Schema is the PostgreSQL schema the vault owns.
const Schema = "vault"

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies the embedded migrations to schema vault.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return pg.Migrate(ctx, pool, Schema, migrations)
}

// Errors callers branch on.
var (
	// ErrNotFound: no such connection or provider client (an id that is not
	// a valid connection id is not found either).
	ErrNotFound = errors.New("store: not found")
	// ErrProviderNotFound: the provider has no client registration in the vault.
	ErrProviderNotFound = errors.New("store: provider not registered with the vault")
	// ErrProviderMismatch: a re-consent names a connection of another provider.
	ErrProviderMismatch = errors.New("store: connection belongs to another provider")
	// ErrRevoked: the connection is revoked and cannot be re-opened.
	ErrRevoked = errors.New("store: connection is revoked")
)

// InUseError: a provider client still has live connections.
type InUseError struct {
	ProviderID  string
	Connections int
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("provider %s still has %d live connection(s)", e.ProviderID, e.Connections)
}

// Store is the vault's PostgreSQL storage.
type Store struct {
	pool     *pgxpool.Pool
	keys     *keyring.Keyring
	now      func() time.Time
	lead     time.Duration
	onOutbox func()
	changed  func(Change)
	// format1: values in ciphertext format 1 still open (the canary is in
	// format 1: this database has not finished moving to format 2).
	format1     atomic.Bool
	reported    sync.Map // values the re-seal pass could not open, logged once
	replicaTTL  time.Duration
	batchSize   int
	beforeBatch func() error
}

// Change names what a committed transaction changed in what the vault
// serves: one connection, or every connection of a provider (its
// registration changed).
type Change struct {
	ConnectionID string
	ProviderID   string
}

// Options tune a Store; the zero value gives the defaults.
type Options struct {
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// RefreshLead is REFRESH_LEAD_TIME (DefaultRefreshLead when zero); see RefreshDue.
	RefreshLead time.Duration
	// OnOutbox, when set, is called after every committed transaction that
	// wrote an outbox event, so the relay can be told at once.
	OnOutbox func()
	// Changed, when set, is called after every committed transaction that
	// changed what the vault serves (a connection's status, tokens or
	// credentials; a provider's registration), so this replica's cache drops
	// it at once; the same transaction notified ChangesChannel, for every
	// replica. It is the one place that tells them: no caller has to remember.
	Changed func(Change)
	// ReplicaTTL is how long a vault's row in vault.replicas counts as a
	// running vault after its last renewal (DefaultReplicaTTL when zero).
	ReplicaTTL time.Duration
	// ResealBatch is how many rows a re-seal transaction takes
	// (DefaultResealBatch when zero).
	ResealBatch int
	// BeforeResealCommit, when set, is called before each re-seal batch
	// commits; an error rolls the batch back and ends the pass, as a vault
	// killed at that moment would. For tests.
	BeforeResealCommit func() error
}

// New returns a store over pool that seals with keys.
func New(pool *pgxpool.Pool, keys *keyring.Keyring, o Options) *Store {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RefreshLead <= 0 {
		o.RefreshLead = DefaultRefreshLead
	}
	if o.ReplicaTTL <= 0 {
		o.ReplicaTTL = DefaultReplicaTTL
	}
	if o.ResealBatch <= 0 {
		o.ResealBatch = DefaultResealBatch
	}
	s := &Store{pool: pool, keys: keys, now: o.Now, lead: o.RefreshLead, onOutbox: o.OnOutbox, changed: o.Changed,
		replicaTTL: o.ReplicaTTL, batchSize: o.ResealBatch, beforeBatch: o.BeforeResealCommit}
	// Until CheckKeys has read the canary, a value of either format opens.
	s.format1.Store(true)
	return s
}

// committed runs the hooks after a transaction that changed what is served
// (c) and wrote events events.
func (s *Store) committed(c Change, events int) {
	if s.changed != nil && c != (Change{}) {
		s.changed(c)
	}
	if events > 0 && s.onOutbox != nil {
		s.onOutbox()
	}
}

// Ping checks the database answers (readiness).
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// clock returns the current time at PostgreSQL's precision.
func (s *Store) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// parseID returns a connection id in canonical form, or false when it is not one.
func parseID(id string) (uuid.UUID, bool) {
	if len(id) != 36 {
		return uuid.UUID{}, false
	}
	u, err := uuid.Parse(id)
	return u, err == nil
}

// NewID returns a new time-ordered id (UUID v7), for connections and events.
func NewID() (string, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// commit commits tx even if the caller's context has just ended: by then the
// provider may have rotated a token that must not be lost.
func commit(ctx context.Context, tx pgx.Tx) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return tx.Commit(cctx)
}

func rollback(ctx context.Context, tx pgx.Tx) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = tx.Rollback(rctx)
}
