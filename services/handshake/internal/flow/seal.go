package flow

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// sealVersion is the first byte of every sealed flow.
const sealVersion = 1

// sealer is AES-256-GCM bound to the Redis key a value is stored under
// (additional authenticated data), so a value cannot be moved to another
// flow's key.
type sealer struct {
	aead cipher.AEAD
}

func newSealer(key []byte) (*sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("flow key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("flow key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

// seal returns version || nonce || GCM(plaintext, aad).
func (s *sealer) seal(plaintext []byte, aad string) []byte {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	out[0] = sealVersion
	_, _ = rand.Read(out[1:])
	return s.aead.Seal(out, out[1:], plaintext, []byte(aad))
}

var errOpen = errors.New("flow: sealed value does not open")

func (s *sealer) open(sealed []byte, aad string) ([]byte, error) {
	n := 1 + s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, errOpen
	}
	pt, err := s.aead.Open(nil, sealed[1:n], sealed[n:], []byte(aad))
	if err != nil {
		return nil, errOpen
	}
	return pt, nil
}
