package messages

import (
	"encoding/json"
	"log/slog"
	"time"
)

// Internal messages between the broker's own services and the vault. They are
// not part of the Gateway's contract; deploy/nats grants the v1.vault.*
// subjects to the handshake and admin users only.

// VaultCreateConnection starts a pending connection (handshake -> vault). With
// ConnectionID set it re-opens that connection for a new consent instead; the
// vault checks it belongs to the same workspace and provider.
type VaultCreateConnection struct {
	ConnectionID string         `json:"connection_id,omitempty"`
	ProviderID   string         `json:"provider_id"`
	WorkspaceID  string         `json:"workspace_id"`
	Scopes       []string       `json:"scopes"`
	Metadata     map[string]any `json:"metadata,omitempty"`
	// Actor is the key id (apikey.Caller.KeyID, a fingerprint, never the
	// key) of the Gateway key whose handshake.begin this consent is; the
	// vault's audit record of the request names it.
	Actor string `json:"actor_key_id,omitempty"`
	// ExpiresAt is when the consent's link expires (BeginReply.ExpiresAt):
	// a connection still pending then (and a short grace for a code
	// exchange in flight) becomes expired, with event expired. Without it
	// the vault keeps a pending consent the longest a link can live. A
	// re-consent of a connection that is not pending leaves it as it is.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// VaultExchange asks the vault to redeem an authorization code (handshake ->
// vault). The code and verifier are single-use secrets; they cross the bus once.
type VaultExchange struct {
	ConnectionID string `json:"connection_id"`
	Code         string `json:"code"`
	CodeVerifier string `json:"code_verifier"`
	RedirectURI  string `json:"redirect_uri"`
	// Nonce is the value sent in the authorization request; an OIDC provider's
	// id_token must carry it.
	Nonce string `json:"nonce,omitempty"`
	// Confirm, for a consent begun with require_confirmation, keeps the
	// tokens aside until the Gateway confirms.
	Confirm *Confirmation `json:"confirm,omitempty"`
	// CallbackParams are the authorization response's query parameters the
	// provider's quirks keep as the connection's config (QuickBooks
	// realmId), at most MaxCallbackParams; the handshake passes on no other.
	CallbackParams map[string]string `json:"callback_params,omitempty"`
}

// MaxCallbackParams bounds VaultExchange.CallbackParams.
const MaxCallbackParams = 16

// Confirmation is how a consent waits for the Gateway's confirmation: the
// SHA-256 of the one-time value the handshake gave the browser (the value
// itself never crosses the bus), and the time after which the consent
// fails unconfirmed.
type Confirmation struct {
	Hash []byte    `json:"hash"`
	By   time.Time `json:"by"`
}

// LogValue keeps the code and verifier out of logs.
func (v VaultExchange) LogValue() slog.Value {
	return slog.GroupValue(slog.String("connection_id", v.ConnectionID), slog.String("code", "[redacted]"))
}

// VaultFailConnection marks a pending connection failed (consent refused,
// callback rejected).
type VaultFailConnection struct {
	ConnectionID string `json:"connection_id"`
	Reason       Reason `json:"reason"`
}

// VaultClient is a provider's client registration as the vault needs it to
// talk to the provider's token and revocation endpoints (admin -> vault).
// The vault keeps the endpoints with the sealed secret so the secret is only
// ever sent where it was registered to go. An empty ClientSecret on update
// keeps the stored one.
type VaultClient struct {
	ProviderID   string `json:"provider_id"`
	ProviderName string `json:"provider_name"`
	// Aliases are the provider's other names, so the vault can resolve a
	// provider named by alias (connections.list's filter).
	Aliases            []string     `json:"aliases,omitempty"`
	Type               ProviderType `json:"type"`
	ClientID           string       `json:"client_id,omitempty"`
	ClientSecret       string       `json:"client_secret,omitempty"`
	ClientAuthMethod   string       `json:"client_auth_method,omitempty"`
	Issuer             string       `json:"issuer,omitempty"`
	TokenEndpoint      string       `json:"token_endpoint,omitempty"`
	RevocationEndpoint string       `json:"revocation_endpoint,omitempty"`
	JWKSURI            string       `json:"jwks_uri,omitempty"`
	Strategy           *Strategy    `json:"strategy,omitempty"`
	// DefaultTokenLifetimeSeconds is how long an access token is taken to
	// live when the provider's token response has no expires_in; 0 means
	// the vault's default (3600).
	DefaultTokenLifetimeSeconds int `json:"default_token_lifetime_seconds,omitempty"`
	// Static providers: the JSON Schema credentials must match, and the
	// optional verification request.
	CredentialSchema json.RawMessage `json:"credential_schema,omitempty"`
	Verification     *Verification   `json:"verification,omitempty"`
	// Quirks of the token endpoint (Provider.Quirks).
	Quirks *Quirks `json:"quirks,omitempty"`
}

// LogValue keeps the client secret out of logs.
func (v VaultClient) LogValue() slog.Value {
	return slog.GroupValue(slog.String("provider_id", v.ProviderID), slog.String("client_id", v.ClientID), slog.String("client_secret", "[redacted]"))
}

// VaultClientReply confirms what the vault holds for a provider.
type VaultClientReply struct {
	ProviderID      string          `json:"provider_id"`
	ClientSecretSet bool            `json:"client_secret_set"`
	Health          *ProviderHealth `json:"health,omitempty"`
}

// VaultClientsHealth asks for the health of providers' client
// registrations (at most MaxListLimit ids).
type VaultClientsHealth struct {
	ProviderIDs []string `json:"provider_ids"`
}

// VaultClientsHealthReply maps each provider id the vault holds a
// registration of to its health.
type VaultClientsHealthReply struct {
	Health map[string]ProviderHealth `json:"health"`
}

// VaultClientRef names a provider's client registration (clients.delete).
type VaultClientRef struct {
	ProviderID string `json:"provider_id"`
}

// VaultConnectionRef names a connection an operator asks about or revokes
// through admin (admin -> vault, vault.operator.connections.get and .revoke). Actor
// is the key id of the operator's key (never the key), for the vault's
// audit record.
type VaultConnectionRef struct {
	ConnectionID string `json:"connection_id"`
	WorkspaceID  string `json:"workspace_id,omitempty"`
	Actor        string `json:"actor_key_id,omitempty"`
}

// VaultListConnections is an operator's connections.list through admin
// (admin -> vault, vault.operator.connections.list); Actor as in VaultConnectionRef.
type VaultListConnections struct {
	WorkspaceID string           `json:"workspace_id,omitempty"`
	Provider    string           `json:"provider,omitempty"`
	Status      ConnectionStatus `json:"status,omitempty"`
	Limit       int              `json:"limit,omitempty"`
	Cursor      string           `json:"cursor,omitempty"`
	Actor       string           `json:"actor_key_id,omitempty"`
}
