package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
	"github.com/nexus-broker/nexus/services/vault/internal/secret"
)

// What the database says about keys, checked before the vault serves
// anything (CheckKeys) and kept up while it runs (Renew): every key id a
// sealed value names must be held; a database with sealed values has its
// canary; a vault whose ENCRYPTION_KEY is older than one another vault
// already seals with does not start. The database, not one vault's memory,
// decides what is done (docs/ARCHITECTURE.md, invariants 2).

// canaryValue is the known plaintext sealed in vault.canary.
const canaryValue = "nexus-vault-canary-v1"

// DefaultReplicaTTL is how long a vault's row in vault.replicas counts as a
// running vault after its last renewal: three renewals missed.
const DefaultReplicaTTL = 3 * time.Minute

// KeyRows is what is sealed under one key: per sealed column
// ("vault.connections.refresh_token"), the rows whose value it seals.
type KeyRows struct {
	KeyID string
	Rows  map[string]int64
}

// Total is the number of values the key seals.
func (k KeyRows) Total() int64 {
	var n int64
	for _, c := range k.Rows {
		n += c
	}
	return n
}

// String is the key id and its rows, column by column.
func (k KeyRows) String() string {
	var parts []string
	for _, c := range sealedColumns {
		if n := k.Rows[c.String()]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", c, n))
		}
	}
	return fmt.Sprintf("key id %s seals %d (%s)", k.KeyID, k.Total(), strings.Join(parts, ", "))
}

func keyList(keys []KeyRows) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k.String()
	}
	return strings.Join(parts, "; ")
}

func idList(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}

// UnheldKeyError: values are sealed under keys this vault holds neither as
// ENCRYPTION_KEY nor in ENCRYPTION_KEYS_PREVIOUS, so every read of them
// would fail. The message names the key ids and what each seals, never key
// material.
type UnheldKeyError struct {
	Keys     []KeyRows
	Active   string
	Previous []string
}

func (e *UnheldKeyError) Error() string {
	var canary string
	for _, k := range e.Keys {
		if k.Rows[colCanary.String()] > 0 {
			canary = fmt.Sprintf(" The canary is sealed under key id %s: the database was sealed with that key, or a rotation away from it has not finished.", k.KeyID)
		}
	}
	return fmt.Sprintf("ENCRYPTION_KEY does not open this database: %s; neither ENCRYPTION_KEY (key id %s) nor ENCRYPTION_KEYS_PREVIOUS (%s) is that key.%s "+
		"Set ENCRYPTION_KEY to the key this database was sealed with; during a rotation, keep the old key in ENCRYPTION_KEYS_PREVIOUS "+
		"until `nexus-admin keys status` says rotation_complete",
		keyList(e.Keys), e.Active, idList(e.Previous), canary)
}

// NoCanaryError: the database holds sealed values but no canary, so nothing
// proves the configured keys are its own. The message says how to recover.
type NoCanaryError struct {
	Keys   []KeyRows
	Active string
}

func (e *NoCanaryError) Error() string {
	return fmt.Sprintf("vault.canary is missing, but this database holds sealed values: %s. The canary proves at start-up that the "+
		"configured keys are this database's; it was deleted, or the database was restored without it. Restore vault.canary from the "+
		"backup the rest of schema vault came from; or, if ENCRYPTION_KEY and ENCRYPTION_KEYS_PREVIOUS are this database's keys, start "+
		"once with ENCRYPTION_CANARY_RECREATE=%s (ENCRYPTION_KEY's key id): the vault then opens a value of every key id in use before "+
		"it seals a new canary", keyList(e.Keys), e.Active)
}

// CanaryError: the canary names a configured key but does not open with it
// (tampered with, or not sealed by this key).
type CanaryError struct {
	Sealed   string   // key id the canary names
	Active   string   // ENCRYPTION_KEY's id
	Previous []string // ENCRYPTION_KEYS_PREVIOUS ids
	Err      error
}

func (e *CanaryError) Error() string {
	return fmt.Sprintf("ENCRYPTION_KEY does not open this database: its canary names key id %s, but does not open with the key of that id "+
		"(ENCRYPTION_KEY: key id %s, ENCRYPTION_KEYS_PREVIOUS: %s): the canary was tampered with, or the configured key is not the one "+
		"this database was sealed with (%v)", e.Sealed, e.Active, idList(e.Previous), e.Err)
}

func (e *CanaryError) Unwrap() error { return e.Err }

// SupersededKeyError: ENCRYPTION_KEY is older than a key another vault has
// started sealing with. Sealing with it again would undo that rotation, and
// two vaults would re-seal towards different keys.
type SupersededKeyError struct {
	Active    string
	Newest    string
	Activated *time.Time
}

func (e *SupersededKeyError) Error() string {
	since := ""
	if e.Activated != nil {
		since = " since " + e.Activated.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("ENCRYPTION_KEY (key id %s) is older than key id %s, which vaults seal with%s: this database is rotating, or has "+
		"rotated, to key id %s. Set ENCRYPTION_KEY to that key, with key id %s in ENCRYPTION_KEYS_PREVIOUS until `nexus-admin keys status` "+
		"says rotation_complete. A rotation is not reversed: to stop using key id %s, rotate to a new key",
		e.Active, e.Newest, since, e.Newest, e.Active, e.Newest)
}

// ErrRecreateMismatch: ENCRYPTION_CANARY_RECREATE names another key than
// ENCRYPTION_KEY.
var ErrRecreateMismatch = errors.New("ENCRYPTION_CANARY_RECREATE must be ENCRYPTION_KEY's key id")

// CheckKeys proves, before the vault serves anything, that its keys are
// this database's, and records its ENCRYPTION_KEY as the newest key when it
// is a new one. It refuses with an *UnheldKeyError when a value is sealed
// under a key it does not hold, a *NoCanaryError when sealed values have no
// canary (unless recreate is ENCRYPTION_KEY's key id: then, once a value of
// every key id in use has opened, it seals a new one), a *CanaryError when
// the canary does not open, and a *SupersededKeyError when another vault
// already seals with a newer key. On a database with nothing sealed it
// seals the canary under ENCRYPTION_KEY.
func (s *Store) CheckKeys(ctx context.Context, recreate string) error {
	active := s.keys.ActiveID().String()
	if recreate != "" && recreate != active {
		return fmt.Errorf("%w (it is %s, ENCRYPTION_KEY's is %s)", ErrRecreateMismatch, recreate, active)
	}
	inUse, err := s.keyIDsInUse(ctx, true)
	if err != nil {
		return fmt.Errorf("key ids in use: %w", err)
	}
	var unheld []string
	for _, id := range inUse {
		kid, err := keyring.ParseKeyID(id)
		if err != nil || !s.keys.Holds(kid) {
			unheld = append(unheld, id)
		}
	}
	if len(unheld) > 0 {
		rows, err := s.rowsUnder(ctx, unheld)
		if err != nil {
			return err
		}
		return &UnheldKeyError{Keys: rows, Active: active, Previous: s.previousIDs()}
	}
	stored, err := s.canary(ctx)
	if err != nil {
		return err
	}
	if stored == nil {
		if len(inUse) > 0 && recreate == "" {
			rows, err := s.rowsUnder(ctx, inUse)
			if err != nil {
				return err
			}
			return &NoCanaryError{Keys: rows, Active: active}
		}
		if len(inUse) > 0 {
			if err := s.proveKeys(ctx, inUse); err != nil {
				return fmt.Errorf("ENCRYPTION_CANARY_RECREATE: no new canary sealed: %w", err)
			}
		}
		if stored, err = s.sealCanary(ctx); err != nil {
			return err
		}
	}
	if err := s.openCanary(stored); err != nil {
		return err
	}
	if err := s.registerKey(ctx); err != nil {
		return err
	}
	f, _ := keyring.FormatOf(stored)
	s.format1.Store(f == keyring.Format1)
	return nil
}

func (s *Store) previousIDs() []string {
	var out []string
	for _, id := range s.keys.PreviousIDs() {
		out = append(out, id.String())
	}
	return out
}

// keyIDsInUse lists, in order, the key ids that seal at least one value
// (the canary's too, with canary). Each column's index is skipped through
// from one key id to the next, so this costs a few index probes per key id,
// not a scan of the table.
func (s *Store) keyIDsInUse(ctx context.Context, canary bool) ([]string, error) {
	seen := map[string]bool{}
	for _, c := range sealedColumns {
		var q string
		switch c {
		case colCanary:
			if !canary {
				continue
			}
			q = "select sealed_key_id from vault.canary"
		case colClientSecret:
			q = "select distinct client_secret_key_id from vault.provider_clients where client_secret is not null"
		default:
			q = fmt.Sprintf(`with recursive k (id) as (
				(select %[1]s from vault.connections where %[2]s is not null order by %[1]s limit 1)
				union all
				select (select %[1]s from vault.connections where %[2]s is not null and %[1]s > k.id order by %[1]s limit 1)
				from k where k.id is not null)
				select id from k where id is not null`, c.keyID(), c.name)
		}
		ids, err := queryStrings(ctx, s.pool, q)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			seen[id] = true
		}
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	slices.Sort(out)
	return out, nil
}

// rowsUnder counts what each of ids seals, column by column (ids nil: every
// key id), ordered by key id.
func (s *Store) rowsUnder(ctx context.Context, ids []string) ([]KeyRows, error) {
	by := map[string]map[string]int64{}
	for _, c := range sealedColumns {
		q := fmt.Sprintf("select %s, count(*) from vault.%s where %s is not null and ($1::text[] is null or %[1]s = any($1)) group by 1",
			c.keyID(), c.table, c.name)
		rows, err := s.pool.Query(ctx, q, ids)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			var n int64
			if err := rows.Scan(&id, &n); err != nil {
				rows.Close()
				return nil, err
			}
			if by[id] == nil {
				by[id] = map[string]int64{}
			}
			by[id][c.String()] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	out := make([]KeyRows, 0, len(by))
	for id, rows := range by {
		out = append(out, KeyRows{KeyID: id, Rows: rows})
	}
	slices.SortFunc(out, func(a, b KeyRows) int { return strings.Compare(a.KeyID, b.KeyID) })
	return out, nil
}

// proveKeys opens one value of each key id: the configured key of that id
// is the one that sealed it.
func (s *Store) proveKeys(ctx context.Context, ids []string) error {
	for _, id := range ids {
		p, sealed, err := s.sampleUnder(ctx, id)
		if err != nil {
			return err
		}
		if _, err := s.open(p, sealed); err != nil {
			return fmt.Errorf("key id %s: %w", id, err)
		}
	}
	return nil
}

// sampleUnder returns one value sealed under key id, and its place.
func (s *Store) sampleUnder(ctx context.Context, id string) (keyring.Place, []byte, error) {
	for _, c := range connectionColumnsSealed {
		var (
			rowID   string
			version int64
			hash    []byte
			sealed  []byte
		)
		err := s.pool.QueryRow(ctx, fmt.Sprintf(`select id::text, token_version, confirmation_hash, %s from vault.connections
			where %s = $1 and %[1]s is not null limit 1`, c.name, c.keyID()), id).Scan(&rowID, &version, &hash, &sealed)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return keyring.Place{}, nil, err
		}
		return placeOf(rowID, c, version, hash), sealed, nil
	}
	var provider string
	var sealed []byte
	err := s.pool.QueryRow(ctx, "select provider_id, client_secret from vault.provider_clients where client_secret_key_id = $1 limit 1", id).Scan(&provider, &sealed)
	if err != nil {
		return keyring.Place{}, nil, fmt.Errorf("a value of key id %s: %w", id, err)
	}
	return clientSecretPlace(provider), sealed, nil
}

// placeOf is the place of a connection's value in column c.
func placeOf(id string, c column, tokenVersion int64, confirmationHash []byte) keyring.Place {
	switch c {
	case colStagedAccess, colStagedRefr, colStagedStatic:
		return stagedPlace(id, c, confirmationHash)
	}
	return connectionPlace(id, c, tokenVersion)
}

// canary returns the sealed canary, nil when there is none.
func (s *Store) canary(ctx context.Context) ([]byte, error) {
	var stored []byte
	err := s.pool.QueryRow(ctx, "select sealed from vault.canary where id = 1").Scan(&stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("canary: %w", err)
	}
	return stored, nil
}

// sealCanary seals a new canary under the active key, unless a concurrent
// start did first, and returns the one stored.
func (s *Store) sealCanary(ctx context.Context) ([]byte, error) {
	sealed, err := s.seal(canaryPlace, secret.Value(canaryValue))
	if err != nil {
		return nil, err
	}
	if _, err := s.pool.Exec(ctx, "insert into vault.canary (id, sealed) values (1, $1) on conflict (id) do nothing", sealed); err != nil {
		return nil, fmt.Errorf("canary: %w", err)
	}
	return s.canary(ctx)
}

func (s *Store) openCanary(stored []byte) error {
	pt, err := s.keys.Open(canaryPlace, stored)
	if err == nil && string(pt) != canaryValue {
		err = errors.New("canary holds an unexpected value")
	}
	if err == nil {
		return nil
	}
	ce := &CanaryError{Active: s.keys.ActiveID().String(), Previous: s.previousIDs(), Err: err}
	if id, ierr := keyring.IDOfCiphertext(stored); ierr == nil {
		ce.Sealed = id.String()
	} else {
		ce.Sealed = "unknown (malformed canary)"
	}
	return ce
}

// registerKey records ENCRYPTION_KEY in vault.keys the first time a vault
// seals with it, which makes it the newest key, and refuses a key older than
// the newest. Starts are serialised on the table, so of two new keys one is
// newer.
func (s *Store) registerKey(ctx context.Context) error {
	active := s.keys.ActiveID().String()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer rollback(ctx, tx)
	if _, err := tx.Exec(ctx, "lock table vault.keys in share row exclusive mode"); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	newest, at, err := newestKey(ctx, tx)
	if err != nil {
		return err
	}
	var registered bool
	if err := tx.QueryRow(ctx, "select exists (select from vault.keys where key_id = $1)", active).Scan(&registered); err != nil {
		return err
	}
	switch {
	case !registered || (newest == active && at == nil):
		// A new key (or the keys found by the migration, none with a time):
		// this one is the newest from now on.
		if _, err := tx.Exec(ctx, `insert into vault.keys (key_id, activated_at) values ($1, clock_timestamp())
			on conflict (key_id) do update set activated_at = clock_timestamp()`, active); err != nil {
			return err
		}
	case newest != active:
		return &SupersededKeyError{Active: active, Newest: newest, Activated: at}
	}
	return commit(ctx, tx)
}

// newestKey is the key vaults started sealing with last ("" when none).
func newestKey(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (string, *time.Time, error) {
	var (
		id string
		at *time.Time
	)
	err := q.QueryRow(ctx, "select key_id, activated_at from vault.keys order by activated_at desc nulls last, key_id limit 1").Scan(&id, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, nil
	}
	return id, utc(at), err
}

// Renew renews this vault's row in vault.replicas (the key it seals with and
// the keys it holds), drops rows of vaults long gone, and re-reads whether
// the canary still allows ciphertext format 1. Call it at start and every
// interval well within ReplicaTTL.
func (s *Store) Renew(ctx context.Context, replicaID string) error {
	held := append([]string{s.keys.ActiveID().String()}, s.previousIDs()...)
	if _, err := s.pool.Exec(ctx, `insert into vault.replicas (id, sealing_key_id, key_ids) values ($1, $2, $3)
		on conflict (id) do update set sealing_key_id = excluded.sealing_key_id, key_ids = excluded.key_ids, seen_at = now()`,
		replicaID, held[0], held); err != nil {
		return fmt.Errorf("replicas: %w", err)
	}
	if _, err := s.pool.Exec(ctx, "delete from vault.replicas where seen_at < now() - make_interval(secs => $1)", (10 * s.replicaTTL).Seconds()); err != nil {
		return fmt.Errorf("replicas: %w", err)
	}
	stored, err := s.canary(ctx)
	if err != nil || stored == nil {
		return err
	}
	f, _ := keyring.FormatOf(stored)
	s.format1.Store(f == keyring.Format1)
	return nil
}

// Leave removes this vault's row from vault.replicas: it seals nothing more.
func (s *Store) Leave(ctx context.Context, replicaID string) error {
	_, err := s.pool.Exec(ctx, "delete from vault.replicas where id = $1", replicaID)
	return err
}

// NewestKey is the key id vaults started sealing with last: what a rotation
// moves every value to.
func (s *Store) NewestKey(ctx context.Context) (string, error) {
	id, _, err := newestKey(ctx, s.pool)
	return id, err
}

// PreviousKeysRemovable reports whether, as the database stands now, this
// vault's ENCRYPTION_KEYS_PREVIOUS are needed no more: its ENCRYPTION_KEY
// is the newest key and seals the canary in the current format, nothing is
// sealed under a previous key or in ciphertext format 1, and no running
// vault seals with a previous key. False when none of its previous keys
// ever sealed anything (a key given ahead of a switch to it).
func (s *Store) PreviousKeysRemovable(ctx context.Context) (bool, error) {
	prev := s.previousIDs()
	var used bool
	if err := s.pool.QueryRow(ctx, "select exists (select from vault.keys where key_id = any($1))", prev).Scan(&used); err != nil || !used {
		return false, err
	}
	newest, err := s.NewestKey(ctx)
	if err != nil || newest != s.keys.ActiveID().String() {
		return false, err
	}
	stored, err := s.canary(ctx)
	if err != nil || stored == nil || !s.keys.Current(stored) {
		return false, err
	}
	if n, err := s.olderFormatRows(ctx); err != nil || n > 0 {
		return false, err
	}
	for _, c := range sealedColumns {
		var used bool
		q := fmt.Sprintf("select exists (select from vault.%s where %s = any($1) and %s is not null)", c.table, c.keyID(), c.name)
		if err := s.pool.QueryRow(ctx, q, prev).Scan(&used); err != nil || used {
			return false, err
		}
	}
	var sealing bool
	if err := s.pool.QueryRow(ctx, `select exists (select from vault.replicas where sealing_key_id = any($1)
		and seen_at > now() - make_interval(secs => $2))`, prev, s.replicaTTL.Seconds()).Scan(&sealing); err != nil {
		return false, err
	}
	return !sealing, nil
}

// olderFormatRows counts the rows holding a value in ciphertext format 1.
func (s *Store) olderFormatRows(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `select
		(select count(*) from vault.connections where seal_format < 2) +
		(select count(*) from vault.provider_clients where client_secret is not null and get_byte(client_secret, 0) < 2) +
		(select count(*) from vault.canary where get_byte(sealed, 0) < 2)`).Scan(&n)
	return n, err
}

func queryStrings(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) ([]string, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
