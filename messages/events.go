package messages

import "time"

// EventType is the last token of an event subject.
type EventType string

const (
	EventCreated           EventType = "created"
	EventActive            EventType = "active"
	EventRefreshed         EventType = "refreshed"
	EventAttentionRequired EventType = "attention_required"
	EventRecovered         EventType = "recovered"
	EventRevoked           EventType = "revoked"
	EventFailed            EventType = "failed"
)

// EventTypes lists every event type, in lifecycle order.
var EventTypes = []EventType{EventCreated, EventActive, EventRefreshed, EventAttentionRequired, EventRecovered, EventRevoked, EventFailed}

// FullType is the value of Event.Type: nexus.connection.<type>.v1.
func (t EventType) FullType() string { return "nexus.connection." + string(t) + ".v1" }

// Event is the body of a lifecycle event on stream NEXUS_EVENTS. Its ID is
// also the Nats-Msg-Id header, so JetStream drops a re-published duplicate.
type Event struct {
	ID           string    `json:"id"`
	Type         string    `json:"type"`
	ConnectionID string    `json:"connection_id"`
	Provider     string    `json:"provider"`
	WorkspaceID  string    `json:"workspace_id"`
	OccurredAt   time.Time `json:"occurred_at"`
	Reason       *Reason   `json:"reason,omitempty"`
}

// Reason says why a connection changed state, in words a person can act on.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
