package handshake_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/handshake"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/testkit"
)

const (
	apiKey = "test-api-key-0123456789"
	// serviceKey is the handshake's own, which the fake vault and admin accept.
	serviceKey = "test-handshake-service-key-0123"
	clientID   = "hs-test-client"
	returnURL  = "https://app.example.com/connected"
)

// clock is an adjustable time source for the service under test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakes play admin and the vault on the test's NATS: test doubles of the
// broker's own services, so the handshake is tested in isolation. The
// full system test with the real ones lives in system/.
type fakes struct {
	mu         sync.Mutex
	providers  map[string]messages.Provider
	gets       int
	creates    []messages.VaultCreateConnection
	exchanges  []messages.VaultExchange
	fails      []messages.VaultFailConnection
	exchangeFn func(messages.VaultExchange) error
	// stores holds each static.store body as it arrived on the wire.
	stores  []json.RawMessage
	storeFn func(messages.VaultStoreStatic) error
}

func (f *fakes) storeCount() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.stores) }

func (f *fakes) counts() (gets, creates, exchanges int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets, len(f.creates), len(f.exchanges)
}

func (f *fakes) failures() []messages.VaultFailConnection {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]messages.VaultFailConnection(nil), f.fails...)
}

func (f *fakes) lastExchange() messages.VaultExchange {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.exchanges[len(f.exchanges)-1]
}

func (f *fakes) serve(t *testing.T, nc *nats.Conn) {
	t.Helper()
	keys := apikey.NewSet().Add(apikey.Handshake, []string{serviceKey})
	service := func(name string) *natsx.Service {
		svc, err := natsx.NewService(nc, natsx.ServiceConfig{Name: name, Version: "0.0.1", Callers: keys})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { svc.Stop() })
		return svc
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	admin, vault := service("admin"), service("vault")
	hs := natsx.For(apikey.Handshake)
	must(natsx.Endpoint(admin, messages.SubjectProvidersGet, func(_ context.Context, ref messages.ProviderRef) (messages.Provider, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.gets++
		p, ok := f.providers[ref.Provider]
		if !ok {
			return messages.Provider{}, messages.Errorf(messages.CodeNotFound, "no provider %q", ref.Provider)
		}
		return p, nil
	}, hs))
	must(natsx.Endpoint(vault, messages.SubjectVaultConnectionsCreate, func(_ context.Context, c messages.VaultCreateConnection) (messages.Connection, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.creates = append(f.creates, c)
		id := c.ConnectionID
		if id == "" {
			id = fmt.Sprintf("conn-%d", len(f.creates))
		}
		return messages.Connection{ConnectionID: id, ProviderID: c.ProviderID, WorkspaceID: c.WorkspaceID, Status: messages.StatusPending, Scopes: c.Scopes}, nil
	}, hs))
	must(natsx.Endpoint(vault, messages.SubjectVaultExchange, func(_ context.Context, x messages.VaultExchange) (messages.Connection, error) {
		f.mu.Lock()
		f.exchanges = append(f.exchanges, x)
		fn := f.exchangeFn
		f.mu.Unlock()
		if fn != nil {
			if err := fn(x); err != nil {
				return messages.Connection{}, err
			}
		}
		return messages.Connection{ConnectionID: x.ConnectionID, Status: messages.StatusActive}, nil
	}, hs))
	// The raw body, to check what crossed the bus exactly.
	must(natsx.Endpoint(vault, messages.SubjectVaultStaticStore, func(_ context.Context, raw json.RawMessage) (messages.Connection, error) {
		var x messages.VaultStoreStatic
		if err := json.Unmarshal(raw, &x); err != nil {
			return messages.Connection{}, messages.Errorf(messages.CodeInvalidRequest, "%v", err)
		}
		f.mu.Lock()
		f.stores = append(f.stores, append(json.RawMessage(nil), raw...))
		fn := f.storeFn
		f.mu.Unlock()
		if fn != nil {
			if err := fn(x); err != nil {
				return messages.Connection{}, err
			}
		}
		return messages.Connection{ConnectionID: x.ConnectionID, Status: messages.StatusActive}, nil
	}, hs))
	must(natsx.Endpoint(vault, messages.SubjectVaultConnectionsFail, func(_ context.Context, x messages.VaultFailConnection) (messages.Connection, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.fails = append(f.fails, x)
		return messages.Connection{ConnectionID: x.ConnectionID, Status: messages.StatusFailed}, nil
	}, hs))
}

// idp is a stand-in for a provider's discovery document: the handshake only
// fetches it and redirects browsers to its authorization endpoint.
type idp struct {
	srv         *httptest.Server
	issSupports bool
}

func newIDP(t *testing.T, issSupported bool) *idp {
	t.Helper()
	p := &idp{issSupports: issSupported}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                 p.srv.URL,
			"authorization_endpoint": p.srv.URL + "/authorize",
			"token_endpoint":         p.srv.URL + "/token",
			"jwks_uri":               p.srv.URL + "/jwks",
			"authorization_response_iss_parameter_supported": p.issSupports,
		})
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// env is a handshake under test: real NATS, real Redis, fake admin and vault.
type env struct {
	t         *testing.T
	clock     *clock
	public    string
	internal  string
	svc       *handshake.Service
	srv       *httptest.Server
	client    *natsx.Client
	nc        *nats.Conn
	fakes     *fakes
	idp       *idp
	idpStrict *idp
	// redirects are the redirect URIs of the authorization requests seen,
	// by state: callback returns to the one of its state.
	mu        sync.Mutex
	redirects map[string]string
	// cfg is the running handshake's configuration; handler its public
	// routes, which restart swaps.
	cfg     handshake.Config
	handler atomic.Value
}

// newEnv starts a handshake; settings, when given, add to or replace its
// configuration variables.
func newEnv(t *testing.T, settings ...map[string]string) *env {
	t.Helper()
	natsURL := testkit.NATS(t)
	e := &env{t: t, clock: &clock{t: time.Now().UTC()}, fakes: &fakes{}, redirects: map[string]string{}}
	e.nc = testkit.Conn(t, natsURL)
	e.client = &natsx.Client{NC: e.nc, APIKey: apiKey}
	e.idp = newIDP(t, false)
	e.idpStrict = newIDP(t, true)
	e.fakes.providers = map[string]messages.Provider{
		"oidc": {ID: "prov-oidc", Name: "oidc", Type: messages.ProviderOIDC, Issuer: e.idp.srv.URL, ClientID: clientID,
			Scopes: []string{"email"}, AuthorizationParams: map[string]string{"access_type": "offline", "state": "evil"}},
		"strict": {ID: "prov-strict", Name: "strict", Type: messages.ProviderOIDC, Issuer: e.idpStrict.srv.URL, ClientID: clientID},
		"plain": {ID: "prov-plain", Name: "plain", Type: messages.ProviderOAuth2, ClientID: clientID, Issuer: "https://github.example.com",
			AuthorizationEndpoint: "https://github.example.com/login/oauth/authorize?x=1", Scopes: []string{"repo"}},
		// A registration made before providers had their own callbacks.
		"legacy": {ID: "prov-legacy", Name: "legacy", Type: messages.ProviderOAuth2, ClientID: clientID, Issuer: "https://legacy.example.com",
			AuthorizationEndpoint: "https://legacy.example.com/authorize", CallbackPath: messages.SharedCallbackPath, SharedCallback: true},
		"static": {ID: "prov-static", Name: "static", Type: messages.ProviderStatic}, // no usable schema
	}
	for _, p := range staticProviders() {
		e.fakes.providers[p.ID] = p
		e.fakes.providers[p.Name] = p
		for _, a := range p.Aliases {
			e.fakes.providers[a] = p
		}
	}
	e.fakes.serve(t, e.nc)
	if err := e.nc.Flush(); err != nil { // the fakes' subscriptions are in place
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.public = "http://" + ln.Addr().String()
	vars := map[string]string{
		"NATS_URL":              natsURL,
		"API_KEY":               apiKey,
		"HANDSHAKE_SERVICE_KEY": serviceKey,
		"REDIS_URL":             testkit.Redis(t),
		"STATE_KEY":             testkit.Key32(t),
		"PUBLIC_URL":            e.public,
		"ALLOWED_RETURN_URLS":   returnURL + ",http://localhost:3000",
		// Test providers reuse loopback ports: keep each test's Redis keys apart.
		"REDIS_KEY_PREFIX": "nexus:test:" + testkit.RandomHex(t, 6) + ":",
		// The test providers listen on 127.0.0.1; 127.0.0.2 stays refused.
		"PROVIDER_PRIVATE_NETWORKS": "127.0.0.1/32",
	}
	for _, m := range settings {
		maps.Copy(vars, m)
	}
	cfg := handshake.LoadConfig(config.FromMap(vars))
	cfg.Now = e.clock.Now
	e.cfg = cfg
	svc, err := handshake.Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	e.svc = svc
	e.handler.Store(svc.Handler())
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.handler.Load().(http.Handler).ServeHTTP(w, r)
	}))
	e.srv.Listener.Close()
	e.srv.Listener = ln
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	in := httptest.NewServer(svc.InternalHandler())
	t.Cleanup(in.Close)
	e.internal = in.URL
	return e
}

// restart stops the handshake and starts it again, on the same address and
// Redis, with STATE_KEY key and STATE_KEYS_PREVIOUS previous: a rolling
// restart of a one-replica deployment.
func (e *env) restart(key []byte, previous ...[]byte) {
	e.t.Helper()
	if err := e.svc.Close(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.cfg.StateKey, e.cfg.PreviousStateKeys = key, previous
	svc, err := handshake.Start(context.Background(), e.cfg, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { svc.Close(context.Background()) })
	e.svc = svc
	e.handler.Store(svc.Handler())
}

// browser is an HTTP client with its own cookie jar that does not follow
// redirects, so tests can look at each hop.
func (e *env) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (e *env) begin(req messages.BeginRequest) (messages.BeginReply, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rep messages.BeginReply
	err := e.client.Request(ctx, messages.SubjectHandshakeBegin, req, &rep)
	return rep, err
}

func (e *env) mustBegin(provider string) messages.BeginReply {
	e.t.Helper()
	rep, err := e.begin(messages.BeginRequest{Provider: provider, WorkspaceID: "ws-1", ReturnURL: returnURL})
	if err != nil {
		e.t.Fatalf("begin: %v", err)
	}
	return rep
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// connect opens the auth_url in browser b and returns the provider
// authorization URL it was redirected to.
func (e *env) connect(b *http.Client, authURL string) *url.URL {
	e.t.Helper()
	resp, body := get(e.t, b, authURL)
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("connect: HTTP %d: %s", resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.redirects[loc.Query().Get("state")] = loc.Query().Get("redirect_uri")
	e.mu.Unlock()
	return loc
}

// callback plays the provider sending browser b back with params, to the
// redirect URI of the authorization request with params' state (the shared
// callback for a state it never saw).
func (e *env) callback(b *http.Client, params url.Values) (*http.Response, string) {
	e.t.Helper()
	e.mu.Lock()
	to := e.redirects[params.Get("state")]
	e.mu.Unlock()
	if to == "" {
		to = e.public + messages.SharedCallbackPath
	}
	return e.callbackTo(b, to, params)
}

// callbackTo sends browser b back to redirectURI with params.
func (e *env) callbackTo(b *http.Client, redirectURI string, params url.Values) (*http.Response, string) {
	e.t.Helper()
	return get(e.t, b, redirectURI+"?"+params.Encode())
}
