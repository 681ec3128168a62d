package oidcprovider

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

const redirectURL = "http://127.0.0.1:1/callback" // never dialled: the browser stops before it

func newServer(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func addClient(t *testing.T, s *Server, c Client) *oauth2.Config {
	t.Helper()
	if c.ID == "" {
		c.ID = "client-" + strings.ReplaceAll(t.Name(), "/", "-")
	}
	if c.Secret == "" {
		c.Secret = "secret-" + c.ID
	}
	if c.RedirectURIs == nil {
		c.RedirectURIs = []string{redirectURL}
	}
	if err := s.AddClient(c); err != nil {
		t.Fatal(err)
	}
	style := oauth2.AuthStyleInHeader
	if c.AuthMethod == "client_secret_post" {
		style = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{
		ClientID:     c.ID,
		ClientSecret: c.Secret,
		RedirectURL:  c.RedirectURIs[0],
		Scopes:       []string{oidc.ScopeOpenID, oidc.ScopeOfflineAccess, "profile"},
		Endpoint: oauth2.Endpoint{
			AuthURL:   s.Issuer() + "/authorize",
			TokenURL:  s.Issuer() + "/token",
			AuthStyle: style,
		},
	}
}

// browser follows redirects (keeping cookies) until the one to the client's
// redirect URI, which it returns unfollowed.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{
		Jar:     jar,
		Timeout: 5 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), redirectURL) {
				return http.ErrUseLastResponse
			}
			if len(via) > 10 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}
}

// authorize runs the browser part of the flow and returns the callback query.
func authorize(t *testing.T, b *http.Client, authURL string) url.Values {
	t.Helper()
	resp, err := b.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		t.Fatalf("authorize: status %d, want a redirect to the client", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(loc.String(), redirectURL) {
		t.Fatalf("authorize: redirected to %s, want %s", loc, redirectURL)
	}
	return loc.Query()
}

type flow struct {
	state, nonce, verifier string
	token                  *oauth2.Token
}

// codeFlow runs a full authorization code flow with PKCE and returns the tokens.
func codeFlow(t *testing.T, s *Server, cfg *oauth2.Config) flow {
	t.Helper()
	f := flow{state: oauth2.GenerateVerifier(), nonce: oauth2.GenerateVerifier(), verifier: oauth2.GenerateVerifier()}
	q := authorize(t, browser(t), cfg.AuthCodeURL(f.state, oauth2.S256ChallengeOption(f.verifier), oidc.Nonce(f.nonce)))
	if q.Get("error") != "" {
		t.Fatalf("authorize error: %v", q)
	}
	if q.Get("state") != f.state {
		t.Fatalf("state = %q, want %q", q.Get("state"), f.state)
	}
	if q.Get("iss") != s.Issuer() {
		t.Fatalf("iss = %q, want %q", q.Get("iss"), s.Issuer())
	}
	tok, err := cfg.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(f.verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	f.token = tok
	return f
}

func refresh(cfg *oauth2.Config, rt string) (*oauth2.Token, error) {
	return cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: rt}).Token()
}

func wantErrorCode(t *testing.T, err error, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("error = %v, want oauth2 error %q", err, code)
	}
	if re.ErrorCode != code {
		t.Fatalf("error code = %q (%s), want %q", re.ErrorCode, re.Body, code)
	}
}

func verifier(t *testing.T, s *Server, clientID string) *oidc.IDTokenVerifier {
	t.Helper()
	p, err := oidc.NewProvider(context.Background(), s.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	return p.Verifier(&oidc.Config{ClientID: clientID})
}

func userinfoStatus(t *testing.T, s *Server, accessToken string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.Issuer()+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestDiscoveryAndJWKS(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{})
	resp, err := http.Get(s.Issuer() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d["issuer"] != s.Issuer() || strings.HasSuffix(s.Issuer(), "/") || !strings.HasPrefix(s.Issuer(), "http://127.0.0.1:") {
		t.Fatalf("issuer = %v, Issuer() = %s", d["issuer"], s.Issuer())
	}
	for _, k := range []string{"authorization_endpoint", "token_endpoint", "revocation_endpoint", "jwks_uri", "scopes_supported", "grant_types_supported"} {
		if d[k] == nil {
			t.Errorf("discovery lacks %s", k)
		}
	}
	if d["authorization_response_iss_parameter_supported"] != true {
		t.Error("authorization_response_iss_parameter_supported not true")
	}
	if got, _ := json.Marshal(d["code_challenge_methods_supported"]); string(got) != `["S256"]` {
		t.Errorf("code_challenge_methods_supported = %s", got)
	}

	jr, err := http.Get(s.Issuer() + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer jr.Body.Close()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.NewDecoder(jr.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 || set.Keys[0]["kid"] != s.KeyID() || set.Keys[0]["kty"] != "RSA" || set.Keys[0]["d"] != nil {
		t.Fatalf("jwks = %v", set.Keys)
	}
}

func TestLoginRedirectsAndSetsHttpOnlyCookie(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{})
	cfg := addClient(t, s, Client{})
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	authURL := cfg.AuthCodeURL(oauth2.GenerateVerifier(), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	resp, err := noFollow.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize without cookie: status %d", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Path != "/login" || loc.Query().Get("next") != authURL {
		t.Fatalf("login redirect = %s", loc)
	}

	resp, err = noFollow.Get(loc.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != authURL {
		t.Fatalf("login: status %d location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || cookies[0].Name != SessionCookieName || !cookies[0].HttpOnly {
		t.Fatalf("login cookies = %v", cookies)
	}

	// An open redirect is refused.
	resp, err = noFollow.Get(s.Issuer() + "/login?next=" + url.QueryEscape("http://evil.example/authorize"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("login with foreign next: status %d", resp.StatusCode)
	}
}

func TestCodeFlowWithPKCEAndVerifiedIDToken(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{})
	cfg := addClient(t, s, Client{})
	f := codeFlow(t, s, cfg)

	if f.token.AccessToken == "" || f.token.RefreshToken == "" {
		t.Fatalf("token = %+v", f.token)
	}
	raw, _ := f.token.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("no id_token")
	}
	idt, err := verifier(t, s, cfg.ClientID).Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("verify id_token: %v", err)
	}
	if idt.Nonce != f.nonce || idt.Subject != "user-1" || idt.Issuer != s.Issuer() || len(idt.Audience) != 1 || idt.Audience[0] != cfg.ClientID {
		t.Fatalf("id_token claims: nonce=%q sub=%q iss=%q aud=%v", idt.Nonce, idt.Subject, idt.Issuer, idt.Audience)
	}
	if idt.IssuedAt.IsZero() || !idt.Expiry.After(time.Now()) {
		t.Fatalf("id_token iat=%v exp=%v", idt.IssuedAt, idt.Expiry)
	}
	if code := userinfoStatus(t, s, f.token.AccessToken); code != http.StatusOK {
		t.Fatalf("userinfo: %d", code)
	}

	reqs := s.AuthorizeRequests()
	if len(reqs) != 2 { // before and after login
		t.Fatalf("authorize requests = %d", len(reqs))
	}
	for _, q := range reqs {
		if q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256" || q.Get("nonce") != f.nonce || q.Get("state") != f.state {
			t.Fatalf("authorize params = %v", q)
		}
		if q.Has("code_verifier") {
			t.Fatal("code_verifier leaked to /authorize")
		}
	}
	if s.Logins() != 1 || s.TokenRequests() != 1 {
		t.Fatalf("logins=%d tokenRequests=%d", s.Logins(), s.TokenRequests())
	}
}

func TestPKCEIsEnforced(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{})
	cfg := addClient(t, s, Client{})
	b := browser(t)

	// No verifier at the token endpoint.
	state := oauth2.GenerateVerifier()
	q := authorize(t, b, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	_, err := cfg.Exchange(context.Background(), q.Get("code"))
	wantErrorCode(t, err, "invalid_grant")

	// Wrong verifier.
	q = authorize(t, b, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	_, err = cfg.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier()))
	wantErrorCode(t, err, "invalid_grant")

	// No challenge at all: refused at /authorize, with state and iss.
	q = authorize(t, b, cfg.AuthCodeURL(state))
	if q.Get("error") != "invalid_request" || q.Get("state") != state || q.Get("iss") != s.Issuer() {
		t.Fatalf("authorize without PKCE: %v", q)
	}
	// Plain challenge is refused.
	q = authorize(t, b, cfg.AuthCodeURL(state, oauth2.SetAuthURLParam("code_challenge", oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("code_challenge_method", "plain")))
	if q.Get("error") != "invalid_request" {
		t.Fatalf("authorize with plain PKCE: %v", q)
	}
}

func TestRefreshRotatesAndDetectsReuse(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{})
	cfg := addClient(t, s, Client{})
	f := codeFlow(t, s, cfg)
	old := f.token.RefreshToken

	nt, err := refresh(cfg, old)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if nt.RefreshToken == "" || nt.RefreshToken == old || nt.AccessToken == f.token.AccessToken {
		t.Fatalf("refresh did not rotate: %+v", nt)
	}
	rawIDT, _ := nt.Extra("id_token").(string)
	idt, err := verifier(t, s, cfg.ClientID).Verify(context.Background(), rawIDT)
	if err != nil {
		t.Fatalf("refreshed id_token: %v", err)
	}
	if idt.Subject != "user-1" || idt.Nonce != f.nonce { // fosite keeps the original nonce
		t.Fatalf("refreshed id_token sub=%q nonce=%q", idt.Subject, idt.Nonce)
	}
	if s.RefreshGrants() != 1 {
		t.Fatalf("refresh grants = %d", s.RefreshGrants())
	}
	// The rotated-out access token is revoked with the old refresh token.
	if code := userinfoStatus(t, s, f.token.AccessToken); code != http.StatusUnauthorized {
		t.Fatalf("old access token: userinfo %d", code)
	}

	_, err = refresh(cfg, old)
	wantErrorCode(t, err, "invalid_grant")
	// fosite's reuse detection revokes the whole family, new token included.
	_, err = refresh(cfg, nt.RefreshToken)
	wantErrorCode(t, err, "invalid_grant")

	uses := s.RefreshTokenUses()
	if uses[TokenHash(old)] != 2 || uses[TokenHash(nt.RefreshToken)] != 1 || s.RefreshGrants() != 1 {
		t.Fatalf("uses = %v, grants = %d", uses, s.RefreshGrants())
	}
}

// Within the reuse window a rotated token is honoured once more and rotates
// the family again; past it (a window too short to meet) it is reuse.
func TestRefreshTokenReuseWindow(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{RefreshTokenReuseWindow: time.Hour})
	cfg := addClient(t, s, Client{})
	old := codeFlow(t, s, cfg).token.RefreshToken
	lost, err := refresh(cfg, old) // the client never stores this answer
	if err != nil {
		t.Fatal(err)
	}
	again, err := refresh(cfg, old)
	if err != nil {
		t.Fatalf("a rotated token within the window: %v", err)
	}
	if again.RefreshToken == lost.RefreshToken || again.RefreshToken == old {
		t.Fatal("the reuse within the window did not rotate")
	}
	if _, err := refresh(cfg, again.RefreshToken); err != nil {
		t.Fatalf("the token the reuse issued: %v", err)
	}
	if r := s.RefreshTokenReuses(); r != (Reuses{Within: 1}) {
		t.Fatalf("reuses = %+v", r)
	}

	strict := newServer(t, Options{RefreshTokenReuseWindow: time.Nanosecond})
	cfg = addClient(t, strict, Client{})
	old = codeFlow(t, strict, cfg).token.RefreshToken
	if _, err := refresh(cfg, old); err != nil {
		t.Fatal(err)
	}
	_, err = refresh(cfg, old)
	wantErrorCode(t, err, "invalid_grant")
	if r := strict.RefreshTokenReuses(); r != (Reuses{Beyond: 1}) {
		t.Fatalf("reuses = %+v", r)
	}
}

// BeforeTokenResponse runs after the rotation, before the client hears of
// it.
func TestBeforeTokenResponse(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{})
	cfg := addClient(t, s, Client{})
	old := codeFlow(t, s, cfg).token.RefreshToken
	var seen []string
	s.BeforeTokenResponse(func(grantType string) {
		seen = append(seen, grantType)
		if grantType == "refresh_token" {
			// Rotated already: the presented token is refused.
			if _, err := s.store.GetRefreshTokenSession(context.Background(), s.hmac.RefreshTokenSignature(context.Background(), old), nil); err == nil {
				t.Error("the hook ran before the rotation")
			}
		}
	})
	if _, err := refresh(cfg, old); err != nil {
		t.Fatal(err)
	}
	s.BeforeTokenResponse(nil)
	if _, err := refresh(cfg, old); err == nil {
		t.Fatal("reuse accepted")
	}
	if len(seen) != 1 || seen[0] != "refresh_token" {
		t.Fatalf("hook saw %v", seen)
	}
}

func TestRefreshTokenNeedsOfflineAccess(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{})
	cfg := addClient(t, s, Client{})
	cfg.Scopes = []string{oidc.ScopeOpenID}
	if f := codeFlow(t, s, cfg); f.token.RefreshToken != "" {
		t.Fatal("refresh token issued without offline_access")
	}

	s2 := newServer(t, Options{AlwaysIssueRefreshToken: true})
	cfg2 := addClient(t, s2, Client{})
	cfg2.Scopes = []string{oidc.ScopeOpenID}
	f := codeFlow(t, s2, cfg2)
	if f.token.RefreshToken == "" {
		t.Fatal("no refresh token with AlwaysIssueRefreshToken")
	}
	if _, err := refresh(cfg2, f.token.RefreshToken); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentRefreshWithSameTokenSucceedsOnce(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{})
	cfg := addClient(t, s, Client{})
	f := codeFlow(t, s, cfg)
	s.Delay(50 * time.Millisecond)

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = refresh(cfg, f.token.RefreshToken)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else {
			wantErrorCode(t, err, "invalid_grant")
		}
	}
	if ok != 1 || s.RefreshGrants() != 1 || s.RefreshTokenUses()[TokenHash(f.token.RefreshToken)] != 4 {
		t.Fatalf("successes = %d, grants = %d, uses = %v", ok, s.RefreshGrants(), s.RefreshTokenUses())
	}
}

func TestRevokeAllGrants(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{})
	cfg := addClient(t, s, Client{})
	f1 := codeFlow(t, s, cfg)
	f2 := codeFlow(t, s, cfg)
	if _, err := refresh(cfg, f2.token.RefreshToken); err != nil {
		t.Fatal(err)
	}

	s.RevokeAllGrants()
	for _, f := range []flow{f1, f2} {
		_, err := refresh(cfg, f.token.RefreshToken)
		wantErrorCode(t, err, "invalid_grant")
		if code := userinfoStatus(t, s, f.token.AccessToken); code != http.StatusUnauthorized {
			t.Fatalf("userinfo after RevokeAllGrants: %d", code)
		}
	}
	// New grants work again.
	f3 := codeFlow(t, s, cfg)
	if _, err := refresh(cfg, f3.token.RefreshToken); err != nil {
		t.Fatal(err)
	}
}

func TestRevocationEndpoint(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{})
	cfg := addClient(t, s, Client{})
	f := codeFlow(t, s, cfg)

	form := url.Values{"token": {f.token.RefreshToken}, "token_type_hint": {"refresh_token"}}
	req, _ := http.NewRequest(http.MethodPost, s.Issuer()+"/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(cfg.ClientID, cfg.ClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if r := s.Revocations(); len(r) != 1 || r[0] != TokenHash(f.token.RefreshToken) {
		t.Fatalf("revocations = %v", r)
	}
	_, err = refresh(cfg, f.token.RefreshToken)
	wantErrorCode(t, err, "invalid_grant")
	// Revoking a refresh token revokes its access token too.
	if code := userinfoStatus(t, s, f.token.AccessToken); code != http.StatusUnauthorized {
		t.Fatalf("userinfo after revoke: %d", code)
	}
}

func TestDenyConsent(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{})
	cfg := addClient(t, s, Client{})
	s.DenyConsent(true)
	state := oauth2.GenerateVerifier()
	q := authorize(t, browser(t), cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if q.Get("error") != "access_denied" || q.Get("state") != state || q.Get("iss") != s.Issuer() || q.Has("code") {
		t.Fatalf("callback = %v", q)
	}
	s.DenyConsent(false)
	codeFlow(t, s, cfg)
}

func TestFailTokenRequests(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{})
	cfg := addClient(t, s, Client{})
	verifier := oauth2.GenerateVerifier()
	q := authorize(t, browser(t), cfg.AuthCodeURL("state-12345", oauth2.S256ChallengeOption(verifier)))

	s.FailTokenRequests(1, http.StatusServiceUnavailable, http.Header{"Retry-After": {"7"}}, `{"error":"temporarily_unavailable"}`)
	_, err := cfg.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response.StatusCode != http.StatusServiceUnavailable || re.Response.Header.Get("Retry-After") != "7" || re.ErrorCode != "temporarily_unavailable" {
		t.Fatalf("injected failure: %v", err)
	}
	// The code was not consumed by the injected failure.
	tok, err := cfg.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}

	s.FailTokenRequests(2, http.StatusBadRequest, nil, `{"error":"invalid_grant"}`)
	for range 2 {
		_, err = refresh(cfg, tok.RefreshToken)
		wantErrorCode(t, err, "invalid_grant")
	}
	if _, err := refresh(cfg, tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if s.TokenRequests() != 5 || s.RefreshTokenUses()[TokenHash(tok.RefreshToken)] != 1 {
		t.Fatalf("token requests = %d, uses = %v", s.TokenRequests(), s.RefreshTokenUses())
	}
}

func TestClientAuthMethods(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{})
	post := addClient(t, s, Client{ID: "post-client", AuthMethod: "client_secret_post"})
	f := codeFlow(t, s, post)
	if _, err := refresh(post, f.token.RefreshToken); err != nil {
		t.Fatalf("client_secret_post refresh: %v", err)
	}

	// The configured method is the only one accepted.
	f = codeFlow(t, s, post)
	post.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	_, err := refresh(post, f.token.RefreshToken)
	wantErrorCode(t, err, "invalid_client")

	basic := addClient(t, s, Client{ID: "basic-client"})
	basic.ClientSecret = "wrong"
	q := authorize(t, browser(t), basic.AuthCodeURL("state-12345", oauth2.S256ChallengeOption(f.verifier)))
	_, err = basic.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(f.verifier))
	wantErrorCode(t, err, "invalid_client")
}

func TestOmitRefreshTokenOnRefresh(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{})
	cfg := addClient(t, s, Client{})
	f := codeFlow(t, s, cfg)
	old := f.token.RefreshToken

	s.OmitRefreshTokenOnRefresh(true)
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {old}}
	req, _ := http.NewRequest(http.MethodPost, s.Issuer()+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(cfg.ClientID), url.QueryEscape(cfg.ClientSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || body["access_token"] == nil || body["refresh_token"] != nil {
		t.Fatalf("omit mode response %d: %v", resp.StatusCode, body)
	}

	// The old refresh token is still the live one; back in normal mode it
	// rotates as usual.
	s.OmitRefreshTokenOnRefresh(false)
	nt, err := refresh(cfg, old)
	if err != nil {
		t.Fatalf("old refresh token after omit: %v", err)
	}
	if nt.RefreshToken == "" || nt.RefreshToken == old {
		t.Fatal("no rotation after leaving omit mode")
	}
	_, err = refresh(cfg, old)
	wantErrorCode(t, err, "invalid_grant")
	if s.RefreshGrants() != 2 {
		t.Fatalf("refresh grants = %d", s.RefreshGrants())
	}
}

func TestIDTokenTampering(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{})
	cfg := addClient(t, s, Client{})
	v := verifier(t, s, cfg.ClientID)
	idToken := func(f flow) string { raw, _ := f.token.Extra("id_token").(string); return raw }

	// Mutated nonce: the signature is valid, only the nonce check catches it.
	s.MutateNextIDToken(func(c map[string]any) { c["nonce"] = "not-the-nonce" })
	f := codeFlow(t, s, cfg)
	idt, err := v.Verify(context.Background(), idToken(f))
	if err != nil {
		t.Fatalf("re-signed token must verify: %v", err)
	}
	if idt.Nonce == f.nonce || idt.Nonce != "not-the-nonce" {
		t.Fatalf("nonce = %q", idt.Nonce)
	}

	// Mutated audience.
	s.MutateNextIDToken(func(c map[string]any) { c["aud"] = []string{"someone-else"} })
	if _, err := v.Verify(context.Background(), idToken(codeFlow(t, s, cfg))); err == nil || !strings.Contains(err.Error(), "audience") {
		t.Fatalf("mutated aud: %v", err)
	}

	// Mutated issuer.
	s.MutateNextIDToken(func(c map[string]any) { c["iss"] = "http://127.0.0.1:9/other" })
	if _, err := v.Verify(context.Background(), idToken(codeFlow(t, s, cfg))); err == nil || !strings.Contains(err.Error(), "different provider") {
		t.Fatalf("mutated iss: %v", err)
	}

	// Foreign signing key, same kid.
	s.SignNextIDTokenWithForeignKey()
	if _, err := v.Verify(context.Background(), idToken(codeFlow(t, s, cfg))); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("foreign key: %v", err)
	}

	// Back to normal.
	f = codeFlow(t, s, cfg)
	if idt, err := v.Verify(context.Background(), idToken(f)); err != nil || idt.Nonce != f.nonce {
		t.Fatalf("after tampering: %v", err)
	}
}

func TestShortAccessTokenLifespan(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{AccessTokenLifespan: 2 * time.Second})
	cfg := addClient(t, s, Client{})
	f := codeFlow(t, s, cfg)
	if left := time.Until(f.token.Expiry); left <= 0 || left > 3*time.Second {
		t.Fatalf("access token expires in %v", left)
	}
	if code := userinfoStatus(t, s, f.token.AccessToken); code != http.StatusOK {
		t.Fatalf("userinfo: %d", code)
	}
	time.Sleep(3 * time.Second)
	if code := userinfoStatus(t, s, f.token.AccessToken); code != http.StatusUnauthorized {
		t.Fatalf("expired access token: userinfo %d", code)
	}
	nt, err := refresh(cfg, f.token.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(nt.Expiry); left <= 0 || left > 3*time.Second {
		t.Fatalf("refreshed access token expires in %v", left)
	}
}

func TestAddClientValidation(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{})
	for _, c := range []Client{
		{Secret: "x", RedirectURIs: []string{redirectURL}},
		{ID: "a", Secret: "x"},
		{ID: "a", RedirectURIs: []string{redirectURL}},
		{ID: "a", Secret: "x", RedirectURIs: []string{redirectURL}, AuthMethod: "private_key_jwt"},
	} {
		if err := s.AddClient(c); err == nil {
			t.Errorf("AddClient(%+v) succeeded", c)
		}
	}
}

func TestRewriteNextTokenResponse(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{})
	cfg := addClient(t, s, Client{})
	f := codeFlow(t, s, cfg)

	s.RewriteNextTokenResponse(func(body map[string]any) {
		delete(body, "expires_in")
		body["refresh_token_expires_in"] = "600"
	})
	tok, err := refresh(cfg, f.token.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Expiry.IsZero() || tok.Extra("refresh_token_expires_in") != "600" || tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("rewritten response: expiry %v, refresh_token_expires_in %v", tok.Expiry, tok.Extra("refresh_token_expires_in"))
	}
	// Only the next response: the one after is fosite's own. The rewritten
	// response's refresh token was stored and works.
	tok, err = refresh(cfg, tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Expiry.IsZero() || tok.Extra("refresh_token_expires_in") != nil {
		t.Fatalf("second response rewritten too: expiry %v", tok.Expiry)
	}
}

func TestMintRefreshToken(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{})
	cfg := addClient(t, s, Client{})
	if _, err := s.MintRefreshToken("no-such-client", []string{"offline_access"}); err == nil {
		t.Fatal("minted a token for an unknown client")
	}
	rt, err := s.MintRefreshToken(cfg.ClientID, []string{"openid", "offline_access", "profile"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := refresh(cfg, rt)
	if err != nil {
		t.Fatalf("refresh with a minted token: %v", err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.RefreshToken == rt || tok.Extra("id_token") == nil {
		t.Fatalf("refresh response: %+v", tok)
	}
	// A minted grant rotates, and is revoked, like any other.
	_, err = refresh(cfg, rt)
	wantErrorCode(t, err, "invalid_grant")
	rt, err = s.MintRefreshToken(cfg.ClientID, []string{"offline_access"})
	if err != nil {
		t.Fatal(err)
	}
	s.RevokeAllGrants()
	_, err = refresh(cfg, rt)
	wantErrorCode(t, err, "invalid_grant")
	// Without offline_access (and AlwaysIssueRefreshToken off) fosite refuses it.
	rt, err = s.MintRefreshToken(cfg.ClientID, []string{"profile"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := refresh(cfg, rt); err == nil {
		t.Fatal("a grant without offline_access was refreshed")
	}
}

// TestConsentHelper: the helper's code redeems with its verifier, and the
// verified id_token carries its nonce.
func TestConsentHelper(t *testing.T) {
	s := newServer(t, Options{})
	cfg := addClient(t, s, Client{})
	c, err := s.Consent(cfg.ClientID, redirectURL, cfg.Scopes)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok, err := cfg.Exchange(ctx, c.Code, oauth2.VerifierOption(c.Verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := verifier(t, s, cfg.ClientID).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("id_token: %v", err)
	}
	if idt.Nonce != c.Nonce {
		t.Fatalf("id_token nonce %q, want the helper's %q", idt.Nonce, c.Nonce)
	}
}
