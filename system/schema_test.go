package system_test

import (
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/client"
	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/messages/schema"
	"github.com/nexus-broker/nexus/shared/testkit"
	"github.com/nexus-broker/nexus/system/systemtest"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// busTap records what crosses the broker's NATS server, as its observer
// user sees it: every request to a subject of the contract, its reply, and
// every event published.
type busTap struct {
	mu       sync.Mutex
	requests map[string]string // reply inbox -> the request's subject, relative to the prefix
	captured []capturedMsg
}

type capturedMsg struct {
	kind    string // "request", "reply", "error" or "event"
	subject string // the contract subject, or the event subject relative to the prefix
	data    []byte
}

func tapBus(t *testing.T, b *systemtest.Broker, idx schema.Index) *busTap {
	t.Helper()
	tap := &busTap{requests: map[string]string{}}
	spy := testkit.ConnAs(t, b.Infra.NATSURL, testkit.Observer, b.Infra.NATSPasswords[testkit.Observer])
	prefix := messages.DefaultPrefix + "."
	if _, err := spy.Subscribe(">", func(m *nats.Msg) {
		tap.mu.Lock()
		defer tap.mu.Unlock()
		rel, ok := strings.CutPrefix(m.Subject, prefix)
		switch {
		case ok && strings.HasPrefix(rel, "events."):
			tap.captured = append(tap.captured, capturedMsg{"event", rel, m.Data})
		case ok && idx.Subjects[rel] != (schema.Pair{}):
			tap.requests[m.Reply] = rel
			tap.captured = append(tap.captured, capturedMsg{"request", rel, m.Data})
		case tap.requests[m.Subject] != "":
			kind := "reply"
			if m.Header.Get(messages.HeaderErrorCode) != "" {
				kind = "error"
			}
			tap.captured = append(tap.captured, capturedMsg{kind, tap.requests[m.Subject], m.Data})
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	return tap
}

func (tap *busTap) snapshot() []capturedMsg {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	return append([]capturedMsg(nil), tap.captured...)
}

// TestCapturedMessagesMatchSchemas: the broker's real traffic — the
// client's requests to every Gateway subject, an operator's to admin's, the
// replies and error replies, and the lifecycle and provider events the
// refresher publishes — validates against messages/schema, each message
// against the schema index.json names for its subject.
func TestCapturedMessagesMatchSchemas(t *testing.T) {
	idx, err := schema.ReadIndex()
	if err != nil {
		t.Fatal(err)
	}
	v, err := schema.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)
	tap := tapBus(t, b, idx)
	gw := gatewayClient(t, b, gatewayKey, client.WithoutRetry())

	// The operator's side: a provider by issuer, static ones (as a Go
	// client's zero-valued Provider and as a document), the catalog, the
	// audit log, the keys.
	acme, err := b.RegisterOIDC(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Operator.Request(ctx, messages.SubjectProvidersCreate, messages.Provider{
		Name: "example", Type: messages.ProviderStatic,
		CredentialSchema: json.RawMessage(`{"type":"object","required":["api_key"],"properties":{"api_key":{"type":"string","writeOnly":true},"region":{"type":"string"}}}`),
		Strategy:         &messages.Strategy{Type: messages.StrategyHeader, Config: map[string]any{"header": "X-Api-Key"}},
	}, nil); err != nil {
		t.Fatalf("static provider: %v", err)
	}
	var templates messages.ListTemplatesReply
	must(t, "templates.list", b.Operator.Request(ctx, messages.SubjectProvidersTemplatesList, struct{}{}, &templates))
	if len(templates.Templates) == 0 {
		t.Fatal("the catalog is empty")
	}
	must(t, "templates.get", b.Operator.Request(ctx, messages.SubjectProvidersTemplatesGet, messages.TemplateRef{Template: templates.Templates[0].Name}, nil))
	must(t, "providers.get", b.Operator.Request(ctx, messages.SubjectProvidersGet, messages.ProviderRef{Provider: acme.ID}, nil))
	must(t, "providers.update", b.Operator.Request(ctx, messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: "example", Patch: json.RawMessage(`{"aliases":["example-prod"]}`)}, nil))
	must(t, "providers.list", b.Operator.Request(ctx, messages.SubjectProvidersList, messages.ListProvidersRequest{}, nil))
	must(t, "providers.create (spare)", b.Operator.Request(ctx, messages.SubjectProvidersCreate, json.RawMessage(`{"name":"spare","type":"static",
		"credential_schema":{"type":"object","required":["api_key"],"properties":{"api_key":{"type":"string"}}},
		"strategy":{"type":"query_param","config":{"param":"key"}}}`), nil))
	must(t, "providers.delete", b.Operator.Request(ctx, messages.SubjectProvidersDelete, messages.ProviderRef{Provider: "spare"}, nil))

	// The Gateway's side, through the client: an OAuth consent, a static
	// one that needs confirmation, every read, a refresh, a revocation.
	oauth := connectClient(t, ctx, b, gw, "ws-1")
	begin, err := gw.HandshakeBegin(ctx, messages.BeginRequest{Provider: "example", WorkspaceID: "ws-1", ReturnURL: b.Agent.URL + "/return", RequireConfirmation: true, Metadata: map[string]any{"user": "u-1"}})
	must(t, "handshake.begin", err)
	resp, _, err := systemtest.FillForm(systemtest.NewBrowser(), begin.AuthURL, url.Values{"api_key": {"sk-example-0123456789"}, "region": {"eu"}})
	must(t, "the hosted form", err)
	back := resp.Request.URL.Query()
	if back.Get("status") != "pending" || back.Get("confirmation") == "" {
		t.Fatalf("the form came back to %s", resp.Request.URL.Redacted())
	}
	_, err = gw.ConnectionsConfirm(ctx, messages.ConfirmRequest{ConnectionID: begin.ConnectionID, WorkspaceID: "ws-1", Confirmation: back.Get("confirmation")})
	must(t, "connections.confirm", err)
	_, err = gw.TokensGet(ctx, messages.TokenRequest{ConnectionID: begin.ConnectionID, WorkspaceID: "ws-1"})
	must(t, "tokens.get (static)", err)
	_, err = gw.TokensGet(ctx, messages.TokenRequest{ConnectionID: oauth, WorkspaceID: "ws-1", MinValidSeconds: ptr(0)})
	must(t, "tokens.get (oauth)", err)
	_, err = gw.TokensRefresh(ctx, messages.TokenRequest{ConnectionID: oauth, WorkspaceID: "ws-1"})
	must(t, "tokens.refresh", err)
	_, err = gw.ConnectionsGet(ctx, messages.ConnectionRef{ConnectionID: oauth, WorkspaceID: "ws-1"})
	must(t, "connections.get", err)
	_, err = gw.ConnectionsList(ctx, messages.ListConnectionsRequest{WorkspaceID: "ws-1", Limit: 1})
	must(t, "connections.list", err)

	// The provider refuses the broker's client: a provider event, then
	// its recovery once a refresh succeeds again.
	b.Provider.FailTokenRequests(1, 401, nil, `{"error":"invalid_client"}`)
	if _, err := gw.TokensRefresh(ctx, messages.TokenRequest{ConnectionID: oauth, WorkspaceID: "ws-1"}); err == nil {
		t.Fatal("a refresh the provider refused with invalid_client succeeded")
	}
	waitFor(t, "the refresh to be allowed again", 20*time.Second, func() bool {
		_, err := gw.TokensRefresh(ctx, messages.TokenRequest{ConnectionID: oauth, WorkspaceID: "ws-1"})
		return err == nil
	})
	_, err = gw.ConnectionsRevoke(ctx, messages.ConnectionRef{ConnectionID: oauth, WorkspaceID: "ws-1"})
	must(t, "connections.revoke", err)
	if _, err := gw.TokensGet(ctx, messages.TokenRequest{ConnectionID: oauth, WorkspaceID: "ws-1"}); !errors.Is(err, client.ErrNotActive) {
		t.Fatalf("tokens.get of a revoked connection: %v", err)
	}
	if _, err := gw.HandshakeBegin(ctx, messages.BeginRequest{Provider: "acme", WorkspaceID: "ws-1"}); !errors.Is(err, client.ErrInvalidRequest) {
		t.Fatalf("begin without a return_url: %v", err)
	}
	must(t, "audit.list", b.Operator.Request(ctx, messages.SubjectAuditList, messages.AuditListRequest{Limit: 20}, nil))
	must(t, "keys.status", b.Operator.Request(ctx, messages.SubjectKeysStatus, messages.KeysStatusRequest{}, nil))

	// Everything the test did must reach the tap before it is checked:
	// every subject's request and reply, the error replies, the events.
	want := []string{
		"error " + messages.SubjectTokensGet, "error " + messages.SubjectHandshakeBegin, "error " + messages.SubjectTokensRefresh,
		"event " + messages.EventSubjectPrefix + string(messages.EventCreated), "event " + messages.EventSubjectPrefix + string(messages.EventActive),
		"event " + messages.EventSubjectPrefix + string(messages.EventRevoked),
		"event " + messages.ProviderEventSubjectPrefix + string(messages.ProviderEventMisconfigured),
		"event " + messages.ProviderEventSubjectPrefix + string(messages.ProviderEventRecovered),
	}
	for s := range idx.Subjects {
		want = append(want, "request "+s, "reply "+s)
	}
	var missing []string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		covered := map[string]bool{}
		for _, m := range tap.snapshot() {
			covered[m.kind+" "+m.subject] = true
		}
		missing = slices.DeleteFunc(slices.Clone(want), func(w string) bool { return covered[w] })
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(missing) > 0 {
		t.Fatalf("never captured (the test does not cover them): %v", missing)
	}

	for _, m := range tap.snapshot() {
		file := schemaFor(idx, m)
		if file == "" {
			t.Errorf("no schema for the %s on %s", m.kind, m.subject)
			continue
		}
		data := m.data
		if len(data) == 0 && m.kind == "request" {
			data = []byte("{}") // the broker reads an empty body as {}
		}
		if err := v.Validate(file, data); err != nil {
			t.Errorf("the %s on %s does not match %s: %v", m.kind, m.subject, file, err)
		}
	}
}

// schemaFor is the schema file of a captured message, from the index.
func schemaFor(idx schema.Index, m capturedMsg) string {
	switch m.kind {
	case "request":
		return idx.Subjects[m.subject].Request
	case "reply":
		return idx.Subjects[m.subject].Reply
	case "error":
		return idx.Error
	}
	for pattern, file := range idx.Events {
		if strings.HasPrefix(m.subject, strings.TrimSuffix(pattern, ">")) {
			return file
		}
	}
	return ""
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
