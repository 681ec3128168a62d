// Package keyring seals and opens the vault's secrets with AES-256-GCM, in the
// manner of HashiCorp Vault's barrier: every ciphertext names the key that
// sealed it, old keys stay readable during a rotation, and each ciphertext is
// bound to its storage location so it cannot be moved to another row or field.
//
// Ciphertext layout:
//
//	version (1 byte) || key id (4 bytes) || nonce (12 bytes) || GCM ciphertext+tag
//
// The additional authenticated data is the first 17 bytes (version, key id and
// nonce) followed by the storage location, for example
// "vault.connections/<id>/refresh_token".
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

// Version is the ciphertext format written by Seal.
const Version byte = 1

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

// IDOf derives the id of a key.
func IDOf(key []byte) KeyID {
	sum := sha256.Sum256(append([]byte("nexus-key-id"), key...))
	var id KeyID
	copy(id[:], sum[:idLen])
	return id
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

// Seal encrypts plaintext for location under the active key.
func (k *Keyring) Seal(location string, plaintext []byte) ([]byte, error) {
	out := make([]byte, headerLen, headerLen+len(plaintext)+k.active.aead.Overhead())
	out[0] = Version
	copy(out[1:1+idLen], k.active.id[:])
	if _, err := rand.Read(out[1+idLen : headerLen]); err != nil {
		return nil, fmt.Errorf("keyring: nonce: %w", err)
	}
	aad := additionalData(out[:headerLen], location)
	return k.active.aead.Seal(out, out[1+idLen:headerLen], plaintext, aad), nil
}

// Open decrypts a ciphertext sealed for location by any key of the keyring.
func (k *Keyring) Open(location string, ciphertext []byte) ([]byte, error) {
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
	aad := additionalData(ciphertext[:headerLen], location)
	pt, err := kk.aead.Open(nil, ciphertext[1+idLen:headerLen], ciphertext[headerLen:], aad)
	if err != nil {
		return nil, ErrAuthentication
	}
	return pt, nil
}

// SealedWithActive reports whether ciphertext names the active key, i.e.
// whether a rotation can leave it as it is.
func (k *Keyring) SealedWithActive(ciphertext []byte) bool {
	id, err := IDOfCiphertext(ciphertext)
	return err == nil && id == k.active.id
}

// IDOfCiphertext reads the key id from a ciphertext's header.
func IDOfCiphertext(ciphertext []byte) (KeyID, error) {
	var id KeyID
	if len(ciphertext) < headerLen || ciphertext[0] != Version {
		return id, ErrMalformed
	}
	copy(id[:], ciphertext[1:1+idLen])
	return id, nil
}

func additionalData(header []byte, location string) []byte {
	aad := make([]byte, 0, len(header)+len(location))
	aad = append(aad, header...)
	return append(aad, location...)
}

// LogValue keeps key material out of logs: only key ids are printed.
func (k *Keyring) LogValue() slog.Value {
	prev := make([]string, len(k.previous))
	for i, id := range k.previous {
		prev[i] = id.String()
	}
	return slog.GroupValue(slog.String("active_key_id", k.active.id.String()), slog.Any("previous_key_ids", prev))
}
