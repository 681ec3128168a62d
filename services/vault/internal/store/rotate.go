package store

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
)

// keyringFormat is the ciphertext format values are re-sealed into.
const keyringFormat = keyring.Format

// DefaultResealBatch is how many rows one re-seal transaction takes.
const DefaultResealBatch = 500

// ResealStats counts what a re-seal pass did.
type ResealStats struct {
	Rows   int  // connection and client rows re-sealed
	Failed int  // rows left as they were: a value did not open (logged)
	Canary bool // the canary was re-sealed: nothing is under another key any more
	// Done: every value, and the canary, is under ENCRYPTION_KEY in the
	// current format.
	Done bool
}

// Reseal re-seals, under ENCRYPTION_KEY and in the current ciphertext format,
// every value sealed under one of ENCRYPTION_KEYS_PREVIOUS or in format 1:
// connections column by column and key by key, then client secrets, in
// order of their id, a batch of rows per transaction (rows another
// transaction holds are left for the next pass). A pass that is killed loses
// at most its open batch, which the next pass does again; a value that is
// already current is left alone, so passes may run at once on every
// replica. The canary is re-sealed last, and only when nothing is sealed
// under another key any more: until then it still names the key the
// rotation started from.
//
// Only a vault whose ENCRYPTION_KEY is the database's newest key re-seals
// (*SupersededKeyError otherwise), so two vaults never move values back and
// forth. A value that does not open is logged and counted, not fatal.
func (s *Store) Reseal(ctx context.Context, log *slog.Logger) (ResealStats, error) {
	var st ResealStats
	active := s.keys.ActiveID().String()
	newest, at, err := newestKey(ctx, s.pool)
	if err != nil {
		return st, err
	}
	if newest != active {
		return st, &SupersededKeyError{Active: active, Newest: newest, Activated: at}
	}
	for _, prev := range s.previousIDs() {
		for _, c := range connectionColumnsSealed {
			if err := s.resealConnections(ctx, log, &st, fmt.Sprintf("%s = $3 and %s is not null", c.keyID(), c.name), prev); err != nil {
				return st, err
			}
		}
	}
	// Rows written in format 1 (before the token version was bound), under
	// whichever key. The literal predicate matches the partial index.
	if err := s.resealConnections(ctx, log, &st, "seal_format < 2"); err != nil {
		return st, err
	}
	if err := s.resealClients(ctx, log, &st); err != nil {
		return st, err
	}
	others, err := s.othersInUse(ctx)
	if err != nil || others {
		return st, err
	}
	if st.Canary, err = s.resealCanary(ctx); err != nil {
		return st, err
	}
	st.Done = true
	return st, nil
}

// resealConnections re-seals the connections matching where (its
// arguments from $3), in batches of rows in id order, until none is left.
func (s *Store) resealConnections(ctx context.Context, log *slog.Logger, st *ResealStats, where string, args ...any) error {
	after := uuid.Nil
	for {
		n, last, err := s.resealBatch(ctx, log, st, where, args, after)
		if err != nil || n == 0 {
			return err
		}
		after = last
	}
}

// resealBatch re-seals the next batch of connections after id after, in one
// transaction, and returns how many rows it took and the last one's id.
func (s *Store) resealBatch(ctx context.Context, log *slog.Logger, st *ResealStats, where string, args []any, after uuid.UUID) (int, uuid.UUID, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, after, err
	}
	defer rollback(ctx, tx)
	rows, err := tx.Query(ctx, `select id, token_version, confirmation_hash, access_token, refresh_token, static_credentials,
		staged_access_token, staged_refresh_token, staged_static_credentials
		from vault.connections where id > $1 and `+where+` order by id limit $2 for update skip locked`,
		append([]any{after, s.batchSize}, args...)...)
	if err != nil {
		return 0, after, fmt.Errorf("re-seal: %w", err)
	}
	type row struct {
		id      uuid.UUID
		version int64
		hash    []byte
		sealed  [6][]byte
	}
	var batch []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.version, &r.hash, &r.sealed[0], &r.sealed[1], &r.sealed[2], &r.sealed[3], &r.sealed[4], &r.sealed[5]); err != nil {
			rows.Close()
			return 0, after, err
		}
		batch = append(batch, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, after, err
	}
	if len(batch) == 0 {
		return 0, after, nil
	}
	var updates pgx.Batch
	changed := 0
	for _, r := range batch {
		var out [6][]byte
		ok, moved := true, false
		for i, c := range connectionColumnsSealed {
			p := placeOf(r.id.String(), c, r.version, r.hash)
			v, changed, err := s.reseal(p, p, r.sealed[i])
			if err != nil {
				// Never write what did not open: the row stays as it is.
				s.unopened(log, "key rotation: a connection's secret does not open; the row is left as it is",
					"connection_id", r.id.String(), "column", c.String(), "err", err)
				ok = false
				break
			}
			out[i], moved = v, moved || changed
		}
		if !ok {
			st.Failed++
			continue
		}
		if !moved {
			continue
		}
		// token_version is not bumped: the secrets are the same, only their seal changed.
		updates.Queue(`update vault.connections set access_token = $2, refresh_token = $3, static_credentials = $4,
			staged_access_token = $5, staged_refresh_token = $6, staged_static_credentials = $7 where id = $1`,
			r.id, out[0], out[1], out[2], out[3], out[4], out[5])
		changed++
	}
	if changed > 0 {
		if err := tx.SendBatch(ctx, &updates).Close(); err != nil {
			return 0, after, fmt.Errorf("re-seal: %w", err)
		}
	}
	if s.beforeBatch != nil {
		if err := s.beforeBatch(); err != nil {
			return 0, after, err
		}
	}
	if err := commit(ctx, tx); err != nil {
		return 0, after, fmt.Errorf("re-seal: %w", err)
	}
	st.Rows += changed
	return len(batch), batch[len(batch)-1].id, nil
}

// resealClients re-seals the client secrets not under ENCRYPTION_KEY in the
// current format, in batches in provider id order.
func (s *Store) resealClients(ctx context.Context, log *slog.Logger, st *ResealStats) error {
	after := ""
	for {
		n, last, err := s.resealClientBatch(ctx, log, st, after)
		if err != nil || n == 0 {
			return err
		}
		after = last
	}
}

func (s *Store) resealClientBatch(ctx context.Context, log *slog.Logger, st *ResealStats, after string) (int, string, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, after, err
	}
	defer rollback(ctx, tx)
	rows, err := tx.Query(ctx, `select provider_id, client_secret from vault.provider_clients
		where provider_id > $1 and client_secret is not null and (client_secret_key_id <> $2 or get_byte(client_secret, 0) < $3)
		order by provider_id limit $4 for update skip locked`, after, s.keys.ActiveID().String(), int(keyringFormat), s.batchSize)
	if err != nil {
		return 0, after, fmt.Errorf("re-seal: %w", err)
	}
	type row struct {
		id     string
		sealed []byte
	}
	batch, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.id, &x.sealed)
	})
	if err != nil || len(batch) == 0 {
		return 0, after, err
	}
	changed := 0
	for _, r := range batch {
		p := clientSecretPlace(r.id)
		out, moved, err := s.reseal(p, p, r.sealed)
		if err != nil {
			s.unopened(log, "key rotation: a client secret does not open; it is left as it is", "provider_id", r.id, "err", err)
			st.Failed++
			continue
		}
		if !moved {
			continue
		}
		if _, err := tx.Exec(ctx, "update vault.provider_clients set client_secret = $2 where provider_id = $1", r.id, out); err != nil {
			return 0, after, fmt.Errorf("re-seal: %w", err)
		}
		changed++
	}
	if s.beforeBatch != nil {
		if err := s.beforeBatch(); err != nil {
			return 0, after, err
		}
	}
	if err := commit(ctx, tx); err != nil {
		return 0, after, fmt.Errorf("re-seal: %w", err)
	}
	st.Rows += changed
	return len(batch), batch[len(batch)-1].id, nil
}

// othersInUse reports whether any value is sealed under another key than
// ENCRYPTION_KEY, or in ciphertext format 1 (the canary aside).
func (s *Store) othersInUse(ctx context.Context) (bool, error) {
	ids, err := s.keyIDsInUse(ctx, false)
	if err != nil {
		return false, err
	}
	if len(ids) > 1 || (len(ids) == 1 && ids[0] != s.keys.ActiveID().String()) {
		return true, nil
	}
	var old bool
	err = s.pool.QueryRow(ctx, `select exists (select from vault.connections where seal_format < 2)
		or exists (select from vault.provider_clients where client_secret is not null and get_byte(client_secret, 0) < 2)`).Scan(&old)
	return old, err
}

// resealCanary re-seals the canary under ENCRYPTION_KEY in the current
// format, unless it already is, and then refuses ciphertext format 1 from
// now on. It reports whether it changed the canary.
func (s *Store) resealCanary(ctx context.Context) (bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer rollback(ctx, tx)
	var sealed []byte
	if err := tx.QueryRow(ctx, "select sealed from vault.canary where id = 1 for update").Scan(&sealed); err != nil {
		return false, fmt.Errorf("re-seal the canary: %w", err)
	}
	out, moved, err := s.reseal(canaryPlace, canaryPlace, sealed)
	if err != nil {
		return false, fmt.Errorf("re-seal the canary: %w", err)
	}
	if moved {
		if _, err := tx.Exec(ctx, "update vault.canary set sealed = $1, rotated_at = now() where id = 1", out); err != nil {
			return false, err
		}
		if err := commit(ctx, tx); err != nil {
			return false, err
		}
	}
	s.format1.Store(false)
	return moved, nil
}

// unopened logs a value the pass could not open, at error level the first
// time this process meets it and at debug level on every later pass.
func (s *Store) unopened(log *slog.Logger, msg string, args ...any) {
	key := fmt.Sprint(args[:len(args)-1]...)
	if _, seen := s.reported.LoadOrStore(key, true); seen {
		log.Debug(msg, args...)
		return
	}
	log.Error(msg, args...)
}
