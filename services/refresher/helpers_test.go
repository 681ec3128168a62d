package refresher

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/testkit"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// These tests run the refresher against the real vault (PostgreSQL from
// testkit), real NATS with JetStream (embedded), and a real OAuth2/OIDC
// provider (testing/oidcprovider).

// apiKey is the refresher's own service key; the others are the keys the
// tests present as the Gateway, the handshake and admin.
const (
	apiKey       = "refresher-test-api-key-0123456789"
	gatewayKey   = "refresher-test-gateway-key-0123"
	handshakeKey = "refresher-test-handshake-key-0123"
	adminKey     = "refresher-test-admin-key-0123"
	redirectURI  = "http://127.0.0.1:1/v1/callback"
	clientID     = "refresher-test-client"
	secret       = "refresher-test-client-secret"
	providerID   = "prov-refresher-test"
	workspace    = "ws-refresher"
)

type env struct {
	t       *testing.T
	natsURL string
	dbURL   string
	op      *oidcprovider.Server
	nc      *nats.Conn
	js      jetstream.JetStream
	client  *natsx.Client
}

type envOptions struct {
	provider oidcprovider.Options
	vaults   int // vault replicas; default 1
	noVault  bool
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, natsURL: testkit.NATS(t)}
	e.nc = testkit.Conn(t, e.natsURL)
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	e.js = js
	e.client = &natsx.Client{NC: e.nc, Prefix: messages.DefaultPrefix, APIKey: apiKey}
	if o.noVault {
		return e
	}
	e.dbURL = testkit.Postgres(t)
	key := testkit.Key32(t)
	for range max(o.vaults, 1) {
		l := config.FromMap(map[string]string{"NATS_URL": e.natsURL, "DATABASE_URL": e.dbURL, "ENCRYPTION_KEY": key,
			"API_KEY": gatewayKey, "CROSS_WORKSPACE_API_KEY": gatewayKey, "HANDSHAKE_SERVICE_KEY": handshakeKey,
			"ADMIN_SERVICE_KEY": adminKey, "REFRESHER_SERVICE_KEY": apiKey,
			// The test provider listens on 127.0.0.1.
			"PROVIDER_PRIVATE_NETWORKS": "127.0.0.1/32"})
		cfg := vault.LoadConfig(l)
		if err := l.Err(); err != nil {
			t.Fatal(err)
		}
		svc, err := vault.Start(context.Background(), cfg, nil)
		if err != nil {
			t.Fatalf("start vault: %v", err)
		}
		t.Cleanup(func() { _ = svc.Close(context.Background()) })
	}
	o.provider.AlwaysIssueRefreshToken = true
	op, err := oidcprovider.New(o.provider)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Close)
	e.op = op
	if err := op.AddClient(oidcprovider.Client{ID: clientID, Secret: secret, RedirectURIs: []string{redirectURI}}); err != nil {
		t.Fatal(err)
	}
	var r messages.VaultClientReply
	e.mustCall(messages.SubjectVaultClientsPut, messages.VaultClient{
		ProviderID: providerID, ProviderName: "test-provider", Type: messages.ProviderOIDC,
		ClientID: clientID, ClientSecret: secret,
		Issuer: op.Issuer(), TokenEndpoint: op.Issuer() + "/token", RevocationEndpoint: op.Issuer() + "/revoke", JWKSURI: op.Issuer() + "/jwks",
	}, &r)
	return e
}

// testConfig is a refresher configuration with test-sized intervals; extra
// overrides the variables.
func (e *env) testConfig(extra map[string]string) Config {
	e.t.Helper()
	vars := map[string]string{
		"NATS_URL":              e.natsURL,
		"REFRESHER_SERVICE_KEY": apiKey,
		"REFRESH_POLL_INTERVAL": "100ms",
		"REFRESH_LEASE":         "5s",
		"REFRESH_BACKOFF_BASE":  "200ms",
		"REFRESH_BACKOFF_MAX":   "2s",
	}
	for k, v := range extra {
		vars[k] = v
	}
	l := config.FromMap(vars)
	cfg := LoadConfig(l)
	if err := l.Err(); err != nil {
		e.t.Fatal(err)
	}
	cfg.outboxLease = time.Second
	return cfg
}

// startRefresher runs a replica; Close runs at cleanup if the test has not.
func (e *env) startRefresher(cfg Config) *Service {
	e.t.Helper()
	s, err := Start(context.Background(), cfg, nil)
	if err != nil {
		e.t.Fatalf("start refresher: %v", err)
	}
	e.t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func (e *env) call(subject string, req, reply any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	key := gatewayKey
	switch {
	case strings.HasPrefix(subject, "v1.vault.connections."), subject == messages.SubjectVaultExchange, subject == messages.SubjectVaultStaticStore:
		key = handshakeKey
	case strings.HasPrefix(subject, "v1.vault.clients."):
		key = adminKey
	case strings.HasPrefix(subject, "v1.vault.refresh."), strings.HasPrefix(subject, "v1.vault.outbox."):
		key = apiKey
	}
	c := *e.client
	c.APIKey = key
	return c.Request(ctx, subject, req, reply)
}

func (e *env) mustCall(subject string, req, reply any) {
	e.t.Helper()
	if err := e.call(subject, req, reply); err != nil {
		e.t.Fatalf("%s: %v", subject, err)
	}
}

// connect runs a whole consent (the provider's /authorize with a cookie-jar
// browser, then the vault's code exchange) and returns the active connection.
func (e *env) connect() messages.Connection {
	e.t.Helper()
	var c messages.Connection
	e.mustCall(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{
		ProviderID: providerID, WorkspaceID: workspace, Scopes: []string{"openid", "offline_access", "profile"},
	}, &c)
	consent, err := e.op.Consent(clientID, redirectURI, c.Scopes)
	if err != nil {
		e.t.Fatal(err)
	}
	var active messages.Connection
	e.mustCall(messages.SubjectVaultExchange, messages.VaultExchange{
		ConnectionID: c.ConnectionID, Code: consent.Code, CodeVerifier: consent.Verifier, RedirectURI: redirectURI, Nonce: consent.Nonce,
	}, &active)
	if active.Status != messages.StatusActive {
		e.t.Fatalf("status after exchange = %s", active.Status)
	}
	return active
}

func (e *env) get(id string) messages.Connection {
	e.t.Helper()
	var c messages.Connection
	e.mustCall(messages.SubjectConnectionsGet, messages.ConnectionRef{ConnectionID: id}, &c)
	return c
}

func (e *env) token(id string, minValid int) (messages.Credential, error) {
	var cr messages.Credential
	err := e.call(messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: id, MinValidSeconds: &minValid}, &cr)
	return cr, err
}

// consumer creates a durable pull consumer on NEXUS_EVENTS, as a downstream
// service would.
func (e *env) consumer(name, filter string) jetstream.Consumer {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := e.js.CreateOrUpdateConsumer(ctx, messages.StreamEvents, jetstream.ConsumerConfig{
		Durable: name, FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		e.t.Fatalf("consumer %s: %v", name, err)
	}
	return c
}

// received is one message taken from a consumer.
type received struct {
	subject string
	msgID   string
	event   messages.Event
	body    []byte // as published, for events of another shape
}

// fetch takes every message the consumer delivers within wait (waiting the
// whole time: a duplicate would arrive late), acknowledging each.
func fetch(t *testing.T, c jetstream.Consumer, wait time.Duration) []received {
	t.Helper()
	var out []received
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		if left < 10*time.Millisecond {
			return out
		}
		batch, err := c.Fetch(100, jetstream.FetchMaxWait(left))
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		for m := range batch.Messages() {
			var ev messages.Event
			if err := json.Unmarshal(m.Data(), &ev); err != nil {
				t.Fatalf("event body %q: %v", m.Data(), err)
			}
			out = append(out, received{subject: m.Subject(), msgID: m.Headers().Get(messages.HeaderMsgID), event: ev, body: m.Data()})
			if err := m.Ack(); err != nil {
				t.Fatal(err)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("fetch: %v", err)
		}
	}
}

// eventually polls cond every 20ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// counter reads a counter (with labels) from a service's registry.
func counter(t *testing.T, s *Service, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metric
				}
			}
			switch {
			case m.GetCounter() != nil:
				total += m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				total += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return total
}
