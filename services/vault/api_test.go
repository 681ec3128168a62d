package vault_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsx"
)

var allSubjects = []string{
	messages.SubjectConnectionsGet, messages.SubjectConnectionsList, messages.SubjectConnectionsRevoke,
	messages.SubjectTokensGet, messages.SubjectTokensRefresh,
	messages.SubjectVaultConnectionsCreate, messages.SubjectVaultConnectionsFail, messages.SubjectVaultExchange,
	messages.SubjectVaultClientsPut, messages.SubjectVaultClientsDelete, messages.SubjectVaultStaticStore,
	messages.SubjectVaultClientsHealth,
}

func raw(t *testing.T, e *env, subject string, body []byte, key string) error {
	t.Helper()
	msg := nats.NewMsg(messages.Subject(messages.DefaultPrefix, subject))
	msg.Data = body
	if key != "" {
		msg.Header.Set(messages.HeaderAPIKey, key)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := e.nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	return natsx.DecodeReply(resp, &json.RawMessage{})
}

func TestMalformedRequestsAndAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noProvider: true})
	for _, subject := range allSubjects {
		for _, body := range []string{"{", "[]", `{"connection_id":5,"workspace_id":5,"provider_id":5}`, `{} {}`, "null x", `{"connection_id":"x","unknown_field":1}`} {
			t.Run(fmt.Sprintf("%s %q", subject, body), func(t *testing.T) {
				wantCode(t, raw(t, e, subject, []byte(body), keyFor(subject)), messages.ErrInvalidRequest)
			})
		}
		// An empty body is {}: fine where every field is optional, else it
		// names the field that is missing.
		t.Run(subject+" empty body", func(t *testing.T) {
			err := raw(t, e, subject, nil, keyFor(subject))
			if subject == messages.SubjectConnectionsList {
				if err != nil {
					t.Fatalf("connections.list with an empty body: %v", err)
				}
				return
			}
			wantCode(t, err, messages.ErrInvalidRequest)
			if !strings.Contains(err.Error(), "required") {
				t.Fatalf("the error does not say what is missing: %v", err)
			}
		})
		t.Run(subject+" without key", func(t *testing.T) {
			wantCode(t, raw(t, e, subject, []byte(`{}`), ""), messages.ErrUnauthorized)
		})
		t.Run(subject+" wrong key", func(t *testing.T) {
			wantCode(t, raw(t, e, subject, []byte(`{}`), "wrong-key-0123456789"), messages.ErrUnauthorized)
		})
	}
}

func TestUnknownIDsAndWorkspaces(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	for _, id := range []string{"", "nope", "0190b5c4-0000-7000-8000-000000000000", "../../etc", "0190B5C4-0000-7000-8000-00000000000Z", c.ConnectionID + "x"} {
		want := messages.ErrNotFound
		if id == "" {
			want = messages.ErrInvalidRequest // connection_id is required
		}
		for _, subject := range []string{messages.SubjectConnectionsGet, messages.SubjectConnectionsRevoke, messages.SubjectTokensGet, messages.SubjectTokensRefresh, messages.SubjectVaultConnectionsFail} {
			t.Run(subject+" "+id, func(t *testing.T) {
				wantCode(t, e.call(subject, map[string]any{"connection_id": id}, nil), want)
			})
		}
		t.Run("exchange "+id, func(t *testing.T) {
			wantCode(t, e.call(messages.SubjectVaultExchange, messages.VaultExchange{ConnectionID: id, Code: "c", CodeVerifier: "v", RedirectURI: redirectURI}, nil), want)
		})
	}
	// Another workspace: not_found, served from the cache or not.
	if _, err := e.token(c.ConnectionID, intp(0)); err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{messages.SubjectConnectionsGet, messages.SubjectConnectionsRevoke, messages.SubjectTokensGet, messages.SubjectTokensRefresh} {
		t.Run(subject+" other workspace", func(t *testing.T) {
			wantCode(t, e.call(subject, map[string]any{"connection_id": c.ConnectionID, "workspace_id": "ws-other"}, nil), messages.ErrNotFound)
		})
		t.Run(subject+" own workspace", func(t *testing.T) {
			if subject == messages.SubjectConnectionsRevoke {
				return
			}
			if err := e.call(subject, map[string]any{"connection_id": c.ConnectionID, "workspace_id": workspace}, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
	if got := e.get(c.ConnectionID); got.Status != messages.StatusActive {
		t.Fatalf("a request from another workspace changed the connection: %s", got.Status)
	}
	// Re-consent: another workspace is not found, another provider invalid.
	e.putClient(apiKeyClient("other", "other"))
	wantCode(t, e.call(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ConnectionID: c.ConnectionID, ProviderID: providerID, WorkspaceID: "ws-other"}, nil), messages.ErrNotFound)
	wantCode(t, e.call(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ConnectionID: c.ConnectionID, ProviderID: "other", WorkspaceID: workspace}, nil), messages.ErrInvalidRequest)
	wantCode(t, e.call(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ProviderID: "unknown", WorkspaceID: workspace}, nil), messages.ErrNotFound)
	wantCode(t, e.call(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ProviderID: providerID}, nil), messages.ErrInvalidRequest)
}

func TestFailConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := e.create(workspace)
	var got messages.Connection
	for range 2 { // idempotent
		e.mustCall(messages.SubjectVaultConnectionsFail, messages.VaultFailConnection{ConnectionID: p.ConnectionID, Reason: messages.Reason{Code: "access_denied", Message: "denied"}}, &got)
		if got.Status != messages.StatusFailed {
			t.Fatalf("fail pending: %+v", got)
		}
	}
	evs := e.events(p.ConnectionID)
	if len(evs) != 2 || evs[1].Reason == nil || evs[1].Reason.Code != "access_denied" {
		t.Fatalf("events = %+v", evs)
	}
	// A failed re-consent leaves an active connection and its tokens alone.
	a := e.connect(workspace)
	before := e.rawRow(a.ConnectionID)
	e.mustCall(messages.SubjectVaultConnectionsFail, messages.VaultFailConnection{ConnectionID: a.ConnectionID, Reason: messages.Reason{Code: "access_denied"}}, &got)
	if got.Status != messages.StatusActive || e.rawRow(a.ConnectionID) != before {
		t.Fatalf("fail touched an active connection: %+v", got)
	}
	if _, err := e.token(a.ConnectionID, nil); err != nil {
		t.Fatal(err)
	}
	// A failed exchange during a re-consent also leaves it active.
	var reopened messages.Connection
	e.mustCall(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ConnectionID: a.ConnectionID, ProviderID: providerID, WorkspaceID: workspace, Scopes: []string{"openid"}}, &reopened)
	e.op.FailTokenRequests(1, 400, nil, `{"error":"invalid_grant"}`)
	_, err := e.exchange(a.ConnectionID, authorization{code: "c", verifier: "v", nonce: "n"})
	wantCode(t, err, messages.ErrProviderError)
	if got := e.get(a.ConnectionID); got.Status != messages.StatusActive {
		t.Fatalf("failed re-consent: %s", got.Status)
	}
}

func TestListConnections(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	var ids []string
	for i := range 5 {
		ws := "ws-a"
		if i%2 == 1 {
			ws = "ws-b"
		}
		ids = append(ids, e.create(ws).ConnectionID)
	}
	e.putClient(apiKeyClient("static-1", "keys"))
	var other messages.Connection
	e.mustCall(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ProviderID: "static-1", WorkspaceID: "ws-a"}, &other)
	var failed messages.Connection
	e.mustCall(messages.SubjectVaultConnectionsFail, messages.VaultFailConnection{ConnectionID: ids[0]}, &failed)

	list := func(req messages.ListConnectionsRequest) messages.ListConnectionsReply {
		t.Helper()
		var r messages.ListConnectionsReply
		e.mustCall(messages.SubjectConnectionsList, req, &r)
		return r
	}
	all := func(req messages.ListConnectionsRequest) []string {
		t.Helper()
		var out []string
		for {
			r := list(req)
			for _, c := range r.Connections {
				out = append(out, c.ConnectionID)
			}
			if r.NextCursor == "" {
				return out
			}
			req.Cursor = r.NextCursor
		}
	}
	tests := []struct {
		name string
		req  messages.ListConnectionsRequest
		want []string
	}{
		{"everything in pages of 2", messages.ListConnectionsRequest{Limit: 2}, append(slices.Clone(ids), other.ConnectionID)},
		{"workspace", messages.ListConnectionsRequest{WorkspaceID: "ws-b", Limit: 1}, []string{ids[1], ids[3]}},
		{"provider by id", messages.ListConnectionsRequest{Provider: "static-1"}, []string{other.ConnectionID}},
		{"provider by name", messages.ListConnectionsRequest{Provider: "test-provider", WorkspaceID: "ws-a"}, []string{ids[0], ids[2], ids[4]}},
		{"status", messages.ListConnectionsRequest{Status: messages.StatusFailed}, []string{ids[0]}},
		{"no match", messages.ListConnectionsRequest{Provider: "nobody"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := all(tt.req); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	if r := list(messages.ListConnectionsRequest{}); len(r.Connections) != 6 || r.NextCursor != "" || r.Connections[0].Provider != "test-provider" {
		t.Fatalf("default page: %+v", r)
	}
	if r := list(messages.ListConnectionsRequest{Limit: 100000}); len(r.Connections) != 6 {
		t.Fatalf("huge limit: %d", len(r.Connections))
	}
	// A rename shows up at once.
	e.putClient(apiKeyClient("static-1", "renamed"))
	if got := e.get(other.ConnectionID); got.Provider != "renamed" {
		t.Fatalf("provider after rename = %q", got.Provider)
	}
	if got := all(messages.ListConnectionsRequest{Provider: "renamed"}); !slices.Equal(got, []string{other.ConnectionID}) {
		t.Fatalf("by new name: %v", got)
	}
	if r := list(messages.ListConnectionsRequest{}); r.Connections == nil {
		t.Fatal("nil list")
	}
	for _, bad := range []messages.ListConnectionsRequest{{Cursor: "!!"}, {Cursor: "Zm9v"}, {Limit: -1}, {Status: "sleeping"}} {
		wantCode(t, e.call(messages.SubjectConnectionsList, bad, nil), messages.ErrInvalidRequest)
	}
	var empty messages.ListConnectionsReply
	e.mustCall(messages.SubjectConnectionsList, messages.ListConnectionsRequest{WorkspaceID: "nobody"}, &empty)
	if empty.Connections == nil || len(empty.Connections) != 0 {
		t.Fatalf("empty list = %#v", empty.Connections)
	}
}

func TestClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	good := messages.VaultClient{ProviderID: "p2", ProviderName: "p2", Type: messages.ProviderOAuth2, ClientID: "cid", ClientSecret: "s3cret-value",
		TokenEndpoint: "https://auth.example.com/token", RevocationEndpoint: "https://auth.example.com/revoke"}
	if r := e.putClient(good); !r.ClientSecretSet || r.ProviderID != "p2" {
		t.Fatalf("put: %+v", r)
	}
	keep := good
	keep.ClientSecret = ""
	keep.ProviderName = "p2-renamed"
	if r := e.putClient(keep); !r.ClientSecretSet {
		t.Fatal("an empty secret on update dropped the stored one")
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), "select count(*) from vault.provider_clients where position($1::bytea in client_secret) > 0", []byte("s3cret-value")).Scan(&n); err != nil || n != 0 {
		t.Fatalf("client secret stored in plaintext (%d, %v)", n, err)
	}
	moved := keep
	moved.TokenEndpoint = "https://evil.example.com/token"
	wantCode(t, e.call(messages.SubjectVaultClientsPut, moved, nil), messages.ErrInvalidRequest)
	moved.ClientSecret = "new-secret"
	e.putClient(moved)

	// A revocation endpoint added, removed-then-added or moved without the
	// secret would make the vault send the secret somewhere new.
	noRevoke := messages.VaultClient{ProviderID: "p3", ProviderName: "p3", Type: messages.ProviderOAuth2, ClientID: "cid", ClientSecret: "s3cret-3",
		TokenEndpoint: "https://auth.example.com/token"}
	e.putClient(noRevoke)
	added := noRevoke
	added.ClientSecret = ""
	added.RevocationEndpoint = "https://evil.example.com/revoke"
	wantCode(t, e.call(messages.SubjectVaultClientsPut, added, nil), messages.ErrInvalidRequest)
	added.RevocationEndpoint = "https://auth.example.com/revoke" // same origin as the token endpoint's registration
	wantCode(t, e.call(messages.SubjectVaultClientsPut, added, nil), messages.ErrInvalidRequest)
	added.ClientSecret = "s3cret-3"
	e.putClient(added)
	sameOrigin := added
	sameOrigin.ClientSecret = ""
	sameOrigin.RevocationEndpoint = "https://auth.example.com/oauth/revoke"
	e.putClient(sameOrigin) // a new path on the registered origin is fine

	bad := func(mut func(c *messages.VaultClient)) messages.VaultClient { c := good; mut(&c); return c }
	for name, c := range map[string]messages.VaultClient{
		"no id":           bad(func(c *messages.VaultClient) { c.ProviderID = "" }),
		"no name":         bad(func(c *messages.VaultClient) { c.ProviderName = "" }),
		"bad type":        bad(func(c *messages.VaultClient) { c.Type = "saml" }),
		"no client id":    bad(func(c *messages.VaultClient) { c.ClientID = "" }),
		"no token url":    bad(func(c *messages.VaultClient) { c.TokenEndpoint = "" }),
		"refused token":   bad(func(c *messages.VaultClient) { c.TokenEndpoint = "https://10.0.0.5/token" }),
		"relative url":    bad(func(c *messages.VaultClient) { c.RevocationEndpoint = "/revoke" }),
		"bad auth method": bad(func(c *messages.VaultClient) { c.ClientAuthMethod = "private_key_jwt" }),
		"oidc, no issuer": bad(func(c *messages.VaultClient) {
			c.Type = messages.ProviderOIDC
			c.JWKSURI = "https://auth.example.com/jwks"
		}),
		"oidc, no jwks":    bad(func(c *messages.VaultClient) { c.Type = messages.ProviderOIDC; c.Issuer = "https://auth.example.com" }),
		"javascript token": bad(func(c *messages.VaultClient) { c.TokenEndpoint = "javascript:alert(1)" }),
	} {
		t.Run(name, func(t *testing.T) {
			wantCode(t, e.call(messages.SubjectVaultClientsPut, c, nil), messages.ErrInvalidRequest)
		})
	}

	// Delete: refused while live connections use it; fine after revocation.
	c := e.connect(workspace)
	wantCode(t, e.call(messages.SubjectVaultClientsDelete, messages.VaultClientRef{ProviderID: providerID}, nil), messages.ErrInvalidRequest)
	var revoked messages.Connection
	e.mustCall(messages.SubjectConnectionsRevoke, messages.ConnectionRef{ConnectionID: c.ConnectionID}, &revoked)
	var del messages.VaultClientReply
	e.mustCall(messages.SubjectVaultClientsDelete, messages.VaultClientRef{ProviderID: providerID}, &del)
	if del.ProviderID != providerID || del.ClientSecretSet {
		t.Fatalf("delete: %+v", del)
	}
	e.mustCall(messages.SubjectVaultClientsDelete, messages.VaultClientRef{ProviderID: providerID}, &del) // idempotent
	if got := e.get(c.ConnectionID); got.Provider != providerID {
		t.Fatalf("a revoked connection of a deleted provider shows provider %q", got.Provider)
	}
	wantCode(t, e.call(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ProviderID: providerID, WorkspaceID: workspace}, nil), messages.ErrNotFound)
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noProvider: true})
	srv := httptest.NewServer(e.svc.Handler())
	defer srv.Close()
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	if err := e.svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz after Close: %d", resp.StatusCode)
	}
}

// TestMetadataLimit: metadata is bounded so a page of connections.list fits
// in one NATS message.
func TestMetadataLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	big := map[string]any{"blob": strings.Repeat("x", messages.MaxMetadataBytes)}
	err := e.call(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ProviderID: providerID, WorkspaceID: "w", Metadata: big}, nil)
	wantCode(t, err, messages.ErrInvalidRequest)
	var c messages.Connection
	e.mustCall(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ProviderID: providerID, WorkspaceID: "w", Metadata: map[string]any{"agent": "a-1"}}, &c)
	if c.Metadata["agent"] != "a-1" {
		t.Fatalf("metadata = %v", c.Metadata)
	}
}
