package system_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsauth"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/system/systemtest"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// consoleClient is an operator's browser as a plain HTTP client: it keeps
// cookies, does not follow redirects (the tests read them), and sends the
// console's own Origin with its posts unless told otherwise.
type consoleClient struct {
	t      *testing.T
	base   string
	origin string
	http   *http.Client
}

func newConsoleClient(t *testing.T, b *systemtest.Broker) *consoleClient {
	jar, _ := cookiejar.New(nil)
	return &consoleClient{t: t, base: b.AdminURL, origin: b.AdminURL, http: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// get returns the status, headers and body of GET path.
func (c *consoleClient) get(path string) (int, http.Header, string) {
	c.t.Helper()
	resp, err := c.http.Get(c.base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// post sends a form with the given Origin ("" for none).
func (c *consoleClient) post(path, origin string, form url.Values) (int, http.Header, string) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// consoleCSP is the policy every console answer must carry, word for word.
const consoleCSP = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// token is the synchronizer token in a page's forms.
func (c *consoleClient) token(path string) string {
	c.t.Helper()
	status, _, body := c.get(path)
	m := csrfInput.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil {
		c.t.Fatalf("GET %s: %d, no form token", path, status)
	}
	return m[1]
}

// login signs in with key and returns the status of the answer.
func (c *consoleClient) login(key string) int {
	c.t.Helper()
	status, _, _ := c.post("/console/login", c.origin, url.Values{"csrf": {c.token("/console/login")}, "key": {key}})
	return status
}

func (c *consoleClient) sessionCookie() *http.Cookie {
	u, _ := url.Parse(c.base)
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == "nexus_console" {
			return ck
		}
	}
	return nil
}

// TestConsoleHTTP drives the console's security with a plain HTTP client:
// the headers on every answer, sign-in (a wrong key and a Gateway key are
// refused, an operator key gets an HttpOnly SameSite=Strict cookie), a
// form refused without its session's token, with another session's, with a
// foreign Origin or with none, accepted with both; logout ending the
// session server-side; and the sign-in rate limit.
func TestConsoleHTTP(t *testing.T) {
	b := startBrokerEnv(t, oidcprovider.Options{}, map[string]string{"CONSOLE_LOGIN_RATE": "12/m"})
	ctx := ctxT(t)
	if _, err := b.RegisterOIDC(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	c := newConsoleClient(t, b)

	status, h, _ := c.get("/console/login")
	if status != http.StatusOK || h.Get("Content-Security-Policy") != consoleCSP ||
		h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("login page: %d, headers %v", status, h)
	}
	if status, h, _ := c.get("/console/providers"); status != http.StatusSeeOther || h.Get("Location") != "/console/login" {
		t.Fatalf("a page without a session: %d -> %q, want 303 to the login page", status, h.Get("Location"))
	}

	for name, key := range map[string]string{"wrong key": "not-a-key-of-this-broker", "Gateway key": gatewayKey, "empty": ""} {
		if status := c.login(key); status != http.StatusUnauthorized || c.sessionCookie() != nil {
			t.Fatalf("%s: sign-in answered %d, session cookie %v", name, status, c.sessionCookie())
		}
	}
	// The login form's own token: without it (or with the cookie's missing) no sign-in.
	if status, _, _ := c.post("/console/login", c.origin, url.Values{"key": {b.OperatorKey}}); status != http.StatusForbidden || c.sessionCookie() != nil {
		t.Fatalf("sign-in without the form's token: %d", status)
	}
	c.token("/console/login") // the login cookie is set; a token made up is not its value
	if status, _, _ := c.post("/console/login", c.origin, url.Values{"csrf": {"made-up-login-token"}, "key": {b.OperatorKey}}); status != http.StatusForbidden || c.sessionCookie() != nil {
		t.Fatalf("sign-in with a token that is not the login cookie's: %d", status)
	}
	if status, _, _ := c.post("/console/login", "http://evil.example", url.Values{"csrf": {c.token("/console/login")}, "key": {b.OperatorKey}}); status != http.StatusForbidden || c.sessionCookie() != nil {
		t.Fatalf("sign-in from another origin: %d", status)
	}
	if status := c.login(b.OperatorKey); status != http.StatusSeeOther {
		t.Fatalf("operator sign-in: %d", status)
	}
	ck := c.sessionCookie()
	if ck == nil {
		t.Fatal("no session cookie after sign-in")
	}
	// The jar drops attributes: read them from a fresh sign-in's header.
	other := newConsoleClient(t, b)
	_, hdr, _ := other.post("/console/login", other.origin, url.Values{"csrf": {other.token("/console/login")}, "key": {b.OperatorKey}})
	set := hdr.Values("Set-Cookie")
	if !slicesContainAll(set, "nexus_console=", "HttpOnly", "SameSite=Strict") {
		t.Fatalf("session cookie %v: want HttpOnly and SameSite=Strict", set)
	}

	path := "/console/providers/acme"
	token := c.token(path)
	edit := func(tok string) url.Values { return url.Values{"csrf": {tok}, "aliases": {"acme-console"}} }
	for _, tc := range []struct {
		name, origin string
		form         url.Values
	}{
		{"no token", c.origin, url.Values{"aliases": {"acme-console"}}},
		{"another session's token", c.origin, edit(other.token(path))},
		{"a foreign Origin", "http://evil.example", edit(token)},
		{"no Origin", "", edit(token)},
	} {
		if status, _, body := c.post(path, tc.origin, tc.form); status != http.StatusForbidden {
			t.Fatalf("%s: the form was answered %d: %s", tc.name, status, body)
		}
	}
	if p := getProvider(t, b, "acme"); len(p.Aliases) != 0 {
		t.Fatalf("a refused form changed the provider: aliases %v", p.Aliases)
	}
	if status, h, _ := c.post(path, c.origin, edit(token)); status != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "notice=saved") {
		t.Fatalf("the form with its token and Origin: %d %q", status, h.Get("Location"))
	}
	if p := getProvider(t, b, "acme"); len(p.Aliases) != 1 || p.Aliases[0] != "acme-console" {
		t.Fatalf("aliases after the form = %v", p.Aliases)
	}

	if status, _, _ := c.post("/console/logout", c.origin, url.Values{"csrf": {token}}); status != http.StatusSeeOther {
		t.Fatalf("logout: %d", status)
	}
	// The old cookie, presented again, opens nothing: the session is gone server-side.
	replay := newConsoleClient(t, b)
	u, _ := url.Parse(b.AdminURL)
	replay.http.Jar.SetCookies(u, []*http.Cookie{{Name: ck.Name, Value: ck.Value, Path: "/"}})
	if status, _, _ := replay.get("/console/providers"); status != http.StatusSeeOther {
		t.Fatalf("the logged-out session still opens pages: %d", status)
	}

	// CONSOLE_LOGIN_RATE is 12/m here, and 5 attempts were counted above (the
	// refused forms are refused before the count): the limit is reached within 20.
	limited := false
	for range 20 {
		if status := newConsoleClient(t, b).login("not-a-key-of-this-broker"); status == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("20 more sign-in attempts in a minute were never refused")
	}
	if status := newConsoleClient(t, b).login(b.OperatorKey); status != http.StatusTooManyRequests {
		t.Fatalf("the right key over the limit: %d, want 429 (the limit counts attempts, not failures)", status)
	}
}

// TestConsoleAdminReach: what admin's key (the console's way to the
// vault and the handshake) opens. handshake.begin only for a re-consent of
// an existing connection without require_confirmation; no credential, by
// the vault's key check as by NATS permissions.
func TestConsoleAdminReach(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)
	if _, err := b.RegisterOIDC(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	id := connect(t, b, "ws-1")
	nc, err := nats.Connect(b.Infra.NATSURL, nats.UserInfo(natsauth.Admin, b.Infra.NATSPasswords[natsauth.Admin]),
		nats.CustomInboxPrefix(natsauth.InboxPrefix(natsauth.Admin)),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})) // the permissions violation below is expected
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	adminKey := b.Env["ADMIN_SERVICE_KEY"]
	admin := &natsx.Client{NC: nc, Prefix: messages.DefaultPrefix, APIKey: adminKey}
	returnURL := b.Agent.URL + "/return"

	for _, tc := range []struct {
		name string
		req  messages.BeginRequest
	}{
		{"a new consent", messages.BeginRequest{Provider: "acme", WorkspaceID: "ws-1", ReturnURL: returnURL}},
		{"a re-consent bound to a confirmation", messages.BeginRequest{Provider: "acme", WorkspaceID: "ws-1", ReturnURL: returnURL, ConnectionID: id, RequireConfirmation: true}},
	} {
		var out messages.BeginReply
		if err := admin.Request(ctx, messages.SubjectHandshakeBegin, tc.req, &out); !errors.Is(err, messages.ErrForbidden) {
			t.Fatalf("admin began %s: %v %+v, want forbidden", tc.name, err, out)
		}
	}
	var link messages.BeginReply
	if err := admin.Request(ctx, messages.SubjectHandshakeBegin, messages.BeginRequest{Provider: "acme", WorkspaceID: "ws-1", ReturnURL: returnURL, ConnectionID: id}, &link); err != nil || link.ConnectionID != id {
		t.Fatalf("admin's re-consent: %v %+v", err, link)
	}
	// Another workspace's name for the connection: the vault knows none.
	if err := admin.Request(ctx, messages.SubjectHandshakeBegin, messages.BeginRequest{Provider: "acme", WorkspaceID: "ws-2", ReturnURL: returnURL, ConnectionID: id}, &link); !errors.Is(err, messages.ErrNotFound) {
		t.Fatalf("a re-consent in the wrong workspace: %v", err)
	}

	// No credential: the vault refuses admin's key on tokens.get (over the
	// Gateway's own NATS user, so only the key check stands in the way)...
	viaGateway := &natsx.Client{NC: b.NC, Prefix: messages.DefaultPrefix, APIKey: adminKey}
	var cred messages.Credential
	if err := viaGateway.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: id, WorkspaceID: "ws-1"}, &cred); !errors.Is(err, messages.ErrForbidden) {
		t.Fatalf("tokens.get with admin's key: %v, want forbidden", err)
	}
	// ... and admin's NATS user may not even ask: the server drops the
	// request (a permissions violation), so no answer comes.
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := admin.Request(short, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: id, WorkspaceID: "ws-1"}, &cred); !errors.Is(err, natsx.ErrNoAnswer) || cred.AccessToken != "" {
		t.Fatalf("admin's NATS user on tokens.get: %v, want no answer", err)
	}
}

func slicesContainAll(values []string, parts ...string) bool {
	for _, v := range values {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(v, p)
		}
		if ok {
			return true
		}
	}
	return false
}

func getProvider(t *testing.T, b *systemtest.Broker, ref string) (p messages.Provider) {
	t.Helper()
	if err := b.Operator.Request(context.Background(), messages.SubjectProvidersGet, messages.ProviderRef{Provider: ref}, &p); err != nil {
		t.Fatal(err)
	}
	return p
}
