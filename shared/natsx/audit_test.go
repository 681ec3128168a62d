package natsx_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/testkit"
)

// TestAudit: an audited endpoint gives the service's Audit one record per
// request before it is answered, refusals included, naming the caller (never
// the key), the subject, what the request (or, on success, the reply) names,
// the actor a service acted for, and the outcome. Endpoints not marked
// Audited give none.
func TestAudit(t *testing.T) {
	nc := testkit.Conn(t, testkit.NATS(t))
	callers := apikey.NewSet().Add(apikey.Handshake, []string{key}).Add(apikey.Operator, []string{operatorKey})
	var (
		mu   sync.Mutex
		recs []natsx.AuditRecord
	)
	svc, err := natsx.NewService(nc, natsx.ServiceConfig{
		Name: "audited", Version: "1.0.0", Callers: callers,
		Audit: func(r natsx.AuditRecord) { mu.Lock(); recs = append(recs, r); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	create := func(_ context.Context, r messages.VaultCreateConnection) (messages.Connection, error) {
		if r.ProviderID == "missing" {
			return messages.Connection{}, messages.Errorf(messages.CodeNotFound, "no such provider")
		}
		return messages.Connection{ConnectionID: "conn-new", WorkspaceID: r.WorkspaceID}, nil
	}
	handshake := natsx.For(apikey.Handshake)
	if err := errors.Join(
		natsx.Endpoint(svc, messages.SubjectVaultConnectionsCreate, create, handshake, natsx.Audited()),
		natsx.Endpoint(svc, "v1.vault.quiet", create, handshake),
	); err != nil {
		t.Fatal(err)
	}
	as := func(k string) *natsx.Client { return &natsx.Client{NC: nc, Prefix: messages.DefaultPrefix, APIKey: k} }
	call := func(c *natsx.Client, subject string, body any) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Request(ctx, subject, body, nil)
	}
	body := messages.VaultCreateConnection{ProviderID: "prov", WorkspaceID: "ws", Actor: "0123456789abcdef"}
	call(as(key), messages.SubjectVaultConnectionsCreate, body)
	call(as(key), messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ProviderID: "missing", WorkspaceID: "ws"})
	call(as(operatorKey), messages.SubjectVaultConnectionsCreate, body)
	call(as("an-unknown-key-0123456789"), messages.SubjectVaultConnectionsCreate, body)
	call(as(key), messages.SubjectVaultConnectionsCreate, map[string]any{"secret_field": "s3cret"})
	call(as(key), "v1.vault.quiet", body)

	hs, _ := callers.Identify(key)
	op, _ := callers.Identify(operatorKey)
	want := []natsx.AuditRecord{
		{Caller: hs, Target: "conn-new", Workspace: "ws", Actor: "0123456789abcdef"},
		{Caller: hs, Target: "missing", Workspace: "ws", Code: messages.CodeNotFound},
		{Caller: op, Code: messages.CodeForbidden},
		{Code: messages.CodeUnauthorized},
		{Caller: hs, Code: messages.CodeInvalidRequest},
	}
	// Each record is taken before its reply is sent: in order, and all
	// there once the replies are.
	mu.Lock()
	defer mu.Unlock()
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d: %+v", len(recs), len(want), recs)
	}
	for i, w := range want {
		got := recs[i]
		if got.At.IsZero() || got.Subject != messages.SubjectVaultConnectionsCreate {
			t.Errorf("record %d: %+v", i, got)
		}
		got.At, got.Subject = time.Time{}, ""
		if got != w {
			t.Errorf("record %d = %+v, want %+v", i, got, w)
		}
	}
}
