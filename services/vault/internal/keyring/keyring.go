// Package keyring seals and opens the vault's secrets with AES-256-GCM, in the
// manner of HashiCorp Vault's barrier: every ciphertext names the key that
// sealed it, old keys stay readable during a rotation, and each ciphertext is
// bound to its storage location so it cannot be moved to another row or field.
//
// Ciphertext layout:
//
//	format (1 byte) || key id (4 bytes) || nonce (12 bytes) || GCM ciphertext+tag
//
// The additional authenticated data is the first 17 bytes (format, key id and
// nonce) followed by the place the value is stored at (Place). Format 2,
// which Seal writes, binds the place's location and its generation:
//
//	header || location || 0x00 || generation
//
// for example location "vault.connections/<id>/refresh_token" and generation
// "7", the row's token version, so that a value sealed for an earlier state of
// the row does not open once the row has moved on. Format 1, written before,
// bound the location alone; Open still reads it, and a caller that has
// re-sealed everything can refuse it (FormatOf).
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
)

// The ciphertext formats. Seal writes Format; Open reads both.
const (
	// Format1 bound the location only (AAD = header || location).
	Format1 byte = 1
	// Format2 binds the location and the generation.
	Format2 byte = 2
	// Format is what Seal writes.
	Format = Format2
)

const (
	idLen     = 4
	nonceLen  = 12
	headerLen = 1 + idLen + nonceLen
	// KeySize is the size of an AES-256 key.
	KeySize = 32
)

// Errors Open returns; callers branch on them with errors.Is.
var (
	// ErrMalformed: the value is not a ciphertext of a known format.
	ErrMalformed = errors.New("keyring: malformed ciphertext")
	// ErrUnknownKey: the ciphertext names a key this keyring does not hold.
	// The error is an *UnknownKeyError that says which one.
	ErrUnknownKey = errors.New("keyring: ciphertext sealed with an unknown key")
	// ErrAuthentication: the key is known but the ciphertext does not open:
	// it was tampered with, or it belongs to another storage location.
	ErrAuthentication = errors.New("keyring: ciphertext failed authentication")
)

// UnknownKeyError says which key id a ciphertext needs.
type UnknownKeyError struct{ ID KeyID }

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("keyring: ciphertext sealed with key id %s, which is not configured", e.ID)
}

// Is makes errors.Is(err, ErrUnknownKey) true.
func (e *UnknownKeyError) Is(target error) bool { return target == ErrUnknownKey }

// KeyID identifies a key without revealing it: the first 4 bytes of
// SHA-256("nexus-key-id" || key).
type KeyID [idLen]byte

// String is the id in hex, safe to log.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// ParseKeyID reads a key id as String prints it (8 hex digits).
func ParseKeyID(s string) (KeyID, error) {
	var id KeyID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != idLen {
		return id, fmt.Errorf("keyring: %q is not a key id (8 hex digits)", s)
	}
	copy(id[:], b)
	return id, nil
}

// IDOf derives the id of a key.
func IDOf(key []byte) KeyID {
	sum := sha256.Sum256(append([]byte("nexus-key-id"), key...))
	var id KeyID
	copy(id[:], sum[:idLen])
	return id
}

// Place is where a sealed value is stored, which its ciphertext is bound to.
type Place struct {
	// Location names the table, row and field:
	// "vault.connections/<id>/refresh_token".
	Location string
	// Generation names the row's state the value belongs to (a connection's
	// token version), so that a value of an earlier state cannot be put back
	// on its row. Empty for a row with a single sealed value, whose value and
	// version would be rolled back together anyway.
	Generation string
}

// String is the location and the generation, for error messages.
func (p Place) String() string {
	if p.Generation == "" {
		return p.Location
	}
	return p.Location + "@" + p.Generation
}

type key struct {
	id   KeyID
	aead cipher.AEAD
}

// Keyring holds the active key, which seals, and the previous keys, which
// only open.
type Keyring struct {
	active   *key
	keys     map[KeyID]*key
	previous []KeyID
}

// New builds a keyring from the active key and any previous keys (each 32
// bytes). A previous key equal to the active one is ignored.
func New(active []byte, previous ...[]byte) (*Keyring, error) {
	a, err := newKey(active)
	if err != nil {
		return nil, fmt.Errorf("ENCRYPTION_KEY: %w", err)
	}
	k := &Keyring{active: a, keys: map[KeyID]*key{a.id: a}}
	for i, p := range previous {
		pk, err := newKey(p)
		if err != nil {
			return nil, fmt.Errorf("ENCRYPTION_KEYS_PREVIOUS entry %d: %w", i+1, err)
		}
		if _, dup := k.keys[pk.id]; dup {
			continue
		}
		k.keys[pk.id] = pk
		k.previous = append(k.previous, pk.id)
	}
	return k, nil
}

func newKey(b []byte) (*key, error) {
	if len(b) != KeySize {
		return nil, fmt.Errorf("key must be %d bytes, got %d", KeySize, len(b))
	}
	block, err := aes.NewCipher(b)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &key{id: IDOf(b), aead: aead}, nil
}

// ActiveID is the id of the key that seals.
func (k *Keyring) ActiveID() KeyID { return k.active.id }

// PreviousIDs are the ids of the keys kept only for opening.
func (k *Keyring) PreviousIDs() []KeyID { return append([]KeyID(nil), k.previous...) }

// HasPrevious reports whether previous keys are configured, i.e. a rotation
// may be under way.
func (k *Keyring) HasPrevious() bool { return len(k.previous) > 0 }

// Seal encrypts plaintext for p under the active key, in Format.
func (k *Keyring) Seal(p Place, plaintext []byte) ([]byte, error) {
	out := make([]byte, headerLen, headerLen+len(plaintext)+k.active.aead.Overhead())
	out[0] = Format
	copy(out[1:1+idLen], k.active.id[:])
	if _, err := rand.Read(out[1+idLen : headerLen]); err != nil {
		return nil, fmt.Errorf("keyring: nonce: %w", err)
	}
	aad := additionalData(out[:headerLen], p)
	return k.active.aead.Seal(out, out[1+idLen:headerLen], plaintext, aad), nil
}

// Open decrypts a ciphertext sealed for p by any key of the keyring, in
// either format (a Format1 ciphertext is bound to p.Location only).
func (k *Keyring) Open(p Place, ciphertext []byte) ([]byte, error) {
	id, err := IDOfCiphertext(ciphertext)
	if err != nil {
		return nil, err
	}
	kk, ok := k.keys[id]
	if !ok {
		return nil, &UnknownKeyError{ID: id}
	}
	if len(ciphertext) < headerLen+kk.aead.Overhead() {
		return nil, ErrMalformed
	}
	aad := additionalData(ciphertext[:headerLen], p)
	pt, err := kk.aead.Open(nil, ciphertext[1+idLen:headerLen], ciphertext[headerLen:], aad)
	if err != nil {
		return nil, ErrAuthentication
	}
	return pt, nil
}

// Holds reports whether the keyring has the key with this id.
func (k *Keyring) Holds(id KeyID) bool {
	_, ok := k.keys[id]
	return ok
}

// Current reports whether ciphertext is sealed with the active key in
// Format, i.e. whether re-sealing can leave it as it is.
func (k *Keyring) Current(ciphertext []byte) bool {
	id, err := IDOfCiphertext(ciphertext)
	return err == nil && id == k.active.id && ciphertext[0] == Format
}

// FormatOf reads the format of a ciphertext (Format1 or Format2).
func FormatOf(ciphertext []byte) (byte, error) {
	if len(ciphertext) < headerLen || (ciphertext[0] != Format1 && ciphertext[0] != Format2) {
		return 0, ErrMalformed
	}
	return ciphertext[0], nil
}

// IDOfCiphertext reads the key id from a ciphertext's header.
func IDOfCiphertext(ciphertext []byte) (KeyID, error) {
	var id KeyID
	if _, err := FormatOf(ciphertext); err != nil {
		return id, err
	}
	copy(id[:], ciphertext[1:1+idLen])
	return id, nil
}

// additionalData is what a ciphertext is authenticated with: its header and
// its place, as its format binds it.
func additionalData(header []byte, p Place) []byte {
	aad := make([]byte, 0, len(header)+len(p.Location)+1+len(p.Generation))
	aad = append(aad, header...)
	aad = append(aad, p.Location...)
	if header[0] == Format1 {
		return aad
	}
	aad = append(aad, 0)
	return append(aad, p.Generation...)
}

// LogValue keeps key material out of logs: only key ids are printed.
func (k *Keyring) LogValue() slog.Value {
	prev := make([]string, len(k.previous))
	for i, id := range k.previous {
		prev[i] = id.String()
	}
	return slog.GroupValue(slog.String("active_key_id", k.active.id.String()), slog.Any("previous_key_ids", prev))
}
