package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/admin"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/testkit"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// apiKey is an operator's key (ADMIN_API_KEY); the services' keys are
// admin's own, which the vault double accepts, and the handshake's, which
// may read providers.
const (
	apiKey       = "test-api-key-0123456789"
	adminKey     = "test-admin-service-key-0123"
	handshakeKey = "test-handshake-service-key-0123"
)

// env is a running admin service against real PostgreSQL and NATS, with a
// recording double of the vault's clients.* endpoints on the same NATS.
type env struct {
	t      *testing.T
	svc    *admin.Service
	nc     *nats.Conn
	dbURL  string
	http   *httptest.Server
	vault  *vaultDouble
	oidc   *oidcprovider.Server
	logs   *syncBuffer
	natsMu sync.Mutex
	// replies collects the raw body of every NATS reply and HTTP response
	// the tests saw, to check no secret ever appears in one.
	replies [][]byte
}

func setup(t *testing.T) *env {
	t.Helper()
	natsURL := testkit.NATS(t)
	dbURL := testkit.Postgres(t)
	e := &env{t: t, nc: testkit.Conn(t, natsURL), dbURL: dbURL, logs: &syncBuffer{}}
	e.vault = startVaultDouble(t, e.nc)

	op, err := oidcprovider.New(oidcprovider.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Close)
	e.oidc = op

	l := config.FromMap(map[string]string{"NATS_URL": natsURL, "ADMIN_API_KEY": apiKey + ",second-key-0123456789", "DATABASE_URL": dbURL,
		"ADMIN_SERVICE_KEY": adminKey, "HANDSHAKE_SERVICE_KEY": handshakeKey,
		// The test providers listen on 127.0.0.1; 127.0.0.2 stays refused.
		"PROVIDER_PRIVATE_NETWORKS": "127.0.0.1/32"})
	cfg := admin.LoadConfig(l)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e.svc, err = admin.Start(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.svc.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	e.http = httptest.NewServer(e.svc.Handler())
	t.Cleanup(e.http.Close)
	return e
}

// request sends body to a NATS subject with the API key and decodes the
// reply into out (when not nil), returning the contract error if any.
func (e *env) request(subject string, body, out any) error {
	e.t.Helper()
	data, ok := body.([]byte)
	if !ok {
		var err error
		if data, err = json.Marshal(body); err != nil {
			e.t.Fatal(err)
		}
	}
	msg := nats.NewMsg(messages.Subject("", subject))
	msg.Data = data
	msg.Header.Set(messages.HeaderAPIKey, apiKey)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := e.nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		e.t.Fatalf("%s: %v", subject, err)
	}
	e.natsMu.Lock()
	e.replies = append(e.replies, resp.Data)
	e.natsMu.Unlock()
	return natsx.DecodeReply(resp, out)
}

// create registers p over NATS and fails the test on error.
func (e *env) create(p messages.Provider) messages.Provider {
	e.t.Helper()
	var out messages.Provider
	if err := e.request(messages.SubjectProvidersCreate, p, &out); err != nil {
		e.t.Fatalf("create %s: %v", p.Name, err)
	}
	return out
}

// do sends an HTTP request to the admin API; auth is the Authorization
// header ("" for none). It returns the status and body.
func (e *env) do(method, path, contentType, auth string, body []byte) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.http.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	e.natsMu.Lock()
	e.replies = append(e.replies, data)
	e.natsMu.Unlock()
	return resp.StatusCode, data
}

// api is do with the right bearer key.
func (e *env) api(method, path string, body []byte) (int, []byte) {
	e.t.Helper()
	ct := ""
	if body != nil {
		ct = "application/json"
		if method == http.MethodPatch {
			ct = "application/merge-patch+json"
		}
	}
	return e.do(method, path, ct, "Bearer "+apiKey, body)
}

// count returns the number of stored providers and aliases.
func (e *env) count() (providers, aliases int) {
	e.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "select (select count(*) from admin.providers), (select count(*) from admin.provider_aliases)").Scan(&providers, &aliases); err != nil {
		e.t.Fatal(err)
	}
	return providers, aliases
}

// dumpAdminSchema returns every row of every table of schema admin as text.
func (e *env) dumpAdminSchema() string {
	e.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `select table_name from information_schema.tables where table_schema = 'admin' and table_type = 'BASE TABLE'`)
	if err != nil {
		e.t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(tables) < 3 {
		e.t.Fatalf("admin tables: %v %v", tables, err)
	}
	var dump strings.Builder
	for _, tbl := range tables {
		rows, err := conn.Query(ctx, "select t::text from "+pgx.Identifier{"admin", tbl}.Sanitize()+" t")
		if err != nil {
			e.t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			e.t.Fatal(err)
		}
		dump.WriteString(tbl + ": " + strings.Join(texts, "\n") + "\n")
	}
	return dump.String()
}

// oidcProvider is a provider document registering the test OIDC server by
// issuer alone.
func (e *env) oidcProvider(name, secret string, aliases ...string) messages.Provider {
	return messages.Provider{
		Name: name, Aliases: aliases, Type: messages.ProviderOIDC, Issuer: e.oidc.Issuer(),
		ClientID: "client-" + name, ClientSecret: secret, Scopes: []string{"openid", "offline_access"},
	}
}

// oauth2Provider is a provider document with explicit endpoints.
func oauth2Provider(name, secret string, aliases ...string) messages.Provider {
	return messages.Provider{
		Name: name, Aliases: aliases, Type: messages.ProviderOAuth2,
		AuthorizationEndpoint: "https://auth.example.com/authorize",
		TokenEndpoint:         "https://auth.example.com/token",
		ClientID:              "client-" + name, ClientSecret: secret, Scopes: []string{"repo", "user:email"},
		AuthorizationParams: map[string]string{"access_type": "offline", "prompt": "consent"},
	}
}

func staticProvider(name string) messages.Provider {
	return messages.Provider{
		Name: name, Type: messages.ProviderStatic,
		CredentialSchema: json.RawMessage(`{"type":"object","properties":{"api_key":{"type":"string"}},"required":["api_key"]}`),
		Strategy:         &messages.Strategy{Type: messages.StrategyHeader, Config: map[string]any{"header": "X-Api-Key", "field": "api_key"}},
	}
}

// vaultDouble answers the vault's clients.put and clients.delete over real
// NATS, checking admin's API key, and records what it received.
type vaultDouble struct {
	svc *natsx.Service

	mu      sync.Mutex
	puts    []messages.VaultClient
	deletes []string
	secrets map[string]string
	putErr  *messages.Error
	delErr  *messages.Error
	// audit are the vault's audit records vault.audit.list serves;
	// auditErr, when set, is its answer instead.
	audit    []messages.AuditRecord
	auditErr *messages.Error
	// health is what vault.clients.health says of each provider id.
	health map[string]messages.ProviderHealth
}

func startVaultDouble(t *testing.T, nc *nats.Conn) *vaultDouble {
	t.Helper()
	v := &vaultDouble{secrets: map[string]string{}}
	svc, err := natsx.NewService(nc, natsx.ServiceConfig{Name: "vault", Version: "0.0.1", Callers: apikey.NewSet().Add(apikey.Admin, []string{adminKey})})
	if err != nil {
		t.Fatal(err)
	}
	v.svc = svc
	t.Cleanup(func() { _ = svc.Stop() })
	err = natsx.Endpoint(svc, messages.SubjectVaultClientsPut, func(_ context.Context, c messages.VaultClient) (messages.VaultClientReply, error) {
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.putErr != nil {
			return messages.VaultClientReply{}, v.putErr
		}
		v.puts = append(v.puts, c)
		if c.ClientSecret != "" {
			v.secrets[c.ProviderID] = c.ClientSecret
		}
		return messages.VaultClientReply{ProviderID: c.ProviderID, ClientSecretSet: v.secrets[c.ProviderID] != ""}, nil
	}, natsx.For(apikey.Admin))
	if err != nil {
		t.Fatal(err)
	}
	err = natsx.Endpoint(svc, messages.SubjectVaultClientsHealth, func(_ context.Context, r messages.VaultClientsHealth) (messages.VaultClientsHealthReply, error) {
		v.mu.Lock()
		defer v.mu.Unlock()
		out := map[string]messages.ProviderHealth{}
		for _, id := range r.ProviderIDs {
			if h, ok := v.health[id]; ok {
				out[id] = h
			}
		}
		return messages.VaultClientsHealthReply{Health: out}, nil
	}, natsx.For(apikey.Admin))
	if err != nil {
		t.Fatal(err)
	}
	err = natsx.Endpoint(svc, messages.SubjectVaultAuditList, v.listAudit, natsx.For(apikey.Admin))
	if err != nil {
		t.Fatal(err)
	}
	err = natsx.Endpoint(svc, messages.SubjectVaultClientsDelete, func(_ context.Context, ref messages.VaultClientRef) (messages.VaultClientReply, error) {
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.delErr != nil {
			return messages.VaultClientReply{}, v.delErr
		}
		v.deletes = append(v.deletes, ref.ProviderID)
		delete(v.secrets, ref.ProviderID)
		return messages.VaultClientReply{ProviderID: ref.ProviderID}, nil
	}, natsx.For(apikey.Admin))
	if err != nil {
		t.Fatal(err)
	}
	err = natsx.Endpoint(svc, messages.SubjectVaultKeysStatus, func(context.Context, messages.KeysStatusRequest) (messages.KeysStatus, error) {
		return keysStatus, nil
	}, natsx.For(apikey.Admin))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// listAudit answers vault.audit.list as the vault does: the records the
// filters select, newest first, a page after the cursor's position.
func (v *vaultDouble) listAudit(_ context.Context, r messages.AuditListRequest) (messages.AuditListReply, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.auditErr != nil {
		return messages.AuditListReply{}, v.auditErr
	}
	if err := r.Validate(); err != nil {
		return messages.AuditListReply{}, err
	}
	at, id, _ := messages.DecodeAuditCursor(r.Cursor)
	after := messages.AuditRecord{At: at, ID: id}
	var sel []messages.AuditRecord
	for _, a := range v.audit {
		switch {
		case !r.Since.IsZero() && a.At.Before(r.Since), !r.Until.IsZero() && !a.At.Before(r.Until),
			r.Principal != "" && a.Principal != r.Principal, r.KeyID != "" && a.KeyID != r.KeyID && a.ActorKeyID != r.KeyID,
			r.Target != "" && a.Target != r.Target, r.WorkspaceID != "" && a.WorkspaceID != r.WorkspaceID,
			r.Action != "" && a.Action != r.Action, r.Cursor != "" && !messages.AuditBefore(after, a):
			continue
		}
		sel = append(sel, a)
	}
	slices.SortFunc(sel, func(a, b messages.AuditRecord) int {
		if messages.AuditBefore(a, b) {
			return -1
		}
		return 1
	})
	out := messages.AuditListReply{Records: sel}
	if n := r.PageLimit(); len(sel) > n {
		out.Records = sel[:n]
		out.NextCursor = messages.EncodeAuditCursor(sel[n-1].At, sel[n-1].ID)
	}
	if out.Records == nil {
		out.Records = []messages.AuditRecord{}
	}
	return out, nil
}

// keysStatus is what the double answers on vault.keys.status.
var keysStatus = messages.KeysStatus{NewestKeyID: "0a0b0c0d", CanaryKeyID: "0a0b0c0d", RotationComplete: true,
	Keys: []messages.KeyStatus{{KeyID: "0a0b0c0d", Rows: map[string]int64{"vault.canary.sealed": 1}, Total: 1}}}

func (v *vaultDouble) failPuts(e *messages.Error) { v.mu.Lock(); v.putErr = e; v.mu.Unlock() }
func (v *vaultDouble) failDeletes(e *messages.Error) {
	v.mu.Lock()
	v.delErr = e
	v.mu.Unlock()
}

func (v *vaultDouble) lastPut(t *testing.T) messages.VaultClient {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.puts) == 0 {
		t.Fatal("the vault received no clients.put")
	}
	return v.puts[len(v.puts)-1]
}

func (v *vaultDouble) putCount() int { v.mu.Lock(); defer v.mu.Unlock(); return len(v.puts) }

func (v *vaultDouble) secret(id string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.secrets[id]
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.String() }

// refuseCreate checks that creating p is an invalid_request whose message
// mentions every one of want.
func (e *env) refuseCreate(t *testing.T, p messages.Provider, want ...string) {
	t.Helper()
	err := e.request(messages.SubjectProvidersCreate, p, nil)
	if !errors.Is(err, messages.ErrInvalidRequest) {
		t.Fatalf("err = %v, want invalid_request", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}
