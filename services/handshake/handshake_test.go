package handshake_test

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
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

func TestConsentHappyPath(t *testing.T) {
	e := newEnv(t)
	rep := e.mustBegin("oidc")
	if rep.ConnectionID != "conn-1" || !strings.HasPrefix(rep.AuthURL, e.public+"/v1/connect/") {
		t.Fatalf("begin reply = %+v", rep)
	}
	if d := rep.ExpiresAt.Sub(e.clock.Now()); d < 9*time.Minute || d > 10*time.Minute {
		t.Fatalf("expires_at %v is not ~10m ahead", rep.ExpiresAt)
	}
	e.fakes.mu.Lock()
	created := e.fakes.creates[0]
	e.fakes.mu.Unlock()
	if created.ProviderID != "prov-oidc" || created.WorkspaceID != "ws-1" || strings.Join(created.Scopes, " ") != "openid email" {
		t.Fatalf("vault create = %+v", created)
	}
	// The vault expires the consent when its link does.
	if created.ExpiresAt == nil || !created.ExpiresAt.Equal(rep.ExpiresAt) {
		t.Fatalf("vault create expires_at = %v, want the link's %v", created.ExpiresAt, rep.ExpiresAt)
	}
	if gw, _ := apikey.NewSet().Add(apikey.Gateway, []string{apiKey}).Identify(apiKey); created.Actor != gw.KeyID {
		t.Fatalf("vault create names actor %q, want the Gateway key's id %q", created.Actor, gw.KeyID)
	}

	b := e.browser()
	resp, _ := get(t, b, rep.AuthURL)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("connect: HTTP %d", resp.StatusCode)
	}
	checkSecurityHeaders(t, resp)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Scheme+"://"+loc.Host+loc.Path != e.idp.srv.URL+"/authorize" {
		t.Fatalf("redirected to %s, want the discovered authorization endpoint", loc)
	}
	q := loc.Query()
	for k, want := range map[string]string{
		"response_type": "code", "client_id": clientID, "redirect_uri": e.public + "/v1/callback/prov-oidc",
		"scope": "openid email", "code_challenge_method": "S256", "access_type": "offline",
	} {
		if q.Get(k) != want {
			t.Errorf("authorization request %s = %q, want %q", k, q.Get(k), want)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if q.Get(k) == "" {
			t.Errorf("authorization request has no %s", k)
		}
	}
	if strings.Contains(loc.String(), "code_verifier") || q.Get("state") == "evil" {
		t.Fatalf("authorization URL leaks or is overridden: %s", loc)
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name, "nexus_hs_") {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/v1/callback" || cookie.MaxAge < 590 || cookie.MaxAge > 600 || cookie.Secure {
		t.Fatalf("binding cookie = %+v", cookie)
	}

	resp, body := e.callbackTo(b, q.Get("redirect_uri"), url.Values{"code": {"the-code"}, "state": {q.Get("state")}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback: HTTP %d: %s", resp.StatusCode, body)
	}
	checkSecurityHeaders(t, resp)
	if got, want := resp.Header.Get("Location"), returnURL+"?connection_id=conn-1&status=active"; got != want {
		t.Fatalf("back to %s, want %s", got, want)
	}
	x := e.fakes.lastExchange()
	sum := sha256.Sum256([]byte(x.CodeVerifier))
	if x.ConnectionID != "conn-1" || x.Code != "the-code" || x.RedirectURI != e.public+"/v1/callback/prov-oidc" || x.Nonce != q.Get("nonce") ||
		base64.RawURLEncoding.EncodeToString(sum[:]) != q.Get("code_challenge") {
		t.Fatalf("vault exchange = %+v does not match the authorization request", x)
	}
	if strings.Contains(loc.String(), x.CodeVerifier) || strings.Contains(q.Get("state"), x.CodeVerifier) {
		t.Fatal("verifier appears in the authorization URL")
	}

	// Replay: the flow was consumed.
	resp, body = e.callbackTo(b, q.Get("redirect_uri"), url.Values{"code": {"the-code"}, "state": {q.Get("state")}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "already used") {
		t.Fatalf("replay: HTTP %d: %s", resp.StatusCode, body)
	}
	if _, _, n := e.fakes.counts(); n != 1 {
		t.Fatalf("vault exchange called %d times, want 1", n)
	}
	// The connect link no longer works either.
	resp, body = get(t, b, rep.AuthURL)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "start again") {
		t.Fatalf("used connect link: HTTP %d: %s", resp.StatusCode, body)
	}
}

func checkSecurityHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	for k, want := range map[string]string{
		"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
}

func TestBeginRefusesBadRequestsBeforeCreatingAnything(t *testing.T) {
	e := newEnv(t)
	for name, req := range map[string]messages.BeginRequest{
		"return_url outside allowlist": {Provider: "oidc", WorkspaceID: "ws", ReturnURL: "https://evil.example.com/cb"},
		"return_url sibling path":      {Provider: "oidc", WorkspaceID: "ws", ReturnURL: "https://app.example.com/connectedx"},
		"return_url userinfo":          {Provider: "oidc", WorkspaceID: "ws", ReturnURL: "https://app.example.com@evil.com/connected"},
		"no return_url":                {Provider: "oidc", WorkspaceID: "ws"},
		"no provider":                  {WorkspaceID: "ws", ReturnURL: returnURL},
		"no workspace":                 {Provider: "oidc", ReturnURL: returnURL},
		"bad scope":                    {Provider: "oidc", WorkspaceID: "ws", ReturnURL: returnURL, Scopes: []string{"a b"}},
	} {
		_, err := e.begin(req)
		if !errors.Is(err, messages.ErrInvalidRequest) {
			t.Errorf("%s: err = %v, want invalid_request", name, err)
		}
	}
	if gets, creates, _ := e.fakes.counts(); gets != 0 || creates != 0 {
		t.Fatalf("admin asked %d times, vault create %d times; want 0", gets, creates)
	}

	if _, err := e.begin(messages.BeginRequest{Provider: "nope", WorkspaceID: "ws", ReturnURL: returnURL}); !errors.Is(err, messages.ErrNotFound) {
		t.Errorf("unknown provider: err = %v, want not_found", err)
	}
	if _, err := e.begin(messages.BeginRequest{Provider: "static", WorkspaceID: "ws", ReturnURL: returnURL}); !errors.Is(err, messages.ErrInternal) {
		t.Errorf("static provider without a usable schema: err = %v, want internal", err)
	}
	if _, creates, _ := e.fakes.counts(); creates != 0 {
		t.Fatalf("vault create called %d times, want 0", creates)
	}
}

func TestBeginTransport(t *testing.T) {
	e := newEnv(t)
	subject := messages.Subject("", messages.SubjectHandshakeBegin)
	request := func(key string, body []byte) error {
		msg := nats.NewMsg(subject)
		msg.Data = body
		if key != "" {
			msg.Header.Set(messages.HeaderAPIKey, key)
		}
		resp, err := e.nc.RequestMsg(msg, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return natsx.DecodeReply(resp, &messages.BeginReply{})
	}
	for name, body := range map[string]string{"malformed": `{"provider":`, "empty": ``, "array": `[]`, "wrong type": `{"scopes":"x"}`} {
		if err := request(apiKey, []byte(body)); !errors.Is(err, messages.ErrInvalidRequest) {
			t.Errorf("%s JSON: err = %v, want invalid_request", name, err)
		}
	}
	if err := request("", []byte(`{}`)); !errors.Is(err, messages.ErrUnauthorized) {
		t.Errorf("no API key: err = %v, want unauthorized", err)
	}
	if err := request("wrong-key-0123456789", []byte(`{}`)); !errors.Is(err, messages.ErrUnauthorized) {
		t.Errorf("wrong API key: err = %v, want unauthorized", err)
	}
}

func TestPlainOAuth2AndReconsent(t *testing.T) {
	e := newEnv(t)
	rep, err := e.begin(messages.BeginRequest{Provider: "plain", WorkspaceID: "ws-1", ReturnURL: "http://localhost:3000/done?tab=2", ConnectionID: "conn-existing"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ConnectionID != "conn-existing" {
		t.Fatalf("connection id = %s", rep.ConnectionID)
	}
	b := e.browser()
	loc := e.connect(b, rep.AuthURL)
	q := loc.Query()
	if loc.Host != "github.example.com" || q.Get("x") != "1" || q.Get("scope") != "repo" || q.Get("nonce") != "" || q.Get("code_challenge_method") != "S256" {
		t.Fatalf("authorization URL = %s", loc)
	}
	// Its server sends no iss: the provider's own callback path tells its
	// responses apart.
	resp, _ := e.callback(b, url.Values{"code": {"c"}, "state": {q.Get("state")}})
	if got, want := resp.Header.Get("Location"), "http://localhost:3000/done?tab=2&connection_id=conn-existing&status=active"; got != want {
		t.Fatalf("back to %s, want %s", got, want)
	}
}

func TestCallbackRejections(t *testing.T) {
	e := newEnv(t)

	t.Run("forged state", func(t *testing.T) {
		b := e.browser()
		loc := e.connect(b, e.mustBegin("oidc").AuthURL)
		st := loc.Query().Get("state")
		forged := forgeStateMAC(t, st)
		resp, body := e.callback(b, url.Values{"code": {"c"}, "state": {forged}})
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(body, "start again") {
			t.Fatalf("HTTP %d, Location %q: %s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		checkSecurityHeaders(t, resp)
		for _, s := range []string{"state", "goroutine", "nexus:hs"} {
			if strings.Contains(body, s) {
				t.Errorf("error page mentions %q", s)
			}
		}
	})

	t.Run("no state", func(t *testing.T) {
		resp, _ := e.callback(e.browser(), url.Values{"code": {"c"}})
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("HTTP %d", resp.StatusCode)
		}
	})

	t.Run("missing cookie", func(t *testing.T) {
		owner := e.browser()
		rep := e.mustBegin("oidc")
		loc := e.connect(owner, rep.AuthURL)
		q := url.Values{"code": {"c"}, "state": {loc.Query().Get("state")}}
		resp, body := e.callback(e.browser(), q)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "different browser") {
			t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
		}
		// Another browser must not burn the owner's consent: the flow is
		// still there and the owner's callback completes it.
		resp, _ = e.callback(owner, q)
		if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "status=active") {
			t.Fatalf("the owner's callback after a foreign one: HTTP %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})

	t.Run("access denied", func(t *testing.T) {
		b := e.browser()
		rep := e.mustBegin("oidc")
		loc := e.connect(b, rep.AuthURL)
		resp, _ := e.callback(b, url.Values{"error": {"access_denied"}, "error_description": {"<b>The user said no</b>"}, "state": {loc.Query().Get("state")}})
		want := returnURL + "?connection_id=" + rep.ConnectionID + "&error=access_denied&status=failed"
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
			t.Fatalf("HTTP %d, Location %q, want %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
		f := assertFailed(t, e, rep.ConnectionID, "access_denied")
		if strings.Contains(f.Reason.Message, "said no") {
			t.Errorf("the provider's free text was kept: %q", f.Reason.Message)
		}
	})

	t.Run("an error code of no standard", func(t *testing.T) {
		b := e.browser()
		rep := e.mustBegin("oidc")
		loc := e.connect(b, rep.AuthURL)
		resp, _ := e.callback(b, url.Values{"error": {"call_us_at_0800_123"}, "state": {loc.Query().Get("state")}})
		if !strings.Contains(resp.Header.Get("Location"), "error=provider_error") {
			t.Fatalf("Location %q", resp.Header.Get("Location"))
		}
		assertFailed(t, e, rep.ConnectionID, "provider_error")
	})

	t.Run("iss from a server that does not send iss", func(t *testing.T) {
		b := e.browser()
		rep := e.mustBegin("oidc")
		loc := e.connect(b, rep.AuthURL)
		_, _, before := e.fakes.counts()
		resp, _ := e.callback(b, url.Values{"code": {"c"}, "state": {loc.Query().Get("state")}, "iss": {e.idp.srv.URL}})
		if !strings.Contains(resp.Header.Get("Location"), "error=unexpected_iss") {
			t.Fatalf("Location %q", resp.Header.Get("Location"))
		}
		if _, _, after := e.fakes.counts(); after != before {
			t.Fatal("the code was sent to the vault with an unexpected iss")
		}
		assertFailed(t, e, rep.ConnectionID, "unexpected_iss")
	})

	t.Run("an error response from another server", func(t *testing.T) {
		// iss is compared first: a server that sends iss has sent none, so
		// the response is not its own, and its error decides nothing.
		b := e.browser()
		rep := e.mustBegin("strict")
		loc := e.connect(b, rep.AuthURL)
		resp, _ := e.callback(b, url.Values{"error": {"access_denied"}, "state": {loc.Query().Get("state")}})
		if !strings.Contains(resp.Header.Get("Location"), "error=issuer_mismatch") {
			t.Fatalf("Location %q", resp.Header.Get("Location"))
		}
		assertFailed(t, e, rep.ConnectionID, "issuer_mismatch")
	})

	t.Run("another provider's callback", func(t *testing.T) {
		for _, path := range []string{"/v1/callback/prov-strict", messages.SharedCallbackPath} {
			b := e.browser()
			rep := e.mustBegin("oidc")
			loc := e.connect(b, rep.AuthURL)
			_, _, before := e.fakes.counts()
			resp, _ := e.callbackTo(b, e.public+path, url.Values{"code": {"c"}, "state": {loc.Query().Get("state")}})
			if !strings.Contains(resp.Header.Get("Location"), "error=wrong_callback") {
				t.Fatalf("%s: Location %q", path, resp.Header.Get("Location"))
			}
			if _, _, after := e.fakes.counts(); after != before {
				t.Fatalf("%s: the code was sent to the vault from another callback", path)
			}
		}
	})

	t.Run("a registration on the shared callback", func(t *testing.T) {
		b := e.browser()
		rep := e.mustBegin("legacy")
		loc := e.connect(b, rep.AuthURL)
		if got := loc.Query().Get("redirect_uri"); got != e.public+messages.SharedCallbackPath {
			t.Fatalf("redirect_uri = %q", got)
		}
		resp, _ := e.callback(b, url.Values{"code": {"c"}, "state": {loc.Query().Get("state")}})
		if !strings.Contains(resp.Header.Get("Location"), "status=active") {
			t.Fatalf("Location %q", resp.Header.Get("Location"))
		}
	})

	t.Run("iss mismatch", func(t *testing.T) {
		b := e.browser()
		rep := e.mustBegin("strict")
		loc := e.connect(b, rep.AuthURL)
		_, _, before := e.fakes.counts()
		resp, _ := e.callback(b, url.Values{"code": {"c"}, "state": {loc.Query().Get("state")}, "iss": {"https://attacker.example.com"}})
		want := returnURL + "?connection_id=" + rep.ConnectionID + "&error=issuer_mismatch&status=failed"
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
			t.Fatalf("HTTP %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if _, _, after := e.fakes.counts(); after != before {
			t.Fatal("the code was sent to the vault despite an issuer mismatch")
		}
		assertFailed(t, e, rep.ConnectionID, "issuer_mismatch")
	})

	t.Run("iss required by discovery but missing", func(t *testing.T) {
		b := e.browser()
		rep := e.mustBegin("strict")
		loc := e.connect(b, rep.AuthURL)
		_, _, before := e.fakes.counts()
		resp, _ := e.callback(b, url.Values{"code": {"c"}, "state": {loc.Query().Get("state")}})
		if !strings.Contains(resp.Header.Get("Location"), "error=issuer_mismatch") {
			t.Fatalf("Location %q", resp.Header.Get("Location"))
		}
		if _, _, after := e.fakes.counts(); after != before {
			t.Fatal("the code was sent to the vault without the required iss")
		}
	})

	t.Run("vault refuses the code", func(t *testing.T) {
		e.fakes.mu.Lock()
		e.fakes.exchangeFn = func(messages.VaultExchange) error {
			return messages.Errorf(messages.CodeProviderError, "invalid_grant")
		}
		e.fakes.mu.Unlock()
		defer func() { e.fakes.mu.Lock(); e.fakes.exchangeFn = nil; e.fakes.mu.Unlock() }()
		b := e.browser()
		rep := e.mustBegin("oidc")
		loc := e.connect(b, rep.AuthURL)
		resp, _ := e.callback(b, url.Values{"code": {"c"}, "state": {loc.Query().Get("state")}})
		want := returnURL + "?connection_id=" + rep.ConnectionID + "&error=provider_error&status=failed"
		if resp.Header.Get("Location") != want {
			t.Fatalf("Location %q, want %q", resp.Header.Get("Location"), want)
		}
		if f := assertFailed(t, e, rep.ConnectionID, "provider_error"); f.Reason.Message != "the authorization code could not be redeemed (provider_error)" {
			t.Errorf("reason message = %q", f.Reason.Message)
		}
	})
}

func TestExpiry(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	rep := e.mustBegin("oidc")
	loc := e.connect(b, rep.AuthURL)

	rep2 := e.mustBegin("oidc")
	e.clock.Advance(10*time.Minute + time.Second)

	resp, body := e.callback(b, url.Values{"code": {"c"}, "state": {loc.Query().Get("state")}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "expired") {
		t.Fatalf("expired state: HTTP %d: %s", resp.StatusCode, body)
	}
	resp, body = get(t, b, rep2.AuthURL)
	if resp.StatusCode != http.StatusGone || !strings.Contains(body, "expired") {
		t.Fatalf("expired connect link: HTTP %d: %s", resp.StatusCode, body)
	}
	if _, _, n := e.fakes.counts(); n != 0 {
		t.Fatalf("vault exchange called %d times", n)
	}
}

func TestConnectUnknownAndHealth(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	for _, path := range []string{"/v1/connect/nope", "/v1/connect/" + strings.Repeat("A", 43), "/v1/unknown"} {
		resp, body := get(t, b, e.public+path)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "<h1>") {
			t.Errorf("%s: HTTP %d %s", path, resp.StatusCode, body)
		}
		checkSecurityHeaders(t, resp)
	}
	if resp, body := get(t, b, e.public+"/healthz"); resp.StatusCode != http.StatusOK {
		t.Errorf("public /healthz: HTTP %d %s", resp.StatusCode, body)
	}
	// Readiness and metrics are internal: the public edge does not serve them.
	for _, path := range []string{"/readyz", "/metrics"} {
		if resp, _ := get(t, b, e.public+path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("public %s: HTTP %d, want 404", path, resp.StatusCode)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if resp, body := get(t, b, e.internal+path); resp.StatusCode != http.StatusOK {
			t.Errorf("internal %s: HTTP %d %s", path, resp.StatusCode, body)
		}
	}
	if resp, body := get(t, b, e.internal+"/metrics"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Errorf("internal /metrics: HTTP %d", resp.StatusCode)
	}
}

func TestLoadConfig(t *testing.T) {
	l := config.FromMap(map[string]string{
		"API_KEY": apiKey, "HANDSHAKE_SERVICE_KEY": serviceKey, "REDIS_URL": "redis://127.0.0.1:6379/0", "STATE_KEY": base64.StdEncoding.EncodeToString(make([]byte, 32)),
		"PUBLIC_URL": "https://connect.example.com/", "ALLOWED_RETURN_URLS": "https://app.example.com/cb, http://localhost:3000",
		"ENCRYPTION_KEY": "must-not-be-read", "DATABASE_URL": "must-not-be-read",
		"STATE_KEYS_PREVIOUS": base64.StdEncoding.EncodeToString(make([]byte, 32)) + "," + base64.StdEncoding.EncodeToString(make([]byte, 32)),
	})
	cfg := handshake.LoadConfig(l)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != ":8080" || cfg.FlowTTL != 10*time.Minute || len(cfg.AllowedReturnURLs) != 2 || len(cfg.StateKey) != 32 || len(cfg.PreviousStateKeys) != 2 {
		t.Fatalf("cfg = %+v", cfg)
	}

	l = config.FromMap(map[string]string{
		"PUBLIC_URL": "ftp://x", "ALLOWED_RETURN_URLS": "javascript:alert(1),https://ok.example.com,https://u@x.example.com", "STATE_KEY": "short", "FLOW_TTL": "2s",
		"PROVIDER_PRIVATE_NETWORKS": "192.168.0.0/16,100.0.0.0/8",
		"STATE_KEYS_PREVIOUS":       "c2hvcnQ=",
	})
	handshake.LoadConfig(l)
	err := l.Err()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, name := range []string{"API_KEY", "REDIS_URL", "STATE_KEY", "STATE_KEYS_PREVIOUS: entry 1", "PUBLIC_URL", "ALLOWED_RETURN_URLS: entry 1", "ALLOWED_RETURN_URLS: entry 3", "FLOW_TTL",
		"PROVIDER_PRIVATE_NETWORKS: 100.0.0.0/8 includes public addresses"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("problems do not name %s:\n%v", name, err)
		}
	}
	if l := config.FromMap(map[string]string{}); true {
		handshake.LoadConfig(l)
		if err := l.Err(); err == nil || !strings.Contains(err.Error(), "ALLOWED_RETURN_URLS: is required") {
			t.Errorf("missing ALLOWED_RETURN_URLS not reported: %v", err)
		}
	}
}

// forgeStateMAC returns st with one bit of its MAC flipped, canonically
// encoded: a state that differs from the genuine one in the MAC itself, not
// merely in how the MAC is spelled.
func forgeStateMAC(t *testing.T, st string) string {
	t.Helper()
	p, m, ok := strings.Cut(st, ".")
	mac, err := base64.RawURLEncoding.Strict().DecodeString(m)
	if !ok || err != nil || len(mac) != sha256.Size {
		t.Fatalf("state %q has no 32-byte MAC (%v)", st, err)
	}
	mac[len(mac)-1] ^= 0x01
	forged := p + "." + base64.RawURLEncoding.EncodeToString(mac)
	if forged == st {
		t.Fatal("the forged state equals the genuine one")
	}
	return forged
}

func assertFailed(t *testing.T, e *env, connectionID, code string) messages.VaultFailConnection {
	t.Helper()
	for _, f := range e.fakes.failures() {
		if f.ConnectionID == connectionID {
			if f.Reason.Code != code {
				t.Fatalf("connection %s failed with %q, want %q", connectionID, f.Reason.Code, code)
			}
			return f
		}
	}
	t.Fatalf("connection %s was not marked failed", connectionID)
	return messages.VaultFailConnection{}
}

// TestPublicURLMustBeHTTPS: the edge carries authorization codes and typed
// credentials: plain http only on loopback, for development.
func TestPublicURLMustBeHTTPS(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://connect.example.com":    true,
		"http://127.0.0.1:8080":          true,
		"http://localhost:8080/base":     true,
		"http://[::1]:8080":              true,
		"http://connect.example.com":     false,
		"http://10.0.0.5:8080":           false,
		"http://127.0.0.1.example.com:8": false,
	} {
		l := config.FromMap(map[string]string{"API_KEY": apiKey, "HANDSHAKE_SERVICE_KEY": serviceKey, "REDIS_URL": "redis://127.0.0.1:6379/0",
			"STATE_KEY": testkit.Key32(t), "PUBLIC_URL": raw, "ALLOWED_RETURN_URLS": "https://app.example.com/cb"})
		handshake.LoadConfig(l)
		if err := l.Err(); (err == nil) != ok {
			t.Errorf("PUBLIC_URL=%s: %v", raw, err)
		}
	}
}
