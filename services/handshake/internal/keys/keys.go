// Package keys derives the handshake's purpose-specific keys from STATE_KEY,
// so that no two mechanisms (state signing, browser binding, flow sealing, form CSRF tokens)
// ever share a key. During a rotation the keys derived from STATE_KEYS_PREVIOUS
// still check and open what was made before it, so consents in flight
// survive; only STATE_KEY makes anything new.
package keys

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
)

// HKDF info strings, one per purpose. Changing one invalidates every value
// made with the old key.
const (
	InfoState   = "nexus-handshake-state"
	InfoBinding = "nexus-handshake-binding"
	InfoFlow    = "nexus-handshake-flow"
	InfoCSRF    = "nexus-handshake-csrf"
	// InfoDiscovery authenticates the discovery documents cached in Redis.
	InfoDiscovery = "nexus-handshake-discovery"
)

// Derive returns a 32-byte key for info from the 32-byte STATE_KEY
// (HKDF-SHA256, no salt).
func Derive(stateKey []byte, info string) ([]byte, error) {
	if len(stateKey) != 32 {
		return nil, fmt.Errorf("STATE_KEY must be 32 bytes, got %d", len(stateKey))
	}
	return hkdf.Key(sha256.New, stateKey, nil, info, 32)
}

// Ring is STATE_KEY, which makes values, and STATE_KEYS_PREVIOUS, whose
// values are still accepted.
type Ring struct {
	active   []byte
	previous [][]byte
}

// NewRing checks every key is 32 bytes.
func NewRing(active []byte, previous ...[]byte) (*Ring, error) {
	if len(active) != 32 {
		return nil, fmt.Errorf("STATE_KEY must be 32 bytes, got %d", len(active))
	}
	for i, p := range previous {
		if len(p) != 32 {
			return nil, fmt.Errorf("STATE_KEYS_PREVIOUS entry %d must be 32 bytes, got %d", i+1, len(p))
		}
	}
	return &Ring{active: active, previous: previous}, nil
}

// For returns info's key derived from STATE_KEY, which makes values, and
// those derived from each of STATE_KEYS_PREVIOUS, which only check or open
// them.
func (r *Ring) For(info string) (active []byte, previous [][]byte) {
	active, _ = Derive(r.active, info)
	for _, p := range r.previous {
		k, _ := Derive(p, info)
		previous = append(previous, k)
	}
	return active, previous
}
