package keyring

import "log/slog"

// Secret is a plaintext secret held in memory (a token or a client secret).
// It prints as [redacted] in logs and fmt output; call Reveal to use it.
type Secret string

// Reveal returns the plaintext.
func (s Secret) Reveal() string { return string(s) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s == "" }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// String implements fmt.Stringer, so %v and %s never print the secret.
func (Secret) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer, so %#v never prints the secret.
func (Secret) GoString() string { return "[redacted]" }
