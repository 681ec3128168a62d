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
	// EventExpired: a consent was not finished within its link's lifetime.
	EventExpired EventType = "expired"
)

// EventTypes lists every event type, in lifecycle order.
var EventTypes = []EventType{EventCreated, EventActive, EventRefreshed, EventAttentionRequired, EventRecovered, EventRevoked, EventFailed, EventExpired}

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

// ProviderEventType is the last token of a provider event subject.
type ProviderEventType string

const (
	// ProviderEventMisconfigured: the token endpoint refused the broker's
	// client itself (invalid_client): the operator must fix the
	// registration. Its connections are left as they are.
	ProviderEventMisconfigured ProviderEventType = "misconfigured"
	// ProviderEventRecovered: a token request succeeded again, or the
	// registration was changed, after misconfigured.
	ProviderEventRecovered ProviderEventType = "recovered"
)

// ProviderEventTypes lists every provider event type.
var ProviderEventTypes = []ProviderEventType{ProviderEventMisconfigured, ProviderEventRecovered}

// FullType is the value of ProviderEvent.Type: nexus.provider.<type>.v1.
func (t ProviderEventType) FullType() string { return "nexus.provider." + string(t) + ".v1" }

// ProviderEvent is the body of a provider event on stream NEXUS_EVENTS;
// its ID is also the Nats-Msg-Id header.
type ProviderEvent struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	ProviderID string    `json:"provider_id"`
	Provider   string    `json:"provider"`
	OccurredAt time.Time `json:"occurred_at"`
	Reason     *Reason   `json:"reason,omitempty"`
}
