package messages

import "time"

// BeginRequest is the body of handshake.begin. With ConnectionID set, the user
// re-consents that existing connection (same workspace and provider) instead
// of creating a new one.
type BeginRequest struct {
	Provider     string         `json:"provider"`
	WorkspaceID  string         `json:"workspace_id"`
	Scopes       []string       `json:"scopes,omitempty"`
	ReturnURL    string         `json:"return_url"`
	Metadata     map[string]any `json:"metadata,omitempty"`
	ConnectionID string         `json:"connection_id,omitempty"`
	// RequireConfirmation binds the consent to the person the app started
	// it for: after the provider, the browser returns to return_url with
	// status=pending and a one-time confirmation value, and the connection
	// (or, for a re-consent, its new tokens) waits until the Gateway sends
	// that value with connections.confirm. Unconfirmed within the consent
	// link's lifetime, it fails.
	RequireConfirmation bool `json:"require_confirmation,omitempty"`
}

// BeginReply tells the Gateway where to send the user and until when that link works.
type BeginReply struct {
	ConnectionID string    `json:"connection_id"`
	AuthURL      string    `json:"auth_url"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// MaxMetadataBytes bounds a connection's metadata as JSON, so that a page
// of connections.list always fits in one NATS message.
const MaxMetadataBytes = 8 << 10
