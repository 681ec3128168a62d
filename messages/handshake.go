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
