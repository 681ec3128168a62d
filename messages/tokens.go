package messages

import (
	"log/slog"
	"time"
)

// TokenRequest is the body of tokens.get and tokens.refresh.
type TokenRequest struct {
	ConnectionID string `json:"connection_id"`
	WorkspaceID  string `json:"workspace_id,omitempty"`
	// MinValidSeconds: tokens.get refreshes first when the access token would
	// expire within this many seconds. Nil means DefaultMinValidSeconds.
	MinValidSeconds *int `json:"min_valid_seconds,omitempty"`
}

// DefaultMinValidSeconds is used when a tokens.get request names none.
const DefaultMinValidSeconds = 60

// AuthType says what kind of secret a connection holds.
type AuthType string

const (
	AuthOAuth2 AuthType = "oauth2"
	AuthStatic AuthType = "static"
)

// AuthTypes lists every kind of secret.
var AuthTypes = []AuthType{AuthOAuth2, AuthStatic}

// StrategyType tells the Gateway how to apply a credential to an outgoing call.
type StrategyType string

const (
	StrategyOAuth2      StrategyType = "oauth2"
	StrategyHeader      StrategyType = "header"
	StrategyQueryParam  StrategyType = "query_param"
	StrategyBasicAuth   StrategyType = "basic_auth"
	StrategyAWSSigV4    StrategyType = "aws_sigv4"
	StrategyHMACPayload StrategyType = "hmac_payload"
)

// StrategyTypes lists every strategy type.
var StrategyTypes = []StrategyType{StrategyOAuth2, StrategyHeader, StrategyQueryParam, StrategyBasicAuth, StrategyAWSSigV4, StrategyHMACPayload}

// Strategy is how to apply a credential, with its type-specific configuration.
type Strategy struct {
	Type   StrategyType   `json:"type"`
	Config map[string]any `json:"config"`
}

// Credential is what the Gateway receives: a short-lived access token or the
// usage secrets a strategy needs. Never a refresh token, id token, client
// secret or PKCE verifier.
type Credential struct {
	ConnectionID string   `json:"connection_id"`
	Provider     string   `json:"provider"`
	AuthType     AuthType `json:"auth_type"`
	// TokenType is the OAuth token type ("Bearer"); static credentials
	// have none, and the field is left out.
	TokenType   string         `json:"token_type,omitempty"`
	AccessToken string         `json:"access_token,omitempty"`
	Credentials map[string]any `json:"credentials"`
	ExpiresAt   *time.Time     `json:"expires_at,omitempty"`
	Scopes      []string       `json:"scopes"`
	Strategy    Strategy       `json:"strategy"`
	// Config is the connection's non-secret config (Connection.Config).
	Config map[string]string `json:"config,omitempty"`
}

// LogValue keeps a Credential's secrets out of logs: only its identity is printed.
func (c Credential) LogValue() slog.Value {
	return slog.GroupValue(slog.String("connection_id", c.ConnectionID), slog.String("auth_type", string(c.AuthType)), slog.String("secrets", "[redacted]"))
}

// String keeps a Credential's secrets out of fmt output.
func (c Credential) String() string {
	return "Credential{" + c.ConnectionID + " " + string(c.AuthType) + " [redacted]}"
}
