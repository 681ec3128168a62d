// Package keys derives the handshake's purpose-specific keys from STATE_KEY,
// so that no two mechanisms (state signing, browser binding, flow sealing, form CSRF tokens)
// ever share a key.
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
