package messages

import (
	"log/slog"
	"slices"
	"time"
)

// ConnectionStatus is where a connection is in its lifecycle (docs/ARCHITECTURE.md, section 3).
type ConnectionStatus string

const (
	StatusPending           ConnectionStatus = "pending"
	StatusActive            ConnectionStatus = "active"
	StatusAttentionRequired ConnectionStatus = "attention_required"
	StatusRevoked           ConnectionStatus = "revoked"
	StatusFailed            ConnectionStatus = "failed"
	StatusExpired           ConnectionStatus = "expired"
)

// ConnectionStatuses lists every status, in lifecycle order.
var ConnectionStatuses = []ConnectionStatus{StatusPending, StatusActive, StatusAttentionRequired, StatusRevoked, StatusFailed, StatusExpired}

// Valid reports whether s is one of the known statuses.
func (s ConnectionStatus) Valid() bool { return slices.Contains(ConnectionStatuses, s) }

// Connection is what the broker says about a connection. It never carries a secret.
type Connection struct {
	ConnectionID    string           `json:"connection_id"`
	Provider        string           `json:"provider"`
	ProviderID      string           `json:"provider_id"`
	WorkspaceID     string           `json:"workspace_id"`
	Status          ConnectionStatus `json:"status"`
	Scopes          []string         `json:"scopes"`
	CreatedAt       time.Time        `json:"created_at"`
	UpdatedAt       time.Time        `json:"updated_at"`
	LastRefreshedAt *time.Time       `json:"last_refreshed_at"`
	ExpiresAt       *time.Time       `json:"expires_at"`
	Attention       *Attention       `json:"attention,omitempty"`
	// Failure says why a failed or expired connection ended, in the
	// broker's words.
	Failure  *Attention     `json:"failure,omitempty"`
	Metadata map[string]any `json:"metadata"`
	// Config is what the Gateway needs to call the provider's API that is
	// not a secret: values the provider returned with the tokens or on the
	// callback (Salesforce instance_url, QuickBooks realmId), and the
	// non-secret fields of a static credential its strategy does not apply.
	Config map[string]string `json:"config,omitempty"`
}

// Attention says why a connection needs its user again, and since when.
type Attention struct {
	Code    string    `json:"code"`
	Message string    `json:"message"`
	Since   time.Time `json:"since"`
}

// ConnectionRef names one connection; with WorkspaceID set, a connection of
// another workspace is answered as not_found. Body of connections.get and
// connections.revoke.
type ConnectionRef struct {
	ConnectionID string `json:"connection_id"`
	WorkspaceID  string `json:"workspace_id,omitempty"`
}

// ConfirmRequest is the body of connections.confirm: the one-time value the
// browser brought back to return_url after a consent begun with
// require_confirmation.
type ConfirmRequest struct {
	ConnectionID string `json:"connection_id"`
	WorkspaceID  string `json:"workspace_id,omitempty"`
	Confirmation string `json:"confirmation"`
}

// LogValue keeps the confirmation value out of logs.
func (r ConfirmRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("connection_id", r.ConnectionID), slog.String("confirmation", "[redacted]"))
}

// ListConnectionsRequest is the body of connections.list. Every filter is optional.
type ListConnectionsRequest struct {
	WorkspaceID string           `json:"workspace_id,omitempty"`
	Provider    string           `json:"provider,omitempty"`
	Status      ConnectionStatus `json:"status,omitempty"`
	Limit       int              `json:"limit,omitempty"`
	Cursor      string           `json:"cursor,omitempty"`
}

// ListConnectionsReply is one page; NextCursor is empty on the last page.
type ListConnectionsReply struct {
	Connections []Connection `json:"connections"`
	NextCursor  string       `json:"next_cursor"`
}

// Paging limits for list requests.
const (
	DefaultListLimit = 50
	MaxListLimit     = 500
)
