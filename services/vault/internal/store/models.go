package store

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/secret"
)

// Connection is a connection's state without its secrets.
type Connection struct {
	ID              string
	ProviderID      string
	ProviderName    string // current name from provider_clients; the id when unregistered
	WorkspaceID     string
	Status          messages.ConnectionStatus
	Scopes          []string
	RequestedScopes []string
	Metadata        map[string]any
	TokenType       string
	TokenVersion    int64
	ExpiresAt       *time.Time
	RefreshExpires  *time.Time
	LastRefreshedAt *time.Time
	Attention       *messages.Attention
	// Failure is why a failed or expired connection ended, and since when.
	Failure         *messages.Attention
	HasRefreshToken bool
	// ProviderType and Strategy are the provider's current ones ("" and nil
	// when its registration is gone). Strategy is how the Gateway applies a
	// static provider's credentials.
	ProviderType messages.ProviderType
	Strategy     *messages.Strategy
	// HasStaticCredentials: sealed static credentials are stored;
	// CredentialSchemaHash is the hash of the provider's schema they were
	// validated against (static.SchemaHash).
	HasStaticCredentials bool
	CredentialSchemaHash string
	// RefreshDue is when the background refresher renews the token (nil:
	// never); RefreshAttempts counts transient failures since the last success.
	RefreshDue      *time.Time
	RefreshAttempts int
	// RefreshInFlightOwner is the vault replica calling the provider for this
	// connection right now, until RefreshInFlightUntil (Locked.TakeRefresh).
	RefreshInFlightOwner string
	RefreshInFlightUntil *time.Time
	// ConfirmBy is set while a consent's tokens or credentials wait for the
	// Gateway's confirmation (Locked.Stage): until then.
	ConfirmBy *time.Time
	// Config is the connection's non-secret config (messages.Connection.Config).
	Config    map[string]string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Message is the connection as the contract describes it.
func (c Connection) Message() messages.Connection {
	scopes := c.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	md := c.Metadata
	if md == nil {
		md = map[string]any{}
	}
	var failure *messages.Attention
	if c.Status == messages.StatusFailed || c.Status == messages.StatusExpired {
		failure = c.Failure
	}
	var cfg map[string]string
	if len(c.Config) > 0 {
		cfg = c.Config
	}
	return messages.Connection{
		ConnectionID:    c.ID,
		Provider:        c.ProviderName,
		ProviderID:      c.ProviderID,
		WorkspaceID:     c.WorkspaceID,
		Status:          c.Status,
		Scopes:          scopes,
		CreatedAt:       c.CreatedAt,
		UpdatedAt:       c.UpdatedAt,
		LastRefreshedAt: c.LastRefreshedAt,
		ExpiresAt:       c.ExpiresAt,
		Attention:       c.Attention,
		Failure:         failure,
		Metadata:        md,
		Config:          cfg,
	}
}

// NotActiveError: the connection cannot be served in its status.
type NotActiveError struct {
	Conn Connection
	// Cause is the provider's refusal that just moved the connection to
	// attention_required, if that is what happened.
	Cause error
}

func (e *NotActiveError) Error() string {
	return fmt.Sprintf("connection %s is %s", e.Conn.ID, e.Conn.Status)
}

func (e *NotActiveError) Unwrap() error { return e.Cause }

// Serveable returns a *NotActiveError unless c is active: only an active
// connection's credentials are handed out.
func (c Connection) Serveable() error {
	if c.Status != messages.StatusActive {
		return &NotActiveError{Conn: c}
	}
	return nil
}

// Tokens are a connection's tokens in plaintext. Zero Refresh on a save
// keeps the stored refresh token.
type Tokens struct {
	Access         secret.Value
	Refresh        secret.Value
	TokenType      string
	ExpiresAt      *time.Time
	RefreshExpires *time.Time
	// Scopes granted, when known; nil keeps what is stored.
	Scopes []string
	// Static is a static connection's credentials, a JSON object (read only:
	// saving tokens never touches them; see Locked.StoreStatic).
	Static secret.Value
	// Config: non-secret values the provider returned with the tokens or
	// on the callback, merged into the connection's config when the tokens
	// are saved (Locked.SetConfig).
	Config map[string]string
	// KeepAlive: refresh at least this often, even while the access token
	// is valid (Quirks.KeepAliveSeconds: providers that kill refresh
	// tokens left unused); 0 for none.
	KeepAlive time.Duration
}

// LogValue keeps the tokens out of logs.
func (t Tokens) LogValue() slog.Value {
	return slog.GroupValue(slog.String("token_type", t.TokenType), slog.String("tokens", "[redacted]"))
}

// Client is a provider's client registration, secret in plaintext.
type Client struct {
	ProviderID         string
	ProviderName       string
	Aliases            []string // other names admin knows the provider by
	Type               messages.ProviderType
	ClientID           string
	ClientSecret       secret.Value
	ClientSecretSet    bool
	ClientAuthMethod   string
	Issuer             string
	TokenEndpoint      string
	RevocationEndpoint string
	JWKSURI            string
	Strategy           *messages.Strategy
	// DefaultTokenLifetimeSeconds: how long an access token lives when the
	// token response has no expires_in; 0 = DefaultTokenLifetime.
	DefaultTokenLifetimeSeconds int
	// Static providers: the JSON Schema (draft 2020-12) credentials must
	// match, and the optional verification request.
	CredentialSchema json.RawMessage
	Verification     *messages.Verification
	// Quirks: how the token endpoint bends RFC 6749 (nil: it does not).
	Quirks *messages.Quirks
	// Health is set while the provider is misconfigured (MarkMisconfigured);
	// nil when it is not.
	Health    *messages.ProviderHealth
	CreatedAt time.Time
	UpdatedAt time.Time
}

// DefaultTokenLifetime is assumed for an access token whose provider said
// nothing about its lifetime and registered no default of its own.
const DefaultTokenLifetime = time.Hour

// TokenLifetime is how long an access token without expires_in lives.
func (c Client) TokenLifetime() time.Duration {
	if c.DefaultTokenLifetimeSeconds > 0 {
		return time.Duration(c.DefaultTokenLifetimeSeconds) * time.Second
	}
	return DefaultTokenLifetime
}

// LogValue keeps the client secret out of logs.
func (c Client) LogValue() slog.Value {
	return slog.GroupValue(slog.String("provider_id", c.ProviderID), slog.String("client_id", c.ClientID), slog.String("client_secret", "[redacted]"))
}
