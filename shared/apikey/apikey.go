// Package apikey knows who presents a key: the Gateway, an operator, or one
// of the broker's services. Every request names its caller with a key; each
// endpoint says which callers it serves.
package apikey

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
)

// The principals. Each is a role with its own keys: a key of one never
// opens another's doors.
const (
	// Gateway: the contract's subjects (handshake.begin, connections.*,
	// tokens.*), with API_KEY.
	Gateway = "gateway"
	// Operator: admin's subjects and HTTP API, with ADMIN_API_KEY. Nothing
	// an operator may call returns a credential.
	Operator = "operator"
	// The services, on each other's internal subjects, each with its own
	// key (HANDSHAKE_SERVICE_KEY, ADMIN_SERVICE_KEY, REFRESHER_SERVICE_KEY).
	Handshake = "handshake"
	Admin     = "admin"
	Refresher = "refresher"
)

// Caller is who presented a key.
type Caller struct {
	// Principal is one of the constants above.
	Principal string
	// KeyID names the key without revealing it (the first 8 bytes of its
	// SHA-256, hex), for audit records and logs.
	KeyID string
	// CrossWorkspace: a Gateway key that may omit workspace_id
	// (CROSS_WORKSPACE_API_KEY). Every other Gateway key must name the
	// workspace of what it asks for.
	CrossWorkspace bool
}

// LogValue prints who, never the key.
func (c Caller) LogValue() slog.Value {
	return slog.GroupValue(slog.String("principal", c.Principal), slog.String("key_id", c.KeyID))
}

type entry struct {
	digest [sha256.Size]byte
	caller Caller
}

// Set is every key a service accepts, with the caller each names.
type Set struct {
	entries []entry
}

// NewSet returns an empty set; Add fills it.
func NewSet() *Set { return &Set{} }

// Add accepts keys (several during a rotation) as principal. Empty keys are
// ignored. It returns s.
func (s *Set) Add(principal string, keys []string) *Set {
	return s.add(principal, keys, false)
}

// AddCrossWorkspace accepts keys as Gateway keys that may omit workspace_id.
func (s *Set) AddCrossWorkspace(keys []string) *Set {
	return s.add(Gateway, keys, true)
}

func (s *Set) add(principal string, keys []string, cross bool) *Set {
	for _, k := range keys {
		if k == "" {
			continue
		}
		d := sha256.Sum256([]byte(k))
		s.entries = append(s.entries, entry{digest: d, caller: Caller{Principal: principal, KeyID: hex.EncodeToString(d[:8]), CrossWorkspace: cross}})
	}
	return s
}

// Len is how many keys are accepted.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.entries)
}

// Identify returns the caller presented names. Keys are compared as SHA-256
// digests in constant time against every accepted key, so neither the length
// nor the position of a match leaks.
func (s *Set) Identify(presented string) (Caller, bool) {
	if s == nil || presented == "" {
		return Caller{}, false
	}
	d := digest(presented)
	found := -1
	for i := range s.entries {
		if subtle.ConstantTimeCompare(d[:], s.entries[i].digest[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Caller{}, false
	}
	return s.entries[found].caller, true
}

// digest is the SHA-256 of key, hashed from a copy on the stack when the
// key is of a usual length: every request is identified, and the hot path
// allocates nothing it can avoid.
func digest(key string) [sha256.Size]byte {
	var buf [128]byte
	if len(key) <= len(buf) {
		return sha256.Sum256(append(buf[:0], key...))
	}
	return sha256.Sum256([]byte(key))
}

// LogValue keeps keys out of logs: only how many there are of each.
func (s *Set) LogValue() slog.Value {
	counts := map[string]int{}
	for _, e := range s.entries {
		counts[e.caller.Principal]++
	}
	var attrs []slog.Attr
	for p, n := range counts {
		attrs = append(attrs, slog.Int(p, n))
	}
	return slog.GroupValue(attrs...)
}

// Outgoing is the key a service presents when it calls another: the first
// of its own keys (the others are older ones still accepted during a
// rotation).
func Outgoing(keys []string) string {
	for _, k := range keys {
		if k != "" {
			return k
		}
	}
	return ""
}

type callerKey struct{}

// callerContext carries a request's caller: one allocation per request,
// where context.WithValue would make two (the context and the boxed Caller).
type callerContext struct {
	context.Context
	caller Caller
}

// Value answers callerKey with the callerContext itself (a pointer, which
// boxes without allocating); CallerOf reads the caller from it.
func (c *callerContext) Value(key any) any {
	if key == (callerKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// WithCaller returns ctx carrying the caller of the request it serves.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return &callerContext{Context: ctx, caller: c}
}

// CallerOf is who made the request ctx serves (the zero Caller when none
// was recorded).
func CallerOf(ctx context.Context) Caller {
	if c, ok := ctx.Value(callerKey{}).(*callerContext); ok {
		return c.caller
	}
	return Caller{}
}
