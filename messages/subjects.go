// Package messages is the wire contract of Nexus Broker: NATS subjects, request
// and reply bodies, lifecycle events and error codes. It imports only the
// standard library so that the Gateway and downstream services can depend on it
// without pulling in the broker.
package messages

// DefaultPrefix is the first token of every subject unless configured otherwise.
const DefaultPrefix = "nexus"

// Request/reply subjects, relative to the prefix. Use Subject to build the full name.
const (
	// Gateway-facing.
	SubjectHandshakeBegin    = "v1.handshake.begin"
	SubjectConnectionsGet    = "v1.connections.get"
	SubjectConnectionsList   = "v1.connections.list"
	SubjectConnectionsRevoke = "v1.connections.revoke"
	SubjectTokensGet         = "v1.tokens.get"
	SubjectTokensRefresh     = "v1.tokens.refresh"

	// Operator-facing.
	SubjectProvidersCreate = "v1.admin.providers.create"
	SubjectProvidersGet    = "v1.admin.providers.get"
	SubjectProvidersList   = "v1.admin.providers.list"
	SubjectProvidersUpdate = "v1.admin.providers.update"
	SubjectProvidersDelete = "v1.admin.providers.delete"

	// Internal: service to vault. Not for the Gateway; deploy/nats grants them
	// only to the handshake and admin users.
	SubjectVaultConnectionsCreate = "v1.vault.connections.create"
	SubjectVaultConnectionsFail   = "v1.vault.connections.fail"
	SubjectVaultExchange          = "v1.vault.exchange"
	SubjectVaultClientsPut        = "v1.vault.clients.put"
	SubjectVaultClientsDelete     = "v1.vault.clients.delete"

	// SubjectVaultInvalidate is a core-NATS broadcast (no reply) that every vault
	// replica listens to, carrying a connection id whose cached state must go.
	SubjectVaultInvalidate = "v1.vault.invalidate"
)

// Subject joins a prefix and a relative subject: Subject("nexus", SubjectTokensGet)
// is "nexus.v1.tokens.get".
func Subject(prefix, name string) string {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return prefix + "." + name
}

// Events.
const (
	// StreamEvents is the JetStream stream that holds connection lifecycle events.
	StreamEvents = "NEXUS_EVENTS"
	// EventSubjectPrefix, after the prefix, precedes the event type:
	// nexus.events.connection.<type>.
	EventSubjectPrefix = "events.connection."
)

// EventSubject is the subject an event of this type is published on.
func EventSubject(prefix string, t EventType) string {
	return Subject(prefix, EventSubjectPrefix+string(t))
}

// EventsWildcard matches every lifecycle event subject under the prefix.
func EventsWildcard(prefix string) string {
	return Subject(prefix, EventSubjectPrefix+">")
}

// Headers.
const (
	// HeaderAPIKey carries the API key on every Gateway and operator request.
	HeaderAPIKey = "Nexus-Api-Key"
	// HeaderMsgID is JetStream's de-duplication header; events carry their id in it.
	HeaderMsgID = "Nats-Msg-Id"
	// HeaderErrorCode and HeaderError follow the NATS micro error convention.
	HeaderErrorCode = "Nats-Service-Error-Code"
	HeaderError     = "Nats-Service-Error"
)
