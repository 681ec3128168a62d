// Package natsauth is who may do what on the broker's NATS: one user per
// service, the Gateway's, the operators' and a downstream event reader's,
// each allowed only the subjects its job needs. Every user receives replies
// only on its own inbox prefix (_INBOX.<user>), so no user can read a reply
// meant for another, and the services answer requests through the server's
// response permissions (allow_responses) rather than by publishing to
// inboxes. deploy/nats/users.conf is the same table for a standalone
// server (a test keeps them equal); the embedded server of `make run` is
// built from it.
package natsauth

import (
	"fmt"
	"slices"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/nexus-broker/nexus/messages"
)

// The users.
const (
	Vault     = "vault"
	Handshake = "handshake"
	Admin     = "admin"
	Refresher = "refresher"
	Gateway   = "gateway"
	Operator  = "operator"
	// EventReader is the example downstream consumer of NEXUS_EVENTS: it may
	// read the stream through its own durable consumer, named after it, and
	// nothing else. Add one such user per downstream service.
	EventReader = "billing"
)

// OperatorTail is the name of the operator's ephemeral consumer of
// NEXUS_EVENTS (nexus-admin events tail without -durable); its durable one
// is named after the user, as every reader's.
const OperatorTail = "operator-tail"

// Names lists every user, services first.
var Names = []string{Vault, Handshake, Admin, Refresher, Gateway, Operator, EventReader}

// InboxPrefix is where a user receives replies: clients must connect with
// it (nats.go: nats.CustomInboxPrefix; natscli: --inbox-prefix).
func InboxPrefix(user string) string { return "_INBOX." + user }

// Stream is the lifecycle events stream (messages.StreamEvents).
const stream = "NEXUS_EVENTS"

// User is one user's permissions.
type User struct {
	Name      string
	Publish   []string
	Subscribe []string
	// Responder: the user answers requests (allow_responses: one reply
	// per request received, within two minutes).
	Responder bool
}

// Users is the permission table for subjects under prefix ("nexus").
func Users(prefix string) []User {
	p := func(s string) string { return prefix + "." + s }
	srv := func(name string) []string {
		return []string{"$SRV.PING", "$SRV.INFO", "$SRV.STATS", "$SRV.*." + name, "$SRV.*." + name + ".>"}
	}
	inbox := func(user string) string { return InboxPrefix(user) + ".>" }
	// consumer is what a reader needs to read the stream through the
	// consumers named: create, read and delete them, pull and acknowledge.
	consumer := func(names ...string) []string {
		out := []string{"$JS.API.INFO", "$JS.API.STREAM.INFO." + stream}
		for _, name := range names {
			out = append(out, consumerOf(name)...)
		}
		return out
	}
	var contract []string
	for _, s := range messages.GatewaySubjects() {
		contract = append(contract, p(s))
	}
	// The vault answers every contract subject but the handshake's.
	vaultContract := slices.DeleteFunc(slices.Clone(contract), func(s string) bool { return s == p(messages.SubjectHandshakeBegin) })
	return []User{
		{
			Name: Vault,
			// The Gateway's contract subjects the vault answers, its own
			// internal subjects, and its replicas' broadcasts.
			Subscribe: append(append(vaultContract, p("v1.vault.>"), inbox(Vault)), srv("vault")...),
			Publish:   []string{p("v1.vault.outbox.notify")},
			Responder: true,
		},
		{
			Name:      Handshake,
			Subscribe: append([]string{p("v1.handshake.>"), inbox(Handshake)}, srv("handshake")...),
			Publish: []string{
				p("v1.vault.connections.create"), p("v1.vault.connections.fail"), p("v1.vault.exchange"),
				p("v1.vault.static.store"), p("v1.admin.providers.get"),
			},
			Responder: true,
		},
		{
			Name:      Admin,
			Subscribe: append([]string{p("v1.admin.>"), p("events.>"), inbox(Admin)}, srv("admin")...),
			// Admin reads and revokes connections for operators at the
			// vault (the operators' view: no token material), begins a
			// console's re-consent at the handshake, and reads the live
			// events as they are published, with no JetStream API at all.
			Publish: []string{
				p("v1.vault.clients.>"), p("v1.vault.audit.list"), p("v1.vault.keys.status"),
				p("v1.vault.operator.connections.get"), p("v1.vault.operator.connections.list"), p("v1.vault.operator.connections.revoke"),
				p("v1.handshake.begin"),
			},
			Responder: true,
		},
		{
			Name:      Refresher,
			Subscribe: append([]string{p("v1.vault.outbox.notify"), inbox(Refresher)}, srv("refresher")...),
			Publish: []string{
				p("v1.vault.refresh.claim"), p("v1.vault.refresh.run"), p("v1.vault.refresh.defer"),
				p("v1.vault.outbox.claim"), p("v1.vault.outbox.ack"),
				p("events.connection.>"), p("events.provider.>"),
				"$JS.API.INFO", "$JS.API.STREAM.CREATE." + stream, "$JS.API.STREAM.UPDATE." + stream, "$JS.API.STREAM.INFO." + stream,
			},
			Responder: true,
		},
		{
			Name:      Gateway,
			Publish:   append(slices.Clone(contract), consumer(Gateway)...),
			Subscribe: []string{inbox(Gateway)},
		},
		{
			// Admin's subjects, micro discovery, and NEXUS_EVENTS through two
			// consumers of its own (nexus-admin events tail): its durable
			// "operator" and the ephemeral OperatorTail. Consumer names are
			// the only thing NATS permissions can restrict a consumer by, so
			// the names are fixed: an operator can neither read nor change
			// the Gateway's or a reader's consumer.
			Name:      Operator,
			Publish:   append([]string{p("v1.admin.>"), "$SRV.>"}, consumer(Operator, OperatorTail)...),
			Subscribe: []string{inbox(Operator)},
		},
		{
			Name:      EventReader,
			Publish:   consumer(EventReader),
			Subscribe: []string{inbox(EventReader)},
		},
	}
}

// consumerOf is what a reader may do with its consumer name on the stream.
func consumerOf(name string) []string {
	return []string{
		"$JS.API.CONSUMER.CREATE." + stream + "." + name,
		"$JS.API.CONSUMER.CREATE." + stream + "." + name + ".>",
		"$JS.API.CONSUMER.DURABLE.CREATE." + stream + "." + name,
		"$JS.API.CONSUMER.INFO." + stream + "." + name,
		"$JS.API.CONSUMER.DELETE." + stream + "." + name,
		"$JS.API.CONSUMER.MSG.NEXT." + stream + "." + name,
		"$JS.ACK." + stream + "." + name + ".>",
	}
}

// ServerUsers turns the table into nats-server users with the given
// passwords (one per user name; a user without one is left out).
func ServerUsers(prefix string, passwords map[string]string) ([]*server.User, error) {
	var out []*server.User
	for _, u := range Users(prefix) {
		pw := passwords[u.Name]
		if pw == "" {
			continue
		}
		su := &server.User{Username: u.Name, Password: pw, Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: slices.Clone(u.Publish)},
			Subscribe: &server.SubjectPermission{Allow: slices.Clone(u.Subscribe)},
		}}
		if u.Responder {
			su.Permissions.Response = &server.ResponsePermission{MaxMsgs: server.DEFAULT_ALLOW_RESPONSE_MAX_MSGS, Expires: server.DEFAULT_ALLOW_RESPONSE_EXPIRATION}
		}
		out = append(out, su)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("natsauth: no passwords given")
	}
	return out, nil
}
