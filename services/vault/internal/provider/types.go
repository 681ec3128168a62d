package provider

import (
	"log/slog"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/secret"
)

// Registration is a provider's client registration as its token and
// revocation endpoints need it. The vault converts its stored registration
// to this at its edge; this package knows nothing of storage.
type Registration struct {
	// Type says whether id_tokens are verified (oidc).
	Type         messages.ProviderType
	ClientID     string
	ClientSecret secret.Value
	// AuthMethod is client_secret_basic (the default) or client_secret_post.
	AuthMethod         string
	Issuer             string
	TokenEndpoint      string
	RevocationEndpoint string
	JWKSURI            string
	// DefaultLifetime is how long an access token is taken to live when a
	// renewable token's response has no expires_in.
	DefaultLifetime time.Duration
	// Quirks: how the token endpoint bends RFC 6749.
	Quirks messages.Quirks
}

// LogValue keeps the client secret out of logs.
func (r Registration) LogValue() slog.Value {
	return slog.GroupValue(slog.String("client_id", r.ClientID), slog.String("token_endpoint", r.TokenEndpoint), slog.String("client_secret", "[redacted]"))
}

// Tokens are what a token endpoint granted. A zero Refresh means the
// response carried no refresh token (the caller keeps the one it has).
type Tokens struct {
	Access         secret.Value
	Refresh        secret.Value
	TokenType      string
	ExpiresAt      *time.Time
	RefreshExpires *time.Time
	// Scopes granted: the response's scope, else what was requested (nil
	// on a refresh that did not say).
	Scopes []string
	// Config: the non-secret values the quirks name (ConfigFromToken).
	Config map[string]string
}

// LogValue keeps the tokens out of logs.
func (t Tokens) LogValue() slog.Value {
	return slog.GroupValue(slog.String("token_type", t.TokenType), slog.String("tokens", "[redacted]"))
}
