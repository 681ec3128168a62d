package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
)

// canaryValue is the known plaintext sealed in vault.canary.
const canaryValue = "nexus-vault-canary-v1"

// CanaryError says that the configured keys do not open this database. Its
// message is for the operator: which key id the database needs, which ones
// are configured, and how to fix it. It never contains key material.
type CanaryError struct {
	Sealed   string   // key id the canary was sealed with
	Active   string   // ENCRYPTION_KEY's id
	Previous []string // ENCRYPTION_KEYS_PREVIOUS ids
	Err      error
}

func (e *CanaryError) Error() string {
	prev := "none"
	if len(e.Previous) > 0 {
		prev = strings.Join(e.Previous, ", ")
	}
	return fmt.Sprintf("ENCRYPTION_KEY does not open this database: its data was sealed with key id %s, "+
		"but ENCRYPTION_KEY has key id %s (ENCRYPTION_KEYS_PREVIOUS: %s). "+
		"Set ENCRYPTION_KEY to the key this database was created with; to rotate to a new key, set the new one as "+
		"ENCRYPTION_KEY and keep the old one in ENCRYPTION_KEYS_PREVIOUS until a start-up has re-sealed everything (%v)",
		e.Sealed, e.Active, prev, e.Err)
}

func (e *CanaryError) Unwrap() error { return e.Err }

// CheckCanary proves the keyring opens this database. On a fresh database it
// seals the canary under the active key. It returns a *CanaryError when the
// configured keys cannot open it.
func (s *Store) CheckCanary(ctx context.Context) error {
	sealed, err := s.keys.Seal(canaryLoc, []byte(canaryValue))
	if err != nil {
		return err
	}
	// Concurrent first starts: one insert wins, every replica checks the winner.
	if _, err := s.pool.Exec(ctx, "insert into vault.canary (id, sealed) values (1, $1) on conflict (id) do nothing", sealed); err != nil {
		return fmt.Errorf("canary: %w", err)
	}
	var stored []byte
	if err := s.pool.QueryRow(ctx, "select sealed from vault.canary where id = 1").Scan(&stored); err != nil {
		return fmt.Errorf("canary: %w", err)
	}
	pt, err := s.keys.Open(canaryLoc, stored)
	if err == nil && string(pt) != canaryValue {
		err = errors.New("canary holds an unexpected value")
	}
	if err == nil {
		return nil
	}
	ce := &CanaryError{Active: s.keys.ActiveID().String(), Err: err}
	if id, ierr := keyring.IDOfCiphertext(stored); ierr == nil {
		ce.Sealed = id.String()
	} else {
		ce.Sealed = "unknown (malformed canary)"
	}
	for _, id := range s.keys.PreviousIDs() {
		ce.Previous = append(ce.Previous, id.String())
	}
	return ce
}
