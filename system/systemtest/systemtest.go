// Package systemtest stands up the whole broker against real infrastructure
// and a real OAuth2/OIDC provider, and drives it as a Gateway and a browser
// would. The end-to-end tests and the benchmark use it.
package systemtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsauth"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/system"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// Infra is where the real servers are: an embedded NATS, a fresh PostgreSQL
// database and Redis.
type Infra struct {
	NATSURL     string
	DatabaseURL string
	RedisURL    string
	// Keys, base64 32 bytes each.
	EncryptionKey string
	StateKey      string
	// APIKeys are the Gateway's (API_KEY), all valid; the Gateway presents
	// the first. CrossWorkspaceKeys may omit workspace_id.
	APIKeys, CrossWorkspaceKeys []string
	// NATSPasswords, when set, are the passwords of the NATS server's users
	// (shared/natsauth): every service, the Gateway and the operator then
	// connect as their own user, as in production. Without them, everyone
	// connects anonymously.
	NATSPasswords map[string]string
	// Extra environment for the services.
	Env map[string]string
	Log *slog.Logger
	// Run, when set, runs the services in place of system.Start in this
	// process (as separate processes, say): with every service's
	// configuration, as system.Start gets it, and the listeners Start
	// reserved, which it owns. Start waits for it, and calls stop on
	// Close. Broker.Sys is then nil.
	Run func(ctx context.Context, env map[string]string, listeners map[string]net.Listener) (stop func(), err error)
}

// Broker is a running broker with its provider and the agent app users return to.
type Broker struct {
	Sys      *system.System // nil when Infra.Run runs the services
	Provider *oidcprovider.Server
	// Gateway calls the broker's subjects with the first API key, as NATS
	// user gateway when the server has users; Operator calls admin's with
	// OperatorKey, as NATS user operator.
	Gateway, Operator *natsx.Client
	NC                *nats.Conn
	OperatorKey       string
	// Infra is what the broker runs on.
	Infra Infra

	mu        sync.Mutex
	redirects []string // of the broker's client at Provider
	// PublicURL is the handshake edge; AdminURL the operator API;
	// VaultURL the vault's HTTP edge (health and /metrics).
	PublicURL, AdminURL, VaultURL string
	Agent                         *Agent
	Env                           map[string]string

	closers []func()
}

// ClientID and ClientSecret are the broker's registration at the test provider.
const (
	ClientID     = "nexus-broker"
	ClientSecret = "client-secret-0f8a1d6e5c4b3a29"
)

// Start runs provider, agent and broker. The provider's client is registered
// for the handshake's callback; the caller registers the provider with admin.
func Start(ctx context.Context, in Infra, popts oidcprovider.Options) (*Broker, error) {
	b := &Broker{Infra: in}
	fail := func(err error) (*Broker, error) { b.Close(); return nil, err }

	p, err := oidcprovider.New(popts)
	if err != nil {
		return fail(err)
	}
	b.Provider = p
	b.closers = append(b.closers, p.Close)
	b.Agent = newAgent()
	b.closers = append(b.closers, b.Agent.srv.Close)

	listeners := map[string]net.Listener{}
	for _, name := range []string{"vault", "admin", "handshake", "handshake-internal", "refresher"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fail(err)
		}
		listeners[name] = ln
	}
	b.PublicURL = "http://" + listeners["handshake"].Addr().String()
	b.AdminURL = "http://" + listeners["admin"].Addr().String()
	b.VaultURL = "http://" + listeners["vault"].Addr().String()
	b.redirects = []string{b.PublicURL + messages.SharedCallbackPath}
	if err := p.AddClient(oidcprovider.Client{ID: ClientID, Secret: ClientSecret, RedirectURIs: b.redirects}); err != nil {
		return fail(err)
	}

	b.OperatorKey = "op-" + randomHex(16)
	env := map[string]string{
		"NATS_URL":                in.NATSURL,
		"DATABASE_URL":            in.DatabaseURL,
		"REDIS_URL":               in.RedisURL,
		"ENCRYPTION_KEY":          in.EncryptionKey,
		"STATE_KEY":               in.StateKey,
		"API_KEY":                 strings.Join(in.APIKeys, ","),
		"CROSS_WORKSPACE_API_KEY": strings.Join(in.CrossWorkspaceKeys, ","),
		"ADMIN_API_KEY":           b.OperatorKey,
		"HANDSHAKE_SERVICE_KEY":   "hs-" + randomHex(16),
		"ADMIN_SERVICE_KEY":       "ad-" + randomHex(16),
		"REFRESHER_SERVICE_KEY":   "rf-" + randomHex(16),
		"PUBLIC_URL":              b.PublicURL,
		"ALLOWED_RETURN_URLS":     b.Agent.URL + "/return",
		// Test providers reuse loopback ports, so issuer URLs repeat across
		// runs: keep each broker's Redis keys (the discovery cache) apart.
		"REDIS_KEY_PREFIX": "nexus:test:" + randomHex(6) + ":",
		"LOG_LEVEL":        "warn",
		// The provider, and the tests' verification endpoints, listen on
		// 127.0.0.1; the rest of 127.0.0.0/8 stays refused, so a test can
		// aim at 127.0.0.2 as at an internal service.
		"PROVIDER_PRIVATE_NETWORKS": "127.0.0.1/32",
	}
	for user, pw := range in.NATSPasswords {
		env[system.NATSPasswordVar(user)] = pw
	}
	for k, v := range in.Env {
		env[k] = v
	}
	b.Env = env
	log := in.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if in.Run != nil {
		stop, err := in.Run(ctx, env, listeners)
		if err != nil {
			return fail(err)
		}
		b.closers = append(b.closers, stop)
	} else {
		sys, err := system.Start(ctx, system.Overlay(nil, env), listeners, log)
		if err != nil {
			for _, ln := range listeners {
				ln.Close()
			}
			return fail(err)
		}
		b.Sys = sys
		b.closers = append(b.closers, func() { _ = sys.Close(context.Background()) })
	}

	connect := func(user string) (*nats.Conn, error) {
		opts := []nats.Option{nats.Name(user)}
		if pw := in.NATSPasswords[user]; pw != "" {
			opts = append(opts, nats.UserInfo(user, pw), nats.CustomInboxPrefix(natsauth.InboxPrefix(user)))
		}
		nc, err := nats.Connect(in.NATSURL, opts...)
		if err == nil {
			b.closers = append(b.closers, nc.Close)
		}
		return nc, err
	}
	nc, err := connect(natsauth.Gateway)
	if err != nil {
		return fail(err)
	}
	b.NC = nc
	b.Gateway = &natsx.Client{NC: nc, Prefix: messages.DefaultPrefix, APIKey: in.APIKeys[0]}
	onc, err := connect(natsauth.Operator)
	if err != nil {
		return fail(err)
	}
	b.Operator = &natsx.Client{NC: onc, Prefix: messages.DefaultPrefix, APIKey: b.OperatorKey}
	return b, nil
}

// Close stops everything Start started, in reverse order.
func (b *Broker) Close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
	b.closers = nil
}

// RegisterOIDC registers the test provider with admin by issuer alone.
func (b *Broker) RegisterOIDC(ctx context.Context, name string, aliases ...string) (messages.Provider, error) {
	var out messages.Provider
	defer func() {
		if out.CallbackPath != "" {
			b.allowRedirect(b.PublicURL + out.CallbackPath)
		}
	}()
	err := b.Operator.Request(ctx, messages.SubjectProvidersCreate, messages.Provider{
		Name:         name,
		Aliases:      aliases,
		Type:         messages.ProviderOIDC,
		Issuer:       b.Provider.Issuer(),
		ClientID:     ClientID,
		ClientSecret: ClientSecret,
		Scopes:       []string{"openid", "offline_access", "profile"},
	}, &out)
	return out, err
}

// allowRedirect adds redirectURI to the broker's client at the test
// provider: each provider registered with admin has its own callback.
func (b *Broker) allowRedirect(redirectURI string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !slices.Contains(b.redirects, redirectURI) {
		b.redirects = append(b.redirects, redirectURI)
	}
	_ = b.Provider.AddClient(oidcprovider.Client{ID: ClientID, Secret: ClientSecret, RedirectURIs: slices.Clone(b.redirects)})
}

// Begin starts a consent for workspace on provider, returning to the agent.
func (b *Broker) Begin(ctx context.Context, provider, workspace string) (messages.BeginReply, error) {
	var out messages.BeginReply
	err := b.Gateway.Request(ctx, messages.SubjectHandshakeBegin, messages.BeginRequest{
		Provider: provider, WorkspaceID: workspace, ReturnURL: b.Agent.URL + "/return?app=1",
	}, &out)
	return out, err
}

// Connect runs a whole consent: begin, then a browser through the provider
// and back. It returns the query the agent's return_url received.
func (b *Broker) Connect(ctx context.Context, provider, workspace string) (url.Values, error) {
	begin, err := b.Begin(ctx, provider, workspace)
	if err != nil {
		return nil, err
	}
	resp, err := NewBrowser().Get(begin.AuthURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.Request.URL.Path != "/return" {
		body, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("browser ended at %s (%d): %s", resp.Request.URL.Redacted(), resp.StatusCode, body)
	}
	return resp.Request.URL.Query(), nil
}

// NewBrowser is an HTTP client that keeps cookies and follows redirects, as a
// browser does.
func NewBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 20 * time.Second}
}

// Agent is the agent's web app that users are sent back to.
type Agent struct {
	URL string
	srv *httptest.Server

	mu   sync.Mutex
	hits []url.Values
}

func newAgent() *Agent {
	a := &Agent{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.hits = append(a.hits, r.URL.Query())
		a.mu.Unlock()
		fmt.Fprintln(w, "back at the agent")
	}))
	a.URL = a.srv.URL
	return a
}

// Hits returns the queries the agent's pages were opened with.
func (a *Agent) Hits() []url.Values {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]url.Values(nil), a.hits...)
}

var (
	formAction = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	formHidden = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// FillForm opens a static provider's hosted form in br, fills in fields and
// submits it as a browser would (same-origin POST with the page's hidden
// token), following the redirect back to the agent. It returns the last
// response and its body.
func FillForm(br *http.Client, authURL string, fields url.Values) (*http.Response, string, error) {
	resp, err := br.Get(authURL)
	if err != nil {
		return nil, "", err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp, string(page), fmt.Errorf("form page: HTTP %d", resp.StatusCode)
	}
	a, h := formAction.FindSubmatch(page), formHidden.FindSubmatch(page)
	if a == nil || h == nil {
		return resp, string(page), fmt.Errorf("no form with a hidden token on the page")
	}
	form := url.Values{}
	for k, v := range fields {
		form[k] = v
	}
	form.Set(html.UnescapeString(string(h[1])), html.UnescapeString(string(h[2])))
	action, err := resp.Request.URL.Parse(html.UnescapeString(string(a[1])))
	if err != nil {
		return resp, string(page), err
	}
	req, _ := http.NewRequest(http.MethodPost, action.String(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", action.Scheme+"://"+action.Host)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err = br.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
