// Package apikey checks the API keys that Gateway and operator requests carry.
package apikey

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
)

// Keys is the set of API keys valid at once (several during a rotation).
// Keys are compared as SHA-256 digests in constant time, against every
// configured key, so neither the length nor the position of a match leaks.
type Keys struct {
	digests [][sha256.Size]byte
	first   string
}

// New builds a key set. Empty keys are ignored.
func New(keys []string) *Keys {
	k := &Keys{}
	for _, key := range keys {
		if key == "" {
			continue
		}
		if k.first == "" {
			k.first = key
		}
		k.digests = append(k.digests, sha256.Sum256([]byte(key)))
	}
	return k
}

// Len is how many keys are valid.
func (k *Keys) Len() int { return len(k.digests) }

// Valid reports whether presented is one of the keys.
func (k *Keys) Valid(presented string) bool {
	if k == nil || presented == "" {
		return false
	}
	d := sha256.Sum256([]byte(presented))
	ok := 0
	for i := range k.digests {
		ok |= subtle.ConstantTimeCompare(d[:], k.digests[i][:])
	}
	return ok == 1
}

// Outgoing is the key a service presents when it calls another service.
func (k *Keys) Outgoing() string { return k.first }

// LogValue keeps keys out of logs.
func (k *Keys) LogValue() slog.Value { return slog.IntValue(k.Len()) }
