// Package messages is the wire contract of Nexus Broker: NATS subjects, request
// and reply bodies, lifecycle events and error codes. It imports only the
// standard library so that the Gateway and downstream services can depend on it
// without pulling in the broker.
package messages

// DefaultPrefix is the first token of every subject unless configured otherwise.
const DefaultPrefix = "nexus"

// Every subject of the broker is in this file: the contract's, the internal
// ones between the broker's own services, and the event subjects. Names are
// relative to the prefix; Subject builds the full name.

// GatewaySubjects are the contract's request/reply subjects, every one the
// Gateway may call: handshake.begin (the handshake's), then the vault's.
func GatewaySubjects() []string {
	return []string{
		SubjectHandshakeBegin,
		SubjectConnectionsGet, SubjectConnectionsList, SubjectConnectionsRevoke, SubjectConnectionsConfirm,
		SubjectTokensGet, SubjectTokensRefresh,
	}
}

// Request/reply subjects.
const (
	// Gateway-facing.
	SubjectHandshakeBegin    = "v1.handshake.begin"
	SubjectConnectionsGet    = "v1.connections.get"
	SubjectConnectionsList   = "v1.connections.list"
	SubjectConnectionsRevoke = "v1.connections.revoke"
	// SubjectConnectionsConfirm: the Gateway confirms a consent begun with
	// require_confirmation, with the value the browser brought back.
	SubjectConnectionsConfirm = "v1.connections.confirm"
	SubjectTokensGet          = "v1.tokens.get"
	SubjectTokensRefresh      = "v1.tokens.refresh"

	// Operator-facing.
	SubjectProvidersCreate = "v1.admin.providers.create"
	SubjectProvidersGet    = "v1.admin.providers.get"
	SubjectProvidersList   = "v1.admin.providers.list"
	SubjectProvidersUpdate = "v1.admin.providers.update"
	SubjectProvidersDelete = "v1.admin.providers.delete"
	// SubjectAuditList: the audit records of credential releases, consents,
	// revocations and admin changes, newest first.
	SubjectAuditList = "v1.admin.audit.list"
	// SubjectKeysStatus: what is sealed under each encryption key, and
	// whether a key rotation is complete (admin relays the vault's answer).
	SubjectKeysStatus = "v1.admin.keys.status"
	// The operators' view of connections (no token material): admin
	// relays them to the vault's v1.vault.operator.connections.{get,list,revoke}.
	SubjectAdminConnectionsGet    = "v1.admin.connections.get"
	SubjectAdminConnectionsList   = "v1.admin.connections.list"
	SubjectAdminConnectionsRevoke = "v1.admin.connections.revoke"
	// The provider catalog: templates providers.create can start from.
	SubjectProvidersTemplatesList = "v1.admin.providers.templates.list"
	SubjectProvidersTemplatesGet  = "v1.admin.providers.templates.get"

	// Internal, handshake -> vault (vault.go): start, fail and complete a
	// consent. Not for the Gateway; deploy/nats grants them to the handshake.
	SubjectVaultConnectionsCreate = "v1.vault.connections.create"
	SubjectVaultConnectionsFail   = "v1.vault.connections.fail"
	SubjectVaultExchange          = "v1.vault.exchange"
	// SubjectVaultStaticStore: the static credentials a user just typed in
	// the hosted form, handed to the vault once (static.go).
	SubjectVaultStaticStore = "v1.vault.static.store"

	// Internal, admin -> vault (vault.go): provider client registrations and
	// their secrets.
	SubjectVaultClientsPut    = "v1.vault.clients.put"
	SubjectVaultClientsDelete = "v1.vault.clients.delete"
	// SubjectVaultClientsHealth: whether providers' token endpoints accept
	// the broker's clients, for admin's providers.get and list.
	SubjectVaultClientsHealth = "v1.vault.clients.health"
	// SubjectVaultAuditList: the vault's audit records, for admin's audit.list.
	SubjectVaultAuditList = "v1.vault.audit.list"
	// SubjectVaultKeysStatus: the vault's answer to admin's keys.status.
	SubjectVaultKeysStatus = "v1.vault.keys.status"
	// The vault's answers to admin's connections.{get,list,revoke}, for an
	// operator (VaultConnectionRef, VaultListConnections).
	SubjectVaultOperatorConnectionsGet    = "v1.vault.operator.connections.get"
	SubjectVaultOperatorConnectionsList   = "v1.vault.operator.connections.list"
	SubjectVaultOperatorConnectionsRevoke = "v1.vault.operator.connections.revoke"

	// Internal, refresher -> vault (refresh.go).
	// SubjectVaultRefreshClaim: lease a batch of connections whose refresh is due.
	SubjectVaultRefreshClaim = "v1.vault.refresh.claim"
	// SubjectVaultRefreshRun: refresh one claimed connection now.
	SubjectVaultRefreshRun = "v1.vault.refresh.run"
	// SubjectVaultRefreshDefer: after a transient failure, try again no sooner than a time.
	SubjectVaultRefreshDefer = "v1.vault.refresh.defer"
	// SubjectVaultOutboxClaim: lease a batch of unpublished lifecycle events.
	SubjectVaultOutboxClaim = "v1.vault.outbox.claim"
	// SubjectVaultOutboxAck: mark events published (JetStream acknowledged them).
	SubjectVaultOutboxAck = "v1.vault.outbox.ack"
)

// Broadcasts: core NATS, no body beyond what is said, no reply.
const (
	// SubjectVaultOutboxNotify: the vault publishes it (no body) after every
	// transaction that wrote an outbox event, so a refresher relays at once
	// instead of at its next poll. Losing one costs only latency.
	SubjectVaultOutboxNotify = "v1.vault.outbox.notify"
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
	// StreamEvents is the JetStream stream that holds connection lifecycle
	// events and provider events.
	StreamEvents = "NEXUS_EVENTS"
	// EventSubjectPrefix, after the prefix, precedes the event type:
	// nexus.events.connection.<type>.
	EventSubjectPrefix = "events.connection."
	// ProviderEventSubjectPrefix precedes a provider event's type:
	// nexus.events.provider.<type> (ProviderEventType).
	ProviderEventSubjectPrefix = "events.provider."
)

// ProviderEventsWildcard matches every provider event subject under the prefix.
func ProviderEventsWildcard(prefix string) string {
	return Subject(prefix, ProviderEventSubjectPrefix+">")
}

// ProviderEventSubject is the subject a provider event of this type is
// published on.
func ProviderEventSubject(prefix string, t ProviderEventType) string {
	return Subject(prefix, ProviderEventSubjectPrefix+string(t))
}

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
