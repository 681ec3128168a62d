// Package apikey knows who presents a key: the Gateway, an operator, or one
// of the broker's services. Every request names its caller with a key; each
// endpoint says which callers it serves.
package apikey

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
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
	// key is the key, zero-padded to the set's width; n its length.
	key    []byte
	n      int
	caller Caller
}

// Set is every key a service accepts, with the caller each names.
type Set struct {
	entries []entry
	// width is the longest key's length rounded up to a word: every
	// comparison runs over that many bytes.
	width int
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
		s.entries = append(s.entries, entry{key: []byte(k), n: len(k), caller: Caller{Principal: principal, KeyID: hex.EncodeToString(d[:8]), CrossWorkspace: cross}})
		s.width = max(s.width, (len(k)+7)/8*8)
	}
	for i := range s.entries {
		padded := make([]byte, s.width)
		copy(padded, s.entries[i].key[:s.entries[i].n])
		s.entries[i].key = padded
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

// Identify returns the caller presented names. presented is compared in
// constant time with every accepted key, word by word over the longest
// key's length, lengths included: the work depends only on how many keys
// there are and on that longest length (rounded up to a word), never on
// what a key holds, on its own length, on how much of it presented matches,
// or on which key matched. (The set holds the keys themselves, as the
// process's configuration does; the comparison is a quarter of what hashing
// the presented key first would cost every request.)
func (s *Set) Identify(presented string) (Caller, bool) {
	if s == nil || presented == "" || s.width == 0 {
		return Caller{}, false
	}
	var stack [256]byte
	var p []byte
	if s.width <= len(stack) {
		p = stack[:s.width]
	} else {
		p = make([]byte, s.width)
	}
	copy(p, presented)
	// A presented key longer than width matches none: its length stands in
	// as width+1, which no key has.
	n := int32(min(len(presented), s.width+1))
	found := -1
	for i := range s.entries {
		e := &s.entries[i]
		match := equalWords(p, e.key) & subtle.ConstantTimeEq(n, int32(e.n))
		found = subtle.ConstantTimeSelect(match, i, found)
	}
	if found < 0 {
		return Caller{}, false
	}
	return s.entries[found].caller, true
}

// equalWords is 1 when a and b (of one length, a multiple of 8) are equal,
// else 0, in time that depends only on their length.
func equalWords(a, b []byte) int {
	var diff uint64
	for i := 0; i+8 <= len(a) && i+8 <= len(b); i += 8 {
		diff |= binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:])
	}
	return subtle.ConstantTimeEq(int32(uint32(diff)|uint32(diff>>32)), 0)
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
