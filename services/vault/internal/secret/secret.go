// Package secret is the vault's type for a plaintext secret held in memory:
// a token, a client secret or static credentials. It never prints.
package secret

import (
	"crypto/subtle"
	"log/slog"
)

// Value is a plaintext secret. It prints as [redacted] in logs and fmt
// output; call Reveal to use it.
type Value string

// Reveal returns the plaintext.
func (s Value) Reveal() string { return string(s) }

// Equal compares s and t in constant time (for equal lengths).
func (s Value) Equal(t Value) bool { return subtle.ConstantTimeCompare([]byte(s), []byte(t)) == 1 }

// IsZero reports whether the secret is empty.
func (s Value) IsZero() bool { return s == "" }

// LogValue implements slog.LogValuer.
func (Value) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// String implements fmt.Stringer, so %v and %s never print the secret.
func (Value) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer, so %#v never prints the secret.
func (Value) GoString() string { return "[redacted]" }
