package system_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/system/systemtest"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// TestIncrementalConsent: handshake.begin naming an active connection with
// a scope it was not granted asks the provider for that scope and for every
// scope the connection holds, and the connection ends up granted the union.
func TestIncrementalConsent(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)
	if _, err := b.RegisterOIDC(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	q, err := b.Connect(ctx, "acme", "ws-1")
	if err != nil || q.Get("status") != "active" {
		t.Fatalf("first consent: %v %v", q, err)
	}
	id := q.Get("connection_id")
	granted := []string{"openid", "offline_access", "profile"}
	get := func() messages.Connection {
		t.Helper()
		var c messages.Connection
		if err := b.Gateway.Request(ctx, messages.SubjectConnectionsGet, messages.ConnectionRef{ConnectionID: id, WorkspaceID: "ws-1"}, &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := get(); !sameSet(c.Scopes, granted) {
		t.Fatalf("first grant = %v", c.Scopes)
	}

	// As an MCP client does on insufficient_scope: ask for the one scope missing.
	var begin messages.BeginReply
	if err := b.Gateway.Request(ctx, messages.SubjectHandshakeBegin, messages.BeginRequest{
		Provider: "acme", WorkspaceID: "ws-1", ReturnURL: b.Agent.URL + "/return", ConnectionID: id, Scopes: []string{"email"},
	}, &begin); err != nil {
		t.Fatal(err)
	}
	resp, err := systemtest.NewBrowser().Get(begin.AuthURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Request.URL.Query(); got.Get("status") != "active" || got.Get("connection_id") != id {
		t.Fatalf("re-consent landed at %s", resp.Request.URL.Redacted())
	}
	auths := b.Provider.AuthorizeRequests()
	want := append(slices.Clone(granted), "email")
	if asked := strings.Fields(auths[len(auths)-1].Get("scope")); !sameSet(asked, want) {
		t.Fatalf("the provider was asked for %v, want the union %v", asked, want)
	}
	if c := get(); c.Status != messages.StatusActive || !sameSet(c.Scopes, want) {
		t.Fatalf("after the re-consent: %s %v, want %v", c.Status, c.Scopes, want)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestStaticRecoversFromAMistypedKey: a key the provider's verification
// request refuses shows the hosted form again, in the broker's words; the
// connection stays pending, and the corrected key completes it through the
// same link. The form's other fields become the connection's config.
func TestStaticRecoversFromAMistypedKey(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)
	const apiKey = "sk-live-0a1b2c3d4e5f60718293"
	var down atomic.Bool
	down.Store(true)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case down.Load():
			w.WriteHeader(http.StatusBadGateway)
		case r.Header.Get("X-Api-Key") != apiKey:
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"provider text that must not be shown"}`))
		}
	}))
	defer api.Close()
	if err := b.Operator.Request(ctx, messages.SubjectProvidersCreate, messages.Provider{
		Name: "zendesk", Type: messages.ProviderStatic,
		CredentialSchema: json.RawMessage(`{"type":"object","required":["api_key","subdomain"],"properties":{
			"api_key":{"type":"string","writeOnly":true},"subdomain":{"type":"string","title":"Subdomain"}}}`),
		Strategy:     &messages.Strategy{Type: messages.StrategyHeader, Config: map[string]any{"header": "X-Api-Key"}},
		Verification: &messages.Verification{URL: api.URL + "/me"},
	}, nil); err != nil {
		t.Fatal(err)
	}
	begin, err := b.Begin(ctx, "zendesk", "ws-1")
	if err != nil {
		t.Fatal(err)
	}
	status := func() messages.Connection {
		t.Helper()
		var c messages.Connection
		if err := b.Gateway.Request(ctx, messages.SubjectConnectionsGet, messages.ConnectionRef{ConnectionID: begin.ConnectionID, WorkspaceID: "ws-1"}, &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	br := systemtest.NewBrowser()
	for _, tc := range []struct{ key, want string }{
		{apiKey, "The service could not be reached; try again."},
		{"sk-live-mistyped-000", "These credentials were refused. Check them and try again."},
	} {
		resp, body, err := systemtest.FillForm(br, begin.AuthURL, url.Values{"api_key": {tc.key}, "subdomain": {"acme"}})
		if err != nil || resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, tc.want) ||
			strings.Contains(body, "provider text") || strings.Contains(body, tc.key) {
			t.Fatalf("%s: %v HTTP %d: %s", tc.want, err, resp.StatusCode, body)
		}
		if c := status(); c.Status != messages.StatusPending {
			t.Fatalf("after %q the connection is %s", tc.want, c.Status)
		}
		down.Store(false)
	}
	resp, _, err := systemtest.FillForm(br, begin.AuthURL, url.Values{"api_key": {apiKey}, "subdomain": {"acme"}})
	if err != nil || resp.Request.URL.Query().Get("status") != "active" {
		t.Fatalf("corrected key: %v, landed at %s", err, resp.Request.URL.Redacted())
	}
	var cred messages.Credential
	if err := b.Gateway.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: begin.ConnectionID, WorkspaceID: "ws-1"}, &cred); err != nil {
		t.Fatal(err)
	}
	if cred.Credentials["api_key"] != apiKey || len(cred.Credentials) != 1 || cred.Config["subdomain"] != "acme" {
		t.Fatalf("credential: %v config %v", cred.Credentials, cred.Config)
	}
	if c := status(); c.Config["subdomain"] != "acme" {
		t.Fatalf("connections.get config = %v", c.Config)
	}
}

// TestCallbackConfig: a provider that sends a value the Gateway needs only
// on the callback (QuickBooks' realmId): its quirks name it, the browser
// brings it, the handshake passes it on, and the connection keeps it as
// config, returned with every credential. Parameters not named are dropped.
func TestCallbackConfig(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)
	if _, err := b.RegisterOIDC(ctx, "books"); err != nil {
		t.Fatal(err)
	}
	var p messages.Provider
	if err := b.Operator.Request(ctx, messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: "books",
		Patch: json.RawMessage(`{"quirks":{"config_from_callback":{"realm_id":"realmId"}}}`)}, &p); err != nil {
		t.Fatal(err)
	}
	b.Provider.AddNextCallbackParams(map[string]string{"realmId": "9130", "intuit_tid": "not-asked-for"})
	q, err := b.Connect(ctx, "books", "ws-1")
	if err != nil || q.Get("status") != "active" {
		t.Fatalf("consent: %v %v", q, err)
	}
	var c messages.Connection
	if err := b.Gateway.Request(ctx, messages.SubjectConnectionsGet, messages.ConnectionRef{ConnectionID: q.Get("connection_id"), WorkspaceID: "ws-1"}, &c); err != nil {
		t.Fatal(err)
	}
	var cred messages.Credential
	if err := b.Gateway.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: c.ConnectionID, WorkspaceID: "ws-1"}, &cred); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"realm_id": "9130"}
	if !maps.Equal(c.Config, want) || !maps.Equal(cred.Config, want) {
		t.Fatalf("config: connection %v, credential %v, want %v", c.Config, cred.Config, want)
	}
}
