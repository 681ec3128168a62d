package registry

import (
	"fmt"
	"log/slog"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/admin/internal/secretdigest"
)

// secret holds a client secret on its way to the vault. It prints as
// [redacted] through slog and fmt, so a stray log line cannot leak it.
type secret string

// LogValue implements slog.LogValuer.
func (secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// String implements fmt.Stringer.
func (secret) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer (%#v).
func (secret) GoString() string { return "[redacted]" }

// Format covers every other verb.
func (secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[redacted]")) }

// digest is what the provider records of the secret
// (internal/secretdigest), or nothing for no secret.
func (s secret) digest() (string, error) {
	if s == "" {
		return "", nil
	}
	d, err := secretdigest.New(string(s))
	if err != nil {
		return "", fmt.Errorf("digest of the client secret: %w", err)
	}
	return d, nil
}

// takeSecret moves the client secret out of p, so that nothing downstream of
// validation (the store above all) ever holds it.
func takeSecret(p *messages.Provider) secret {
	s := secret(p.ClientSecret)
	p.ClientSecret = ""
	return s
}
