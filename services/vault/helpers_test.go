package vault_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault"
	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/egress"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/testkit"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// The callers' keys. The tests' Gateway key may omit workspace_id (a
// cross-workspace key); workspaceKey may not.
const (
	apiKey       = "test-api-key-0123456789"
	workspaceKey = "test-workspace-key-0123456789"
	handshakeKey = "test-handshake-key-0123456789"
	adminKey     = "test-admin-key-0123456789"
	refresherKey = "test-refresher-key-0123456789"
	redirectURI  = "http://127.0.0.1:1/v1/callback"
	clientID     = "vault-test-client"
	secret       = "vault-test-client-secret"
	providerID   = "prov-test"
	workspace    = "ws-1"
)

// env is a vault under test: real PostgreSQL, real NATS, a real OIDC provider.
type env struct {
	t       *testing.T
	dbURL   string
	natsURL string
	key     []byte
	op      *oidcprovider.Server
	svc     *vault.Service
	nc      *nats.Conn
	client  *natsx.Client
	// as calls as each principal; call picks the one a subject serves.
	as   map[string]*natsx.Client
	pool *pgxpool.Pool
	// configure, when set, changes each replica's configuration.
	configure func(*vault.Config)
	// networks is the vaults' PROVIDER_PRIVATE_NETWORKS.
	networks egress.Networks
}

// callerOf is the principal whose subject this is.
func callerOf(subject string) string {
	switch {
	case strings.HasPrefix(subject, "v1.vault.connections."), subject == messages.SubjectVaultExchange, subject == messages.SubjectVaultStaticStore:
		return apikey.Handshake
	case strings.HasPrefix(subject, "v1.vault.clients."), subject == messages.SubjectVaultAuditList, strings.HasPrefix(subject, "v1.vault.keys."),
		strings.HasPrefix(subject, "v1.vault.operator."):
		return apikey.Admin
	case strings.HasPrefix(subject, "v1.vault.refresh."), strings.HasPrefix(subject, "v1.vault.outbox."):
		return apikey.Refresher
	}
	return apikey.Gateway
}

// keyFor is the key of the principal whose subject this is.
func keyFor(subject string) string {
	return map[string]string{apikey.Gateway: apiKey, apikey.Handshake: handshakeKey, apikey.Admin: adminKey, apikey.Refresher: refresherKey}[callerOf(subject)]
}

type envOptions struct {
	provider   oidcprovider.Options
	authMethod string
	noProvider bool
	// configure changes the vault's configuration before it starts.
	configure func(*vault.Config)
	// networks is PROVIDER_PRIVATE_NETWORKS; default 127.0.0.1/32, where
	// the test providers listen (the rest of 127.0.0.0/8 stays refused).
	networks string
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	if o.networks == "" {
		o.networks = "127.0.0.1/32"
	}
	e := &env{t: t, dbURL: testkit.Postgres(t), natsURL: testkit.NATS(t), key: randomKey(t), networks: networksOf(t, o.networks),
		configure: o.configure}
	e.svc = e.start(e.key)
	e.nc = testkit.Conn(t, e.natsURL)
	e.client = &natsx.Client{NC: e.nc, Prefix: messages.DefaultPrefix, APIKey: apiKey}
	e.as = map[string]*natsx.Client{}
	for principal, key := range map[string]string{apikey.Gateway: apiKey, apikey.Handshake: handshakeKey, apikey.Admin: adminKey, apikey.Refresher: refresherKey} {
		e.as[principal] = &natsx.Client{NC: e.nc, Prefix: messages.DefaultPrefix, APIKey: key}
	}
	pool, err := pgxpool.New(context.Background(), e.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e.pool = pool
	if !o.noProvider {
		o.provider.AlwaysIssueRefreshToken = true
		op, err := oidcprovider.New(o.provider)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(op.Close)
		e.op = op
		if err := op.AddClient(oidcprovider.Client{ID: clientID, Secret: secret, RedirectURIs: []string{redirectURI}, AuthMethod: o.authMethod}); err != nil {
			t.Fatal(err)
		}
		e.putClient(e.registration(o.authMethod, nil))
	}
	return e
}

// registration is the test provider's client registration at e.op, with
// the given client authentication method and quirks.
func (e *env) registration(authMethod string, q *messages.Quirks) messages.VaultClient {
	return messages.VaultClient{
		ProviderID: providerID, ProviderName: "test-provider", Type: messages.ProviderOIDC,
		ClientID: clientID, ClientSecret: secret, ClientAuthMethod: authMethod,
		Issuer: e.op.Issuer(), TokenEndpoint: e.op.Issuer() + "/token", RevocationEndpoint: e.op.Issuer() + "/revoke", JWKSURI: e.op.Issuer() + "/jwks",
		Quirks: q,
	}
}

// networksOf parses a PROVIDER_PRIVATE_NETWORKS value.
func networksOf(t *testing.T, list string) egress.Networks {
	t.Helper()
	n, errs := egress.ParseNetworks(list)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return n
}

func randomKey(t *testing.T) []byte {
	k, err := config.DecodeKey(testkit.Key32(t))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (e *env) config(active []byte, previous ...[]byte) vault.Config {
	c := vault.Config{
		Common:             config.Common{NATSURL: e.natsURL, Prefix: messages.DefaultPrefix},
		GatewayKeys:        []string{workspaceKey},
		CrossWorkspaceKeys: []string{apiKey},
		HandshakeKeys:      []string{handshakeKey},
		AdminKeys:          []string{adminKey},
		RefresherKeys:      []string{refresherKey},
		DatabaseURL:        e.dbURL,
		EncryptionKey:      active,
		PreviousKeys:       previous,
		ProviderNetworks:   e.networks,
		// Audit records are written when a test lists them, or at Close.
		AuditInterval: time.Hour,
		// Re-seal passes and replica renewals every 200ms, not every minute;
		// a replica counts as gone 5s after its last renewal (a loaded
		// machine may be late by more than a few intervals).
		KeysInterval: 200 * time.Millisecond, ReplicaTTL: 5 * time.Second,
		// Each replica its own: replicas of one process share a host name.
		ReplicaID: "test-" + uuid.NewString(),
	}
	if e.configure != nil {
		e.configure(&c)
	}
	return c
}

// start runs another vault replica on the same database and NATS.
func (e *env) start(active []byte, previous ...[]byte) *vault.Service {
	e.t.Helper()
	svc, err := vault.Start(context.Background(), e.config(active, previous...), nil)
	if err != nil {
		e.t.Fatalf("start vault: %v", err)
	}
	e.t.Cleanup(func() { _ = svc.Close(context.Background()) })
	return svc
}

func (e *env) call(subject string, req, reply any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return e.as[callerOf(subject)].Request(ctx, subject, req, reply)
}

func (e *env) mustCall(subject string, req, reply any) {
	e.t.Helper()
	if err := e.call(subject, req, reply); err != nil {
		e.t.Fatalf("%s: %v", subject, err)
	}
}

func (e *env) putClient(c messages.VaultClient) messages.VaultClientReply {
	e.t.Helper()
	var r messages.VaultClientReply
	e.mustCall(messages.SubjectVaultClientsPut, c, &r)
	return r
}

func (e *env) create(ws string, scopes ...string) messages.Connection {
	e.t.Helper()
	if scopes == nil {
		scopes = []string{"openid", "offline_access", "profile"}
	}
	var c messages.Connection
	e.mustCall(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ProviderID: providerID, WorkspaceID: ws, Scopes: scopes}, &c)
	return c
}

// authorization is a completed browser leg of a consent: a code to redeem.
type authorization struct {
	code, verifier, nonce string
}

func (e *env) authorize(scopes []string) authorization {
	e.t.Helper()
	c, err := e.op.Consent(clientID, redirectURI, scopes)
	if err != nil {
		e.t.Fatal(err)
	}
	return authorization{code: c.Code, verifier: c.Verifier, nonce: c.Nonce}
}

func (e *env) exchange(id string, a authorization) (messages.Connection, error) {
	var c messages.Connection
	err := e.call(messages.SubjectVaultExchange, messages.VaultExchange{ConnectionID: id, Code: a.code, CodeVerifier: a.verifier, RedirectURI: redirectURI, Nonce: a.nonce}, &c)
	return c, err
}

// connect runs a whole consent and returns the active connection.
func (e *env) connect(ws string) messages.Connection {
	e.t.Helper()
	c := e.create(ws)
	a := e.authorize(c.Scopes)
	got, err := e.exchange(c.ConnectionID, a)
	if err != nil {
		e.t.Fatalf("exchange: %v", err)
	}
	if got.Status != messages.StatusActive {
		e.t.Fatalf("status after exchange = %s", got.Status)
	}
	return got
}

func (e *env) token(id string, minValid *int) (messages.Credential, error) {
	var cr messages.Credential
	err := e.call(messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: id, MinValidSeconds: minValid}, &cr)
	return cr, err
}

func (e *env) get(id string) messages.Connection {
	e.t.Helper()
	var c messages.Connection
	e.mustCall(messages.SubjectConnectionsGet, messages.ConnectionRef{ConnectionID: id}, &c)
	return c
}

// storedRefreshToken opens the sealed refresh token straight from the table.
func (e *env) storedRefreshToken(id string) string {
	e.t.Helper()
	var sealed []byte
	var version int64
	if err := e.pool.QueryRow(context.Background(), "select refresh_token, token_version from vault.connections where id = $1", id).Scan(&sealed, &version); err != nil {
		e.t.Fatal(err)
	}
	if sealed == nil {
		return ""
	}
	k, err := keyring.New(e.key)
	if err != nil {
		e.t.Fatal(err)
	}
	pt, err := k.Open(store.ConnectionPlace(id, "refresh_token", version), sealed)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(pt)
}

// rawRow is the connection's row as JSON text, every column included.
func (e *env) rawRow(id string) string {
	e.t.Helper()
	var s string
	if err := e.pool.QueryRow(context.Background(), "select row_to_json(c)::text from vault.connections c where id = $1", id).Scan(&s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// events lists the outbox events of a connection, oldest first.
func (e *env) events(id string) []messages.Event {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(), "select payload from vault.outbox where connection_id = $1 order by created_at, id", id)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []messages.Event
	for rows.Next() {
		var ev messages.Event
		if err := rows.Scan(&ev); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func eventTypes(evs []messages.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(ev.Type, "nexus.connection."), ".v1"))
	}
	return out
}

func wantCode(t *testing.T, err error, want *messages.Error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %s", err, want.Code)
	}
}

// changedOutOfBand tells every replica's cache that connection id changed,
// as the vault's own transactions do (store.ChangesChannel), after a test
// wrote its row behind the vault's back.
func (e *env) changedOutOfBand(id string) {
	e.t.Helper()
	if _, err := e.pool.Exec(context.Background(), "select pg_notify($1, $2)", store.ChangesChannel, id); err != nil {
		e.t.Fatal(err)
	}
}

// backoffPassed ends the connection's backoff after failed refreshes, as
// the time passing would: its next refresh calls the provider.
func (e *env) backoffPassed(id string) {
	e.t.Helper()
	if _, err := e.pool.Exec(context.Background(), "update vault.connections set retry_not_before = null where id = $1", id); err != nil {
		e.t.Fatal(err)
	}
}

func intp(v int) *int { return &v }

func b64(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// requestsPerReplica asks every vault replica ($SRV.STATS) how many requests
// its endpoint for subject has handled.
func (e *env) requestsPerReplica(subject string) []int {
	e.t.Helper()
	inbox := nats.NewInbox()
	sub, err := e.nc.SubscribeSync(inbox)
	if err != nil {
		e.t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := e.nc.PublishRequest("$SRV.STATS."+vault.Name, inbox, nil); err != nil {
		e.t.Fatal(err)
	}
	var out []int
	for {
		m, err := sub.NextMsg(300 * time.Millisecond)
		if err != nil {
			return out
		}
		var stats struct {
			Endpoints []struct {
				Subject     string `json:"subject"`
				NumRequests int    `json:"num_requests"`
			} `json:"endpoints"`
		}
		if err := json.Unmarshal(m.Data, &stats); err != nil {
			e.t.Fatal(err)
		}
		for _, ep := range stats.Endpoints {
			if ep.Subject == messages.Subject(messages.DefaultPrefix, subject) {
				out = append(out, ep.NumRequests)
			}
		}
	}
}
