package store

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
)

// KeysStatus is how the database's sealed values stand against the keys:
// what each key seals, the key a rotation moves everything to, and the
// vaults running now.
type KeysStatus struct {
	// Newest is the key vaults started sealing with last.
	Newest string
	// Canary is the key id the canary is sealed under, CanaryFormat its
	// ciphertext format.
	Canary       string
	CanaryFormat int
	// Keys is every key the database knows or uses, oldest first.
	Keys []KeyStatus
	// OlderFormatRows counts rows holding a value in ciphertext format 1.
	OlderFormatRows int64
	// Replicas are the vaults that renewed their row within ReplicaTTL.
	Replicas []Replica
}

// KeyStatus is one key: when vaults started sealing with it (nil: before
// this was recorded) and what it seals.
type KeyStatus struct {
	KeyRows
	ActivatedAt *time.Time
}

// Replica is a running vault: the key it seals with and the keys it holds.
type Replica struct {
	ID           string
	SealingKeyID string
	KeyIDs       []string
	StartedAt    time.Time
	SeenAt       time.Time
}

// RotationComplete: every value and the canary are under the newest key in
// the current format, and every running vault seals with it, so every other
// key may leave ENCRYPTION_KEYS_PREVIOUS.
func (k KeysStatus) RotationComplete() bool {
	if k.Newest == "" || k.Canary != k.Newest || k.CanaryFormat != int(keyring.Format) || k.OlderFormatRows > 0 {
		return false
	}
	for _, key := range k.Keys {
		if key.KeyID != k.Newest && key.Total() > 0 {
			return false
		}
	}
	for _, r := range k.Replicas {
		if r.SealingKeyID != k.Newest {
			return false
		}
	}
	return true
}

// KeysStatus counts what every key seals, column by column. It reads every
// key id index once: meant for an operator's question, not a hot path.
func (s *Store) KeysStatus(ctx context.Context) (KeysStatus, error) {
	var st KeysStatus
	var err error
	if st.Newest, _, err = newestKey(ctx, s.pool); err != nil {
		return st, err
	}
	if err := s.pool.QueryRow(ctx, "select coalesce((select sealed_key_id from vault.canary), ''), coalesce((select get_byte(sealed, 0) from vault.canary), 0)").
		Scan(&st.Canary, &st.CanaryFormat); err != nil {
		return st, err
	}
	used, err := s.rowsUnder(ctx, nil)
	if err != nil {
		return st, err
	}
	rows, err := s.pool.Query(ctx, "select key_id, activated_at from vault.keys")
	if err != nil {
		return st, err
	}
	known := map[string]*time.Time{}
	for rows.Next() {
		var id string
		var at *time.Time
		if err := rows.Scan(&id, &at); err != nil {
			rows.Close()
			return st, err
		}
		known[id] = utc(at)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, err
	}
	for _, u := range used {
		st.Keys = append(st.Keys, KeyStatus{KeyRows: u, ActivatedAt: known[u.KeyID]})
		delete(known, u.KeyID)
	}
	for id, at := range known {
		st.Keys = append(st.Keys, KeyStatus{KeyRows: KeyRows{KeyID: id, Rows: map[string]int64{}}, ActivatedAt: at})
	}
	// Oldest first: by activation, the keys from before it was recorded first.
	slices.SortFunc(st.Keys, func(a, b KeyStatus) int {
		switch {
		case a.ActivatedAt == nil && b.ActivatedAt != nil:
			return -1
		case a.ActivatedAt != nil && b.ActivatedAt == nil:
			return 1
		case a.ActivatedAt != nil && !a.ActivatedAt.Equal(*b.ActivatedAt):
			return a.ActivatedAt.Compare(*b.ActivatedAt)
		}
		return strings.Compare(a.KeyID, b.KeyID)
	})
	if st.OlderFormatRows, err = s.olderFormatRows(ctx); err != nil {
		return st, err
	}
	rows, err = s.pool.Query(ctx, `select id::text, sealing_key_id, key_ids, started_at, seen_at from vault.replicas
		where seen_at > now() - make_interval(secs => $1) order by started_at, id`, s.replicaTTL.Seconds())
	if err != nil {
		return st, err
	}
	st.Replicas, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Replica, error) {
		var x Replica
		err := r.Scan(&x.ID, &x.SealingKeyID, &x.KeyIDs, &x.StartedAt, &x.SeenAt)
		x.StartedAt, x.SeenAt = x.StartedAt.UTC(), x.SeenAt.UTC()
		return x, err
	})
	return st, err
}
