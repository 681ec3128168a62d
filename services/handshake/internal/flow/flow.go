// Package flow keeps pending consent flows in Redis: sealed, expiring and
// single-use.
package flow

import (
	"encoding/json"
	"log/slog"
	"time"

	"github.com/nexus-broker/nexus/messages"
)

// Flow is everything the connect page and the callback need to finish one
// consent. Verifier and Nonce are secrets of the flow: they are sealed at rest
// and only the verifier's S256 challenge and the nonce leave in the
// authorization request.
type Flow struct {
	ConnectionID string                `json:"connection_id"`
	WorkspaceID  string                `json:"workspace_id"`
	ProviderID   string                `json:"provider_id"`
	ProviderType messages.ProviderType `json:"provider_type"`

	AuthorizationEndpoint string            `json:"authorization_endpoint"`
	ClientID              string            `json:"client_id"`
	Scopes                []string          `json:"scopes"`
	AuthorizationParams   map[string]string `json:"authorization_params,omitempty"`
	RedirectURI           string            `json:"redirect_uri"`

	Verifier string `json:"verifier"`
	Nonce    string `json:"nonce,omitempty"`

	// ExpectedIssuer is compared with the callback's iss (RFC 9207); when
	// IssRequired, the callback must carry one.
	ExpectedIssuer string `json:"expected_issuer,omitempty"`
	IssRequired    bool   `json:"iss_required,omitempty"`
	// CallbackParams are the callback query parameters the provider's
	// quirks keep as config (QuickBooks realmId): the only ones passed on
	// to the vault.
	CallbackParams []string `json:"callback_params,omitempty"`

	// Static providers: the provider's name for the page, and the credential
	// schema the hosted form is generated from and validated against (the
	// schema of the time the consent began, so the page and its checks agree).
	ProviderName     string          `json:"provider_name,omitempty"`
	CredentialSchema json.RawMessage `json:"credential_schema,omitempty"`
	// SecretFields are the secret credential fields the provider's strategy
	// applies (messages.StrategyField.Secret); the form masks them.
	SecretFields []string `json:"secret_fields,omitempty"`

	ReturnURL string    `json:"return_url"`
	ExpiresAt time.Time `json:"expires_at"`

	// RequireConfirmation: the consent waits for the Gateway's
	// connections.confirm (messages.BeginRequest).
	RequireConfirmation bool `json:"require_confirmation,omitempty"`
	// Confirmation is the one-time value the browser takes back to the app
	// at the end of such a consent. It is made then and never stored.
	Confirmation string `json:"-"`
}

// Kept is what of a callback's other parameters goes to the vault: those
// named in CallbackParams, nil when none.
func (f Flow) Kept(params map[string]string) map[string]string {
	var out map[string]string
	for _, name := range f.CallbackParams {
		if v, ok := params[name]; ok {
			if out == nil {
				out = map[string]string{}
			}
			out[name] = v
		}
	}
	return out
}

// LogValue keeps the verifier and nonce out of logs.
func (f Flow) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("connection_id", f.ConnectionID),
		slog.String("provider_id", f.ProviderID),
		slog.Time("expires_at", f.ExpiresAt),
		slog.String("verifier", "[redacted]"))
}

// Expired reports whether the flow is past its expiry at now.
func (f Flow) Expired(now time.Time) bool { return !now.Before(f.ExpiresAt) }
