package store

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
	"github.com/nexus-broker/nexus/services/vault/internal/secret"
)

// The sealed columns, and the place each value is bound to (the additional
// authenticated data of its ciphertext). Every sealed column has a key id
// column next to it that PostgreSQL derives from the ciphertext's header
// (migration 011_key_ids.sql), so that what is sealed under which key is a
// query, whatever wrote the row.

// column is a sealed column of schema vault.
type column struct{ table, name string }

// String names the column as operators see it: "vault.connections.refresh_token".
func (c column) String() string { return Schema + "." + c.table + "." + c.name }

// keyID is the generated column holding the key id of c's value.
func (c column) keyID() string { return c.name + "_key_id" }

var (
	colAccess       = column{"connections", "access_token"}
	colRefresh      = column{"connections", "refresh_token"}
	colStatic       = column{"connections", "static_credentials"}
	colStagedAccess = column{"connections", "staged_access_token"}
	colStagedRefr   = column{"connections", "staged_refresh_token"}
	colStagedStatic = column{"connections", "staged_static_credentials"}
	colClientSecret = column{"provider_clients", "client_secret"}
	colCanary       = column{"canary", "sealed"}
)

// connectionColumnsSealed are vault.connections' sealed columns, in the
// order rows are read by the re-seal pass.
var connectionColumnsSealed = []column{colAccess, colRefresh, colStatic, colStagedAccess, colStagedRefr, colStagedStatic}

// sealedColumns is every sealed column of the schema.
var sealedColumns = append(append([]column(nil), connectionColumnsSealed...), colClientSecret, colCanary)

// connectionPlace is where a connection's live secret is stored, bound to
// the row's token version: every change of the secrets bumps it, so a
// ciphertext of an earlier state cannot be put back on the row alone.
func connectionPlace(id string, c column, tokenVersion int64) keyring.Place {
	return keyring.Place{Location: "vault.connections/" + id + "/" + c.name, Generation: strconv.FormatInt(tokenVersion, 10)}
}

// stagedPlace is where a secret waiting for confirmation is stored, bound
// to that confirmation (the SHA-256 the Gateway's value must match). Not to
// the token version: the live tokens may be refreshed while it waits.
func stagedPlace(id string, c column, confirmationHash []byte) keyring.Place {
	return keyring.Place{Location: "vault.connections/" + id + "/" + c.name, Generation: "confirmation:" + hex.EncodeToString(confirmationHash)}
}

// clientSecretPlace is a provider's client secret: the row's only sealed
// value, so no generation (it would be rolled back with the value).
func clientSecretPlace(providerID string) keyring.Place {
	return keyring.Place{Location: "vault.provider_clients/" + providerID + "/client_secret"}
}

var canaryPlace = keyring.Place{Location: "vault.canary/1/sealed"}

// ConnectionPlace is the place of a connection's live secret field
// ("access_token", "refresh_token", "static_credentials") at token version v,
// for tests and tools that write rows the way the store does.
func ConnectionPlace(id, field string, v int64) keyring.Place {
	return connectionPlace(id, column{"connections", field}, v)
}

// ErrRetiredFormat: a value in ciphertext format 1 after this database
// finished moving to format 2 (its canary is in format 2): format 1 is not
// bound to the row's token version, so it could be an old value put back.
var ErrRetiredFormat = errors.New("store: sealed in ciphertext format 1, which this database no longer accepts")

// OpenError says which sealed value did not open and why; errors.Is sees
// the cause (keyring.ErrUnknownKey: sealed under a key this vault does not
// hold; keyring.ErrAuthentication: tampered with, or not this row's value
// any more; ErrRetiredFormat). It never holds plaintext.
type OpenError struct {
	Place keyring.Place
	Err   error
}

func (e *OpenError) Error() string { return fmt.Sprintf("open %s: %v", e.Place, e.Err) }
func (e *OpenError) Unwrap() error { return e.Err }

// seal is the one place a secret is sealed on its way to the database:
// under the active key, in the current format, bound to p. The zero value
// is stored as NULL.
func (s *Store) seal(p keyring.Place, v secret.Value) ([]byte, error) {
	if v.IsZero() {
		return nil, nil
	}
	return s.keys.Seal(p, []byte(v.Reveal()))
}

// open is the one place a sealed value is opened. NULL is the zero value.
func (s *Store) open(p keyring.Place, sealed []byte) (secret.Value, error) {
	if sealed == nil {
		return "", nil
	}
	if f, err := keyring.FormatOf(sealed); err == nil && f == keyring.Format1 && !s.format1.Load() {
		return "", &OpenError{Place: p, Err: ErrRetiredFormat}
	}
	pt, err := s.keys.Open(p, sealed)
	if err != nil {
		return "", &OpenError{Place: p, Err: err}
	}
	return secret.Value(pt), nil
}

// reseal returns sealed opened at from and sealed again at to, under the
// active key in the current format, and true; or sealed itself and false
// when it already is that and from is to, or is NULL.
func (s *Store) reseal(from, to keyring.Place, sealed []byte) ([]byte, bool, error) {
	if sealed == nil || (from == to && s.keys.Current(sealed)) {
		return sealed, false, nil
	}
	v, err := s.open(from, sealed)
	if err != nil {
		return nil, false, err
	}
	out, err := s.seal(to, v)
	return out, err == nil, err
}
