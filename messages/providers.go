package messages

import (
	"encoding/json"
	"log/slog"
	"time"
)

// ProviderType is the kind of credential a provider issues.
type ProviderType string

const (
	// ProviderOIDC: OpenID Connect; endpoints come from issuer discovery, and
	// id_tokens are verified.
	ProviderOIDC ProviderType = "oidc"
	// ProviderOAuth2: plain OAuth 2.0 with explicit endpoints.
	ProviderOAuth2 ProviderType = "oauth2"
	// ProviderStatic: API keys and other secrets the user types in a hosted form.
	ProviderStatic ProviderType = "static"
)

// ProviderTypes lists every provider type.
var ProviderTypes = []ProviderType{ProviderOIDC, ProviderOAuth2, ProviderStatic}

// Client authentication methods at the token endpoint (RFC 6749 section 2.3).
const (
	ClientSecretBasic = "client_secret_basic"
	ClientSecretPost  = "client_secret_post"
)

// Provider is a provider document as operators register it. ClientSecret is
// write-only: it is accepted on create and update, handed to the vault, and
// never stored by admin nor returned; ClientSecretSet says whether the vault
// holds one.
type Provider struct {
	ID      string       `json:"id"`
	Name    string       `json:"name"`
	Aliases []string     `json:"aliases"`
	Type    ProviderType `json:"type"`

	// OAuth2 / OIDC. For OIDC, Issuer alone is enough: discovery fills in the
	// endpoints at registration (explicit ones, when given, must agree).
	Issuer                string `json:"issuer,omitempty"`
	AuthorizationEndpoint string `json:"authorization_endpoint,omitempty"`
	TokenEndpoint         string `json:"token_endpoint,omitempty"`
	RevocationEndpoint    string `json:"revocation_endpoint,omitempty"`
	JWKSURI               string `json:"jwks_uri,omitempty"`
	ClientID              string `json:"client_id,omitempty"`
	ClientSecret          string `json:"client_secret,omitempty"`
	ClientSecretSet       bool   `json:"client_secret_set"`
	// ClientSecretDigest is a salted, slow digest of the client secret
	// admin last handed the vault, set by the broker and shown to
	// operators only ("argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<key>",
	// salt and key in unpadded base64url): it lets a client tell whether the
	// secret it holds is the one stored without sending it. Empty when no
	// secret was sent since admin began keeping it.
	ClientSecretDigest  string            `json:"client_secret_digest,omitempty"`
	ClientAuthMethod    string            `json:"client_auth_method,omitempty"`
	Scopes              []string          `json:"scopes"`
	AuthorizationParams map[string]string `json:"authorization_params,omitempty"`
	// DefaultTokenLifetimeSeconds is how long an access token is taken to
	// live when the provider's token response has no expires_in; 0 means
	// the vault's default (3600).
	DefaultTokenLifetimeSeconds int `json:"default_token_lifetime_seconds,omitempty"`

	// The mix-up defence (RFC 9207, RFC 9700 section 4.4). Issuer is every
	// OAuth provider's identifier, unique across providers: an OIDC
	// provider's from discovery; an OAuth2 provider's from its RFC 8414
	// metadata when it has any, else as configured (by default its
	// authorization endpoint's origin). IssParameterSupported: its server
	// sends iss in every authorization response, so a response without one
	// is refused; it is taken from the server's metadata, never turned off
	// by it (only an operator's update can), and a response carrying an iss
	// from a server that does not say it sends one is refused too.
	IssParameterSupported bool `json:"authorization_response_iss_parameter_supported,omitempty"`
	// CallbackPath is where, under PUBLIC_URL, the provider sends people
	// back: register PUBLIC_URL + CallbackPath as the redirect URI. Each
	// provider has its own (/v1/callback/<id>), so a response from another
	// server is told apart even without iss; SharedCallback keeps the one
	// shared path (/v1/callback) of registrations made before.
	CallbackPath   string `json:"callback_path,omitempty"`
	SharedCallback bool   `json:"shared_callback,omitempty"`

	// Static credentials: the JSON Schema (draft 2020-12) of what the user
	// supplies, and how the Gateway applies it.
	CredentialSchema json.RawMessage `json:"credential_schema,omitempty"`
	Strategy         *Strategy       `json:"strategy,omitempty"`
	// Verification, when set, is a request the vault makes with newly
	// submitted credentials before accepting them.
	Verification *Verification `json:"verification,omitempty"`

	// Quirks are how this provider departs from RFC 6749, as data (a
	// catalog template sets them; an operator may too).
	Quirks *Quirks `json:"quirks,omitempty"`
	// Template names the catalog template the provider was created from,
	// and Params the values its placeholders took (a tenant, a subdomain).
	// On providers.create, Template fills every field the request leaves
	// out; the request's own fields win.
	Template string            `json:"template,omitempty"`
	Params   map[string]string `json:"params,omitempty"`
	// Health is the vault's view of the provider's client registration:
	// misconfigured after the token endpoint refused the client itself
	// (invalid_client), until a token request succeeds again or the
	// registration changes. Read-only.
	Health *ProviderHealth `json:"health,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Quirks are the ways a provider's token endpoint bends RFC 6749, as data.
// The zero value is a provider that follows it.
type Quirks struct {
	// PermanentErrors are token endpoint error codes that mean the user's
	// grant is gone, besides invalid_grant and unauthorized_client (Slack's
	// invalid_refresh_token, token_revoked). They are kept and published as
	// the reason's code.
	PermanentErrors []string `json:"permanent_errors,omitempty"`
	// ExpiresInUnit is "s" (the default) or "ms": the unit of expires_in.
	ExpiresInUnit string `json:"expires_in_unit,omitempty"`
	// TokenPath is the dotted path of the JSON object that holds
	// access_token, refresh_token, expires_in and scope, when it is not the
	// top level (Slack user tokens: "authed_user").
	TokenPath string `json:"token_path,omitempty"`
	// OKField: success is a boolean "ok" in the body and an error is
	// {"ok": false, "error": code} on HTTP 200 (Slack).
	OKField bool `json:"ok_field,omitempty"`
	// ConfigFromToken maps a config key to the dotted path of a token
	// response field kept as the connection's non-secret config
	// (Salesforce {"instance_url": "instance_url"}).
	ConfigFromToken map[string]string `json:"config_from_token,omitempty"`
	// ConfigFromCallback maps a config key to a query parameter of the
	// authorization response kept as config (QuickBooks realmId, Zoho
	// accounts-server, Shopify shop).
	ConfigFromCallback map[string]string `json:"config_from_callback,omitempty"`
	// KeepAliveSeconds: refresh at least this often even while the access
	// token is valid, for providers that kill refresh tokens left unused.
	KeepAliveSeconds int `json:"keep_alive_seconds,omitempty"`
	// ConfigFromRequest: values the provider gives only from its API (the
	// tenants of a Xero connection, an Atlassian site's cloud id), read
	// once right after a consent with the new access token.
	ConfigFromRequest *ConfigRequest `json:"config_from_request,omitempty"`
}

// IsZero reports whether q says nothing: the provider follows RFC 6749.
// Empty lists and maps count as absent. A new field of Quirks belongs here.
func (q Quirks) IsZero() bool {
	return len(q.PermanentErrors) == 0 && q.ExpiresInUnit == "" && q.TokenPath == "" && !q.OKField &&
		len(q.ConfigFromToken) == 0 && len(q.ConfigFromCallback) == 0 && q.KeepAliveSeconds == 0 && q.ConfigFromRequest == nil
}

// ConfigRequest is a GET the vault makes once after a consent, with the new
// access token as a Bearer token, to a URL on the same site as the
// provider's token endpoint (the same registrable domain), reading config
// values from its JSON answer.
type ConfigRequest struct {
	URL string `json:"url"`
	// Config maps a config key to the dotted path of a field of the answer;
	// a numeric segment indexes an array ("0.tenantId").
	Config map[string]string `json:"config"`
}

// Provider health statuses.
const (
	ProviderHealthy       = "ok"
	ProviderMisconfigured = "misconfigured"
)

// ProviderHealth says whether the provider's token endpoint accepts the
// broker's client registration.
type ProviderHealth struct {
	Status string `json:"status"`
	// Code is the token endpoint's error code (invalid_client) when
	// misconfigured.
	Code  string     `json:"code,omitempty"`
	Since *time.Time `json:"since,omitempty"`
}

// Template is a catalog entry: a provider document with placeholders
// ({{param}}) in its strings, the params an operator supplies, and notes.
type Template struct {
	Name        string          `json:"name"`
	DisplayName string          `json:"display_name"`
	Description string          `json:"description,omitempty"`
	Docs        string          `json:"docs,omitempty"`
	Params      []TemplateParam `json:"params,omitempty"`
	// Provider is the document the template fills in: everything but the
	// client's id and secret.
	Provider json.RawMessage `json:"provider"`
}

// TemplateParam is a value a template needs from the operator.
type TemplateParam struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Default     string `json:"default,omitempty"`
	Required    bool   `json:"required,omitempty"`
	// Pattern, when set, is a regular expression the value must match
	// whole (a subdomain, a tenant id), so a value cannot change a URL's host.
	Pattern string `json:"pattern,omitempty"`
}

// TemplateRef names a catalog template (providers.templates.get).
type TemplateRef struct {
	Template string `json:"template"`
}

// ListTemplatesReply lists the catalog (providers.templates.list).
type ListTemplatesReply struct {
	Templates []Template `json:"templates"`
}

// LogValue keeps the client secret out of logs.
func (p Provider) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", p.ID), slog.String("name", p.Name), slog.String("type", string(p.Type)))
}

// Callback paths under PUBLIC_URL.
const (
	SharedCallbackPath = "/v1/callback"
	callbackPrefix     = "/v1/callback/"
)

// ProviderCallbackPath is the callback path of provider id.
func ProviderCallbackPath(id string) string { return callbackPrefix + id }

// ProviderRef names a provider by id, name or alias. Body of providers.get and
// providers.delete.
type ProviderRef struct {
	Provider string `json:"provider"`
}

// ProviderUpdate is the body of providers.update: the provider to change (id,
// name or alias) and a JSON merge patch (RFC 7396) over its document.
type ProviderUpdate struct {
	Provider string          `json:"provider"`
	Patch    json.RawMessage `json:"patch"`
}

// ListProvidersRequest is the body of providers.list.
type ListProvidersRequest struct {
	Type   ProviderType `json:"type,omitempty"`
	Limit  int          `json:"limit,omitempty"`
	Cursor string       `json:"cursor,omitempty"`
}

// ListProvidersReply is one page of providers.
type ListProvidersReply struct {
	Providers  []Provider `json:"providers"`
	NextCursor string     `json:"next_cursor"`
}
