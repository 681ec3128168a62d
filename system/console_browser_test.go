package system_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/system/systemtest"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// chromiumPath is Debian's headless-capable Chromium (.ci/run installs it).
const chromiumPath = "/usr/bin/chromium"

// cspProbe runs in every page before its own scripts (the DevTools
// protocol's, which the page's policy does not restrict) and records each
// violation of the policy the page reports.
const cspProbe = `window.__csp = []; document.addEventListener("securitypolicyviolation", function (e) { window.__csp.push(e.violatedDirective + " " + e.blockedURI); });`

// browser is one headless Chromium tab on the console, with what its
// console said.
type browser struct {
	t        *testing.T
	ctx      context.Context
	base     string
	mu       sync.Mutex
	messages []string // errors, exceptions and the browser's security log
}

// newBrowser starts Chromium (failing loudly when it is missing) with a
// 1280x900 window.
func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the console's browser tests need Chromium at %s (apt-get install -y chromium): %v", chromiumPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumPath), chromedp.NoSandbox, chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	br := &browser{t: t, ctx: ctx, base: base}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspProbe}); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() || m.Source == "security" {
				br.mu.Lock()
				br.messages = append(br.messages, m.String()+" ("+m.URL+")")
				br.mu.Unlock()
			}
		}
	}()
	return br
}

// do runs steps within 20 seconds; on failure it saves a screenshot,
// prints its path and fails the test.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail("%s: %v", what, err)
	}
}

// fail saves a screenshot of the page to the artifacts directory
// (ARTIFACTS_DIR, or a new temporary one) and fails the test.
func (b *browser) fail(format string, args ...any) {
	b.t.Helper()
	msg := fmt.Sprintf(format, args...)
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir, _ = os.MkdirTemp("", "console-artifacts-")
	}
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err == nil {
		path := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(b.t.Name())+".png")
		if werr := os.WriteFile(path, shot, 0o644); werr == nil {
			msg += "\nscreenshot: " + path
		}
	}
	b.t.Fatal(msg)
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.fail("text of %s: %v", sel, err)
	}
	return s
}

func (b *browser) eval(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.fail("evaluate %s: %v", expr, err)
	}
	return s
}

// open navigates to a console path and waits for its heading.
func (b *browser) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS("h1")))
}

// cleanPage: the page reported no violation of its policy, and the console
// no error, so far.
func (b *browser) cleanPage(where string) {
	b.t.Helper()
	if v := b.eval(`JSON.stringify(window.__csp || ["no probe"])`); v != "[]" {
		b.fail("%s: policy violations %s", where, v)
	}
	b.mu.Lock()
	msgs := append([]string(nil), b.messages...)
	b.mu.Unlock()
	if len(msgs) > 0 {
		b.fail("%s: the browser console reported %q", where, msgs)
	}
}

// forget drops what the console said so far.
func (b *browser) forget() {
	b.mu.Lock()
	b.messages = nil
	b.mu.Unlock()
}

func (b *browser) login(key string) {
	b.t.Helper()
	b.open("/console/login")
	b.do("sign in", chromedp.SendKeys(chromedp.CSS("#key"), key), navigates(chromedp.Click(chromedp.CSS("#login button"))))
}

// navigates runs an action that leads to another page, and waits until
// that page is loaded: the page before is marked, and the mark is gone
// only from a new document.
// While the page changes, an evaluation can fail (its context is gone):
// such failures only mean "not yet".
func navigates(a chromedp.Action[chromedp.Void]) chromedp.Action[chromedp.Void] {
	mark := chromedp.Evaluate[bool](`window.__left = true`)
	arrived := chromedp.Evaluate[bool](`!window.__left && document.readyState === "complete"`)
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		if _, err := mark(ctx, t); err != nil {
			return chromedp.Void{}, err
		}
		if _, err := a(ctx, t); err != nil {
			return chromedp.Void{}, err
		}
		for {
			if ok, err := arrived(ctx, t); err == nil && ok {
				return chromedp.Void{}, nil
			}
			select {
			case <-ctx.Done():
				return chromedp.Void{}, fmt.Errorf("the next page never loaded: %w", ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// TestConsoleBrowser drives the console in headless Chromium against the
// whole broker: sign-in (a wrong key and the Gateway's refused), a provider
// created from a catalog template with its secret never shown, a consented
// connection listed and then revoked, a live event arriving on the events
// page, the attention queue with a re-consent link that recovers the
// connection, the audit log and the keys page, every page without a policy
// violation or console error, and a 390x844 phone viewport without
// horizontal overflow.
func TestConsoleBrowser(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{AccessTokenLifespan: 3 * time.Second})
	ctx := ctxT(t)
	if _, err := b.RegisterOIDC(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	toRevoke := connect(t, b, "ws-1")
	needsUser := connect(t, b, "ws-1")
	br := newBrowser(t, b.AdminURL)

	signedIn := t.Run("sign-in", func(t *testing.T) {
		br.t = t
		for name, key := range map[string]string{"wrong key": "not-a-key-of-this-broker", "Gateway key": gatewayKey} {
			br.login(key)
			if msg := br.text("p.error"); !strings.Contains(msg, "not an operator key") {
				br.fail("%s: the sign-in page said %q", name, msg)
			}
		}
		// The refusals answer 401, which Chrome logs as a failed load: expected here.
		br.forget()
		br.login(b.OperatorKey)
		if got := br.text("h1"); got != "Overview" {
			br.fail("after signing in: %q", got)
		}
		if cookie := br.eval(`document.cookie`); cookie != "" {
			br.fail("a script can read the console's cookies: %q", cookie)
		}
		br.cleanPage("sign-in")
	})
	if !signedIn {
		return // every page below needs the session
	}

	t.Run("provider from a template", func(t *testing.T) {
		br.t = t
		const secret = "zd-secret-never-shown-9c1e"
		br.open("/console/providers/new")
		br.do("create from the zendesk template",
			chromedp.Click(chromedp.CSS(`a[href="/console/providers/new?template=zendesk"]`)),
			chromedp.WaitVisible(chromedp.CSS("#template-form")),
			chromedp.SetValue(chromedp.CSS("#name"), "zendesk-console"),
			chromedp.SendKeys(chromedp.CSS("#param_subdomain"), "acme"),
			chromedp.SendKeys(chromedp.CSS("#client_id"), "zd-client"),
			chromedp.SendKeys(chromedp.CSS("#client_secret"), secret),
			chromedp.Click(chromedp.CSS("#template-form button")),
			chromedp.WaitVisible(chromedp.CSS("p.notice")),
		)
		if got := br.text("#secret-state"); got != "set" {
			br.fail("client secret state %q, want set", got)
		}
		if html := br.eval(`document.documentElement.outerHTML`); strings.Contains(html, secret) {
			br.fail("the provider page shows the client secret")
		}
		p := getProvider(t, b, "zendesk-console")
		if p.ClientID != "zd-client" || !p.ClientSecretSet || !strings.Contains(p.AuthorizationEndpoint, "acme.zendesk.com") {
			br.fail("created provider %+v", p)
		}
		br.cleanPage("provider")
	})

	t.Run("connections", func(t *testing.T) {
		br.t = t
		br.open("/console/connections?workspace=ws-1&status=active")
		br.do("see the consented connection", chromedp.WaitVisible(chromedp.CSS(`#connections a[href="/console/connections/`+toRevoke+`"]`)))
		br.open("/console/connections/" + toRevoke)
		if got := br.text("#status"); got != "active" {
			br.fail("status %q", got)
		}
		br.do("revoke", chromedp.Click(chromedp.CSS("#confirm")), chromedp.Click(chromedp.CSS("#revoke-form button")), chromedp.WaitVisible(chromedp.CSS("p.notice")))
		if got := br.text("#status"); got != "revoked" {
			br.fail("after revoking: status %q", got)
		}
		var c messages.Connection
		if err := b.Gateway.Request(ctxT(t), messages.SubjectConnectionsGet, messages.ConnectionRef{ConnectionID: toRevoke}, &c); err != nil || c.Status != messages.StatusRevoked {
			br.fail("the vault has the connection %s (%v)", c.Status, err)
		}
		br.cleanPage("connections")
	})

	t.Run("live events", func(t *testing.T) {
		br.t = t
		br.open("/console/events")
		br.do("the stream opens", chromedp.WaitVisible(chromedp.CSS(`#stream-state[data-state="open"]`)))
		id := connect(t, b, "ws-live")
		br.do("the new connection's event arrives", chromedp.WaitVisible(chromedp.CSS(`#events li[data-connection="`+id+`"]`)))
		br.cleanPage("events")
	})

	t.Run("attention queue", func(t *testing.T) {
		br.t = t
		b.Provider.RevokeAllGrants()
		waitAttention(t, b, needsUser)
		br.open("/console/attention")
		br.do("the connection is queued", chromedp.WaitVisible(chromedp.CSS(`#attention a[href="/console/connections/`+needsUser+`"]`)))
		if row := br.text("#attention tbody"); !strings.Contains(row, "invalid_grant") || !strings.Contains(row, "ws-1") {
			br.fail("the queue says %q, want who (ws-1) and why (invalid_grant)", row)
		}
		br.do("make a re-consent link",
			chromedp.Click(chromedp.CSS(`#attention a[href="/console/connections/`+needsUser+`"]`)),
			chromedp.WaitVisible(chromedp.CSS("#reconsent-form")),
			chromedp.SendKeys(chromedp.CSS("#return_url"), b.Agent.URL+"/return"),
			chromedp.Click(chromedp.CSS("#reconsent-form button")),
			chromedp.WaitVisible(chromedp.CSS("#reconsent-link a")),
		)
		link := br.eval(`document.querySelector("#reconsent-link a").href`)
		if !strings.HasPrefix(link, b.PublicURL+"/v1/connect/") {
			br.fail("re-consent link %q", link)
		}
		// The user opens it: the connection recovers under its id.
		resp, err := systemtest.NewBrowser().Get(link)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if q := resp.Request.URL.Query(); q.Get("status") != "active" || q.Get("connection_id") != needsUser {
			br.fail("the re-consent landed at %s", resp.Request.URL.Redacted())
		}
		br.cleanPage("attention")
	})

	t.Run("audit and keys", func(t *testing.T) {
		br.t = t
		br.open("/console/audit")
		log := br.text("#audit")
		// handshake.begin is admin's record of the re-consent link, naming
		// the operator (the vault's record of the consent names admin).
		for _, action := range []string{messages.SubjectProvidersCreate, messages.SubjectVaultOperatorConnectionsRevoke, messages.SubjectVaultConnectionsCreate, messages.SubjectHandshakeBegin} {
			if !strings.Contains(log, action) {
				br.fail("the audit page has no %s record", action)
			}
		}
		// The re-consent's record names the operator's key and the connection.
		sum := sha256.Sum256([]byte(b.OperatorKey))
		row := br.eval(`Array.from(document.querySelectorAll("#audit tbody tr")).map(r => r.innerText).filter(t => t.includes("` + messages.SubjectHandshakeBegin + `")).join("\n")`)
		if !strings.Contains(row, "operator") || !strings.Contains(row, hex.EncodeToString(sum[:8])) || !strings.Contains(row, needsUser) || !strings.Contains(row, "ws-1") {
			br.fail("the re-consent's record %q: want the operator, its key id, the connection and ws-1", row)
		}
		br.open("/console/keys")
		if got := br.text("#keys-summary"); !strings.Contains(got, "Newest key") {
			br.fail("keys page: %q", got)
		}
		br.cleanPage("audit and keys")
	})

	t.Run("phone viewport", func(t *testing.T) {
		br.t = t
		br.do("emulate 390x844", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3), chromedp.EmulateMobile))
		for _, path := range []string{"/console/", "/console/providers", "/console/providers/new", "/console/providers/new?template=zendesk", "/console/providers/acme",
			"/console/connections", "/console/connections/" + needsUser, "/console/attention", "/console/events", "/console/audit", "/console/keys"} {
			br.open(path)
			if over := br.eval(`String(document.documentElement.scrollWidth - window.innerWidth)`); over != "0" && !strings.HasPrefix(over, "-") {
				br.fail("%s overflows a 390px screen by %spx", path, over)
			}
		}
		br.cleanPage("phone")
	})

	// The probe is live: a violation is seen (otherwise every check above
	// could pass by seeing nothing).
	t.Run("violations are seen", func(t *testing.T) {
		br.t = t
		br.eval(`(function () { var i = document.createElement("img"); i.src = "https://third-party.invalid/x.png"; document.body.appendChild(i); return ""; })()`)
		deadline := time.Now().Add(10 * time.Second)
		for br.eval(`JSON.stringify(window.__csp)`) == "[]" {
			if time.Now().After(deadline) {
				br.fail("a third-party image was not reported as a violation")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// connect runs a consent for acme in workspace and returns the connection id.
func connect(t *testing.T, b *systemtest.Broker, workspace string) string {
	t.Helper()
	q, err := b.Connect(ctxT(t), "acme", workspace)
	if err != nil || q.Get("status") != "active" {
		t.Fatalf("consent: %v %v", q, err)
	}
	return q.Get("connection_id")
}

// waitAttention reads tokens for id until the vault says the connection
// needs its user (its grant was revoked at the provider).
func waitAttention(t *testing.T, b *systemtest.Broker, id string) {
	t.Helper()
	ctx := ctxT(t)
	for {
		var cred messages.Credential
		err := b.Gateway.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: id, MinValidSeconds: ptr(0)}, &cred)
		if errors.Is(err, messages.ErrAttentionRequired) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the connection never needed attention: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
