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
// flow's key. It seals with its first key; during a STATE_KEY rotation the
// others still open flows sealed before (a flow lives an hour at most).
type sealer struct {
	aeads []cipher.AEAD
}

func newSealer(key []byte, previous ...[]byte) (*sealer, error) {
	s := &sealer{}
	for _, k := range append([][]byte{key}, previous...) {
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("flow key: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("flow key: %w", err)
		}
		s.aeads = append(s.aeads, aead)
	}
	return s, nil
}

// seal returns version || nonce || GCM(plaintext, aad) under the first key.
func (s *sealer) seal(plaintext []byte, aad string) []byte {
	a := s.aeads[0]
	out := make([]byte, 1+a.NonceSize(), 1+a.NonceSize()+len(plaintext)+a.Overhead())
	out[0] = sealVersion
	_, _ = rand.Read(out[1:])
	return a.Seal(out, out[1:], plaintext, []byte(aad))
}

var errOpen = errors.New("flow: sealed value does not open")

// open tries each key, the current one first.
func (s *sealer) open(sealed []byte, aad string) ([]byte, error) {
	for _, a := range s.aeads {
		n := 1 + a.NonceSize()
		if len(sealed) < n+a.Overhead() || sealed[0] != sealVersion {
			return nil, errOpen
		}
		if pt, err := a.Open(nil, sealed[1:n], sealed[n:], []byte(aad)); err == nil {
			return pt, nil
		}
	}
	return nil, errOpen
}
