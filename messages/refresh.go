package messages

import "time"

// Internal messages between the refresher and the vault. The refresher finds
// work and publishes events; the vault holds the secrets and the database, so
// the refresher never touches either directly. Their subjects are in
// subjects.go.

// RefreshClaim asks for up to Limit due connections, leased to Owner for
// Lease: no other claim returns them until the lease runs out, so a replica
// that dies mid-way leaves nothing stuck.
type RefreshClaim struct {
	Owner        string `json:"owner"`
	Limit        int    `json:"limit"`
	LeaseSeconds int    `json:"lease_seconds"`
}

// RefreshItem is one claimed connection.
type RefreshItem struct {
	ConnectionID string    `json:"connection_id"`
	ProviderID   string    `json:"provider_id"`
	TokenVersion int64     `json:"token_version"`
	ExpiresAt    time.Time `json:"expires_at"`
	// Attempts counts transient failures since the last success.
	Attempts int `json:"attempts"`
}

// RefreshClaimReply lists the leased connections, most urgent first.
// RunTimeoutSeconds is how long the vault takes at most to answer a run that
// does not queue behind another refresh of its connection (the provider
// call and storing its result): a refresher with no answer by then (and a
// margin) is waiting for a vault that died, and retries shortly; a retry of
// a run that merely queued joins the refresh in flight.
type RefreshClaimReply struct {
	Items             []RefreshItem `json:"items"`
	RunTimeoutSeconds int           `json:"run_timeout_seconds,omitempty"`
}

// RefreshRun refreshes one connection unless its token changed since
// TokenVersion (another caller already refreshed it).
type RefreshRun struct {
	ConnectionID string `json:"connection_id"`
	TokenVersion int64  `json:"token_version"`
}

// RefreshOutcome says what a run did.
type RefreshOutcome string

const (
	RefreshDone      RefreshOutcome = "refreshed"          // new token stored
	RefreshNotNeeded RefreshOutcome = "not_needed"         // someone else refreshed, or not active any more
	RefreshAttention RefreshOutcome = "attention_required" // permanent failure; the connection needs its user
	RefreshTransient RefreshOutcome = "transient"          // timeout, 5xx, 429: try again later
)

// RefreshRunReply is the result of a run. For RefreshTransient,
// RetryAfterSeconds is the provider's Retry-After when it sent one, and
// Attempts the number of transient failures in a row.
type RefreshRunReply struct {
	ConnectionID      string         `json:"connection_id"`
	Outcome           RefreshOutcome `json:"outcome"`
	ExpiresAt         *time.Time     `json:"expires_at,omitempty"`
	RetryAfterSeconds int            `json:"retry_after_seconds,omitempty"`
	Attempts          int            `json:"attempts,omitempty"`
	Reason            *Reason        `json:"reason,omitempty"`
}

// RefreshDefer schedules the next attempt of a connection no sooner than Until.
type RefreshDefer struct {
	ConnectionID string    `json:"connection_id"`
	Until        time.Time `json:"until"`
}

// OutboxClaim asks for up to Limit unpublished events, leased to Owner.
type OutboxClaim struct {
	Owner        string `json:"owner"`
	Limit        int    `json:"limit"`
	LeaseSeconds int    `json:"lease_seconds"`
}

// OutboxClaimReply carries the events to publish, oldest first: connection
// lifecycle events, and provider events (ProviderEvent) apart.
type OutboxClaimReply struct {
	Events         []Event         `json:"events"`
	ProviderEvents []ProviderEvent `json:"provider_events,omitempty"`
}

// OutboxAck marks events as published.
type OutboxAck struct {
	IDs []string `json:"ids"`
}

// OutboxAckReply says how many were marked.
type OutboxAckReply struct {
	Acked int `json:"acked"`
}
