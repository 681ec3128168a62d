package system_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsauth"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/system"
)

// TestDevProvider runs the launcher as `make run` three times on one data
// dir: without NEXUS_DEV_PROVIDER there is no development provider and no
// client secret for it; with it, the secret is generated, printed once and
// kept, and a provider registered by its issuer takes a consent through
// its sign-in page (Allow gives an active connection and a token, Deny a
// failed consent); after a restart the secret is the same and not printed,
// the registration still works, and the grants made before are gone
// (attention_required) until the user connects again.
func TestDevProvider(t *testing.T) {
	bin := binary(t, "./system/cmd/nexus")
	env := launcherEnv(t, t.TempDir())
	keysFile := filepath.Join(env["NEXUS_DATA_DIR"], "keys.env")

	l := startLauncher(t, bin, env)
	if out := l.output(); strings.Contains(out, "dev provider") || strings.Contains(out, system.DevProviderSecretVar) {
		t.Errorf("a development provider without NEXUS_DEV_PROVIDER:\n%s", out)
	}
	if _, ok := readKeys(t, keysFile)[system.DevProviderSecretVar]; ok {
		t.Errorf("keys.env has %s without NEXUS_DEV_PROVIDER", system.DevProviderSecretVar)
	}
	l.stop(t)

	env[system.DevProviderVar] = freeAddr(t)
	issuer := "http://" + env[system.DevProviderVar]
	l = startLauncher(t, bin, env)
	keys := readKeys(t, keysFile)
	secret := keys[system.DevProviderSecretVar]
	out := l.output()
	// The keys were made by the first run, which printed them: this one
	// made only the provider's secret, and prints only that.
	for _, k := range []string{"API_KEY", "ADMIN_API_KEY"} {
		if keys[k] == "" || strings.Contains(out, keys[k]) {
			t.Errorf("the second run printed %s again (or keys.env has none):\n%s", k, out)
		}
	}
	for _, w := range []string{
		"client_id nexus-dev, client_secret " + system.DevProviderSecretVar + "=" + secret + " ",
		"dev provider        " + issuer + "  (OpenID Connect; client_id nexus-dev",
		"access tokens live 1h0m0s",
	} {
		if secret == "" || !strings.Contains(out, w) {
			t.Errorf("the launcher does not print %q:\n%s", w, out)
		}
	}

	gw := launcherGateway(t, env, keys)
	p := registerDevProvider(t, env, keys, issuer, secret)
	br := newDevBrowser(t)
	begin := beginDev(t, gw, "")
	if q := br.consent(t, begin.AuthURL, "allow"); q.Get("status") != "active" || q.Get("connection_id") != begin.ConnectionID {
		t.Fatalf("Allow: back at the app with %v", q)
	}
	var cred messages.Credential
	if err := gw.Request(ctxT(t), messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: begin.ConnectionID, WorkspaceID: "ws-1"}, &cred); err != nil ||
		cred.AccessToken == "" || cred.Provider != "dev" || cred.AuthType != messages.AuthOAuth2 {
		t.Fatalf("tokens.get: %+v %v", cred, err)
	}
	denied := beginDev(t, gw, "")
	if q := br.consent(t, denied.AuthURL, "deny"); q.Get("status") != "failed" || q.Get("error") != "access_denied" {
		t.Fatalf("Deny: back at the app with %v", q)
	}
	l.stop(t)

	l = startLauncher(t, bin, env)
	if out := l.output(); strings.Contains(out, secret) || !strings.Contains(out, "dev provider        "+issuer) {
		t.Errorf("the restarted launcher prints the secret again, or no development provider:\n%s", out)
	}
	if again := readKeys(t, keysFile)[system.DevProviderSecretVar]; again != secret {
		t.Errorf("the client secret changed across a restart")
	}
	gw = launcherGateway(t, env, keys)
	err := gw.Request(ctxT(t), messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: begin.ConnectionID, WorkspaceID: "ws-1"}, &cred)
	if !errors.Is(err, messages.ErrAttentionRequired) {
		t.Fatalf("refresh of a grant the restarted provider never made: %v, want attention_required", err)
	}
	again := beginDev(t, gw, begin.ConnectionID)
	if q := br.consent(t, again.AuthURL, "allow"); q.Get("status") != "active" || q.Get("connection_id") != begin.ConnectionID {
		t.Fatalf("connecting again after the restart (provider %s): back at the app with %v", p.ID, q)
	}
	if err := gw.Request(ctxT(t), messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: begin.ConnectionID, WorkspaceID: "ws-1"}, &cred); err != nil {
		t.Fatalf("refresh after connecting again: %v", err)
	}
	l.stop(t)
}

// TestDevProviderRefused: the development provider's variables are checked
// with the launcher's others, before anything starts: an address off
// loopback (the provider signs anyone in), without a fixed port, shared
// with a service or busy, outside PROVIDER_PRIVATE_NETWORKS, and token
// lifetimes that are not durations, too short, or given without a provider.
func TestDevProviderRefused(t *testing.T) {
	bin := binary(t, "./system/cmd/nexus")
	for _, tc := range []struct {
		name string
		set  func(env map[string]string)
		want []string
	}{
		{"a public address", func(env map[string]string) { env["NEXUS_DEV_PROVIDER"] = "192.0.2.10:18090" },
			[]string{`NEXUS_DEV_PROVIDER="192.0.2.10:18090"`, "loopback only", "127.0.0.1:18090"}},
		{"every interface", func(env map[string]string) { env["NEXUS_DEV_PROVIDER"] = "0.0.0.0:18090" }, []string{`NEXUS_DEV_PROVIDER="0.0.0.0:18090"`, "loopback only"}},
		{"no host", func(env map[string]string) { env["NEXUS_DEV_PROVIDER"] = ":18090" }, []string{`NEXUS_DEV_PROVIDER=":18090"`, "loopback only"}},
		{"a name", func(env map[string]string) { env["NEXUS_DEV_PROVIDER"] = "localhost:18090" }, []string{`NEXUS_DEV_PROVIDER="localhost:18090"`, "loopback only"}},
		{"no port", func(env map[string]string) { env["NEXUS_DEV_PROVIDER"] = "127.0.0.1" }, []string{`NEXUS_DEV_PROVIDER="127.0.0.1"`, "host:port"}},
		{"port 0", func(env map[string]string) { env["NEXUS_DEV_PROVIDER"] = "127.0.0.1:0" }, []string{`NEXUS_DEV_PROVIDER="127.0.0.1:0"`, "issuer"}},
		{"a service's address", func(env map[string]string) { env["NEXUS_DEV_PROVIDER"] = env["ADMIN_HTTP_ADDR"] },
			[]string{"ADMIN_HTTP_ADDR and NEXUS_DEV_PROVIDER are both"}},
		{"busy", func(env map[string]string) { env["NEXUS_DEV_PROVIDER"] = hold(t) }, []string{"is already in use (NEXUS_DEV_PROVIDER"}},
		{"outside PROVIDER_PRIVATE_NETWORKS", func(env map[string]string) {
			env["NEXUS_DEV_PROVIDER"], env["PROVIDER_PRIVATE_NETWORKS"] = "127.0.0.5:18090", "127.0.0.1/32,10.0.0.0/8"
		}, []string{"NEXUS_DEV_PROVIDER=127.0.0.5:18090 is not in PROVIDER_PRIVATE_NETWORKS", "add 127.0.0.5/32"}},
		{"a lifetime that is no duration", func(env map[string]string) {
			env["NEXUS_DEV_PROVIDER"], env["NEXUS_DEV_PROVIDER_TOKEN_TTL"] = freeAddr(t), "soon"
		}, []string{`NEXUS_DEV_PROVIDER_TOKEN_TTL="soon"`}},
		{"too short a lifetime", func(env map[string]string) {
			env["NEXUS_DEV_PROVIDER"], env["NEXUS_DEV_PROVIDER_TOKEN_TTL"] = freeAddr(t), "2s"
		}, []string{`NEXUS_DEV_PROVIDER_TOKEN_TTL="2s"`, "at least 10s"}},
		{"a lifetime without a provider", func(env map[string]string) { env["NEXUS_DEV_PROVIDER_TOKEN_TTL"] = "90s" },
			[]string{"NEXUS_DEV_PROVIDER_TOKEN_TTL is set but NEXUS_DEV_PROVIDER is not"}},
		{"with the others", func(env map[string]string) {
			env["NEXUS_DEV_PROVIDER"], env["HTTP_ADDR"], env["NEXUS_NATS_PORT"] = "10.1.2.3:18090", ":8080", "nats"
		}, []string{`NEXUS_DEV_PROVIDER="10.1.2.3:18090"`, "HTTP_ADDR", "NEXUS_NATS_PORT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := launcherEnv(t, t.TempDir())
			tc.set(env)
			refusedAtOnce(t, bin, env, tc.want)
		})
	}
}

// TestDevProviderNotInServices: the services' binaries do not link the
// development provider (or fosite): only the launcher of make run can
// start it.
func TestDevProviderNotInServices(t *testing.T) {
	for _, s := range []string{"vault", "handshake", "admin", "refresher"} {
		cmd := exec.Command("go", "list", "-deps", "./services/"+s+"/cmd/"+s)
		cmd.Dir = ".."
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %s: %v", s, err)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 10 {
			t.Fatalf("go list %s: %d packages, too few to be its dependencies", s, len(deps))
		}
		for _, d := range deps {
			if strings.Contains(d, "testing/oidcprovider") || strings.HasPrefix(d, "github.com/ory/fosite") {
				t.Errorf("the %s binary links %s", s, d)
			}
		}
	}
}

// TestDevKeysKeepsEveryLine: a keys.env missing a key gets it added, and
// keeps the lines DevKeys was not asked for (the dev provider's secret when
// the provider is off this time) instead of dropping them.
func TestDevKeysKeepsEveryLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.env")
	keys, created, err := system.DevKeys(path, true)
	if err != nil || keys[system.DevProviderSecretVar] == "" || len(created) != len(keys) {
		t.Fatalf("first run: %v, created %v", err, created)
	}
	var kept bytes.Buffer
	for k, v := range keys {
		if k != "STATE_KEY" {
			fmt.Fprintf(&kept, "%s=%s\n", k, v)
		}
	}
	kept.WriteString("SOMETHING_ELSE=mine\n")
	if err := os.WriteFile(path, kept.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	again, created, err := system.DevKeys(path, false)
	if err != nil || len(created) != 1 || created[0] != "STATE_KEY" {
		t.Fatalf("second run: %v, created %v, want STATE_KEY alone", err, created)
	}
	onDisk := readKeys(t, path)
	for k, v := range keys {
		if k != "STATE_KEY" && (again[k] != v || onDisk[k] != v) {
			t.Errorf("%s changed or was dropped", k)
		}
	}
	if onDisk["SOMETHING_ELSE"] != "mine" || onDisk["STATE_KEY"] == "" {
		t.Errorf("keys.env after the second run: SOMETHING_ELSE=%q, STATE_KEY set %t", onDisk["SOMETHING_ELSE"], onDisk["STATE_KEY"] != "")
	}
}

// launcherGateway connects to the launcher's NATS as the Gateway, with its
// password and key from keys.env.
func launcherGateway(t *testing.T, env, keys map[string]string) *natsx.Client {
	t.Helper()
	nc, err := nats.Connect("nats://127.0.0.1:"+env["NEXUS_NATS_PORT"],
		nats.UserInfo(natsauth.Gateway, keys[system.NATSPasswordVar(natsauth.Gateway)]), nats.CustomInboxPrefix(natsauth.InboxPrefix(natsauth.Gateway)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return &natsx.Client{NC: nc, Prefix: messages.DefaultPrefix, APIKey: keys["API_KEY"]}
}

// registerDevProvider registers the development provider with admin's
// HTTP API by issuer, as the README does.
func registerDevProvider(t *testing.T, env, keys map[string]string, issuer, secret string) messages.Provider {
	t.Helper()
	body, _ := json.Marshal(messages.Provider{Name: "dev", Type: messages.ProviderOIDC, Issuer: issuer, ClientID: system.DevProviderClientID,
		ClientSecret: secret, Scopes: []string{"openid", "offline_access", "profile"}})
	req, _ := http.NewRequestWithContext(ctxT(t), http.MethodPost, "http://"+env["ADMIN_HTTP_ADDR"]+"/v1/providers", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+keys["ADMIN_API_KEY"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(resp.Body)
	var p messages.Provider
	if resp.StatusCode/100 != 2 || json.Unmarshal(reply, &p) != nil || p.AuthorizationEndpoint != issuer+"/authorize" {
		t.Fatalf("registering the development provider: %d %s", resp.StatusCode, reply)
	}
	return p
}

// beginDev begins a consent at the development provider for ws-1 (again
// for connectionID when set), returning to the development default app.
func beginDev(t *testing.T, gw *natsx.Client, connectionID string) messages.BeginReply {
	t.Helper()
	var out messages.BeginReply
	if err := gw.Request(ctxT(t), messages.SubjectHandshakeBegin, messages.BeginRequest{
		Provider: "dev", WorkspaceID: "ws-1", ReturnURL: "http://localhost:3000/done", ConnectionID: connectionID,
	}, &out); err != nil {
		t.Fatalf("handshake.begin: %v", err)
	}
	return out
}

// devBrowser is a person's browser: it keeps cookies, follows redirects,
// and stops at the app's return_url (nothing listens on localhost:3000).
type devBrowser struct{ *http.Client }

const devReturnURL = "http://localhost:3000/"

func newDevBrowser(t *testing.T) devBrowser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return devBrowser{&http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), devReturnURL) {
			return http.ErrUseLastResponse
		}
		if len(via) > 10 {
			return errors.New("too many redirects")
		}
		return nil
	}}}
}

var (
	pageInput  = regexp.MustCompile(`<input id="username" name="username" value="([^"]*)"`)
	pageButton = regexp.MustCompile(`<button type="submit" name="consent" value="([a-z]+)">`)
)

// consent opens authURL, reads the sign-in page as a person would (what
// asks, for what, and the form), answers it by pressing the button whose
// value is choice, signed in as the name the page suggests, and returns
// the query the browser came back to the app with.
func (b devBrowser) consent(t *testing.T, authURL, choice string) url.Values {
	t.Helper()
	resp, err := b.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	pageURL := resp.Request.URL
	if resp.StatusCode != http.StatusOK || pageURL.Path != "/login" {
		t.Fatalf("the consent link led to %s (%d), not the sign-in page:\n%s", pageURL.Redacted(), resp.StatusCode, page)
	}
	for _, w := range []string{"<strong>nexus-dev</strong> asks for", "<code>offline_access</code>", "<form method=\"post\">"} {
		if !bytes.Contains(page, []byte(w)) {
			t.Fatalf("the sign-in page does not show %q:\n%s", w, page)
		}
	}
	name := pageInput.FindSubmatch(page)
	var buttons []string
	for _, m := range pageButton.FindAllSubmatch(page, -1) {
		buttons = append(buttons, string(m[1]))
	}
	if name == nil || strings.Join(buttons, ",") != "allow,deny" {
		t.Fatalf("the sign-in page has no name field, or not Allow and Deny (%v):\n%s", buttons, page)
	}
	// The form has no action: the browser posts it where it was shown.
	form := url.Values{"username": {html.UnescapeString(string(name[1]))}, "consent": {choice}}
	req, _ := http.NewRequest(http.MethodPost, pageURL.String(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", pageURL.Scheme+"://"+pageURL.Host)
	resp, err = b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(back.String(), devReturnURL) {
		t.Fatalf("after %s the browser is at %s (%d), not back at the app:\n%s", choice, resp.Request.URL.Redacted(), resp.StatusCode, body)
	}
	return back.Query()
}
