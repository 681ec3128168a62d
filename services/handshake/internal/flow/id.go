package flow

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// idBytes is the entropy of a flow id.
const idBytes = 32

// IDLen is the length of a flow id as text (base64url, no padding).
var IDLen = base64.RawURLEncoding.EncodedLen(idBytes)

// NewID returns a fresh flow id: 32 random bytes, base64url. It is the
// capability in the connect link, so it never appears in state or in Redis.
func NewID() string {
	b := make([]byte, idBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ValidID reports whether id has the shape of a flow id: exactly the
// canonical encoding of idBytes bytes (Strict: no set unused bits; the length
// check leaves no room for the CR and LF Strict would skip).
func ValidID(id string) bool {
	if len(id) != IDLen {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(id)
	return err == nil && len(b) == idBytes
}

// Ref is the flow's lookup reference: hex(sha256(id)). It names the Redis key
// and travels in state; it cannot be turned back into the connect link.
func Ref(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// ValidRef reports whether ref has the shape of a Ref.
func ValidRef(ref string) bool {
	if len(ref) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(ref)
	return err == nil
}
