package oidcprovider

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// pageClient registers a client whose redirect URIs are redirectURL/<one
// segment>, as the broker's per-provider callbacks, and returns its
// configuration for the callback of provider prv_0123.
func pageClient(t *testing.T, s *Server) *oauth2.Config {
	t.Helper()
	if err := s.AddClient(Client{ID: "nexus-dev", Secret: "dev-secret-0123456789", RedirectURIPrefix: redirectURL + "/"}); err != nil {
		t.Fatal(err)
	}
	return &oauth2.Config{
		ClientID: "nexus-dev", ClientSecret: "dev-secret-0123456789", RedirectURL: redirectURL + "/prv_0123",
		Scopes:   []string{oidc.ScopeOpenID, oidc.ScopeOfflineAccess, "profile"},
		Endpoint: oauth2.Endpoint{AuthURL: s.Issuer() + "/authorize", TokenURL: s.Issuer() + "/token"},
	}
}

// openPage follows authURL as a browser does, to the page; it returns the
// page's URL (where its form posts) and its HTML.
func openPage(t *testing.T, b *http.Client, authURL string) (string, string) {
	t.Helper()
	resp, err := b.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/login" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("authorize led to %s: %d %s\n%s", resp.Request.URL, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	return resp.Request.URL.String(), string(body)
}

// answer posts the page's form as a browser does (same origin) and returns
// the response, unfollowed.
func answer(t *testing.T, pageURL, origin string, form url.Values) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, pageURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", origin)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// TestLoginPage: with LoginPage a person is asked, on a readable page that
// names the client and what it asks for, who to sign in as and whether to
// allow it; Allow sends the browser back with a code for that person, Deny
// with access_denied, and the page asks again each time. A wrong answer or
// a form posted from another site gets no code.
func TestLoginPage(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{LoginPage: true})
	cfg := pageClient(t, s)
	state, pkce, nonce := oauth2.GenerateVerifier(), oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(pkce), oidc.Nonce(nonce))
	b := browser(t)

	pageURL, page := openPage(t, b, authURL)
	for _, want := range []string{"<form method=\"post\">", `name="username" value="user-1"`, `name="consent" value="allow"`, `name="consent" value="deny"`,
		"<strong>nexus-dev</strong> asks for", "<code>offline_access</code>: access while you are away (a refresh token)", "<code>profile</code>: your name",
		"goes back to <strong>127.0.0.1:1</strong>", "no passwords"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page does not show %q:\n%s", want, page)
		}
	}

	for _, tc := range []struct {
		name, origin string
		form         url.Values
		status       int
		says         string
	}{
		{"no choice", s.Issuer(), url.Values{"username": {"alice"}}, http.StatusBadRequest, "Choose Allow or Deny."},
		{"no name", s.Issuer(), url.Values{"consent": {"allow"}}, http.StatusBadRequest, "Type a name to sign in as"},
		{"a name with a space", s.Issuer(), url.Values{"username": {"al ice"}, "consent": {"allow"}}, http.StatusBadRequest, "Type a name to sign in as"},
		{"another site's form", "http://evil.example", url.Values{"username": {"alice"}, "consent": {"allow"}}, http.StatusForbidden, "another site"},
	} {
		resp, body := answer(t, pageURL, tc.origin, tc.form)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.says) || resp.Header.Get("Location") != "" {
			t.Errorf("%s: %d %q, location %q:\n%s", tc.name, resp.StatusCode, tc.says, resp.Header.Get("Location"), body)
		}
	}

	resp, body := answer(t, pageURL, s.Issuer(), url.Values{"username": {"alice"}, "consent": {"allow"}})
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), cfg.RedirectURL+"?") {
		t.Fatalf("allow: %d, location %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	q := loc.Query()
	if q.Get("state") != state || q.Get("iss") != s.Issuer() || q.Get("code") == "" {
		t.Fatalf("allow: callback query %v", q)
	}
	tok, err := cfg.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(pkce))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := verifier(t, s, cfg.ClientID).Verify(context.Background(), raw)
	if err != nil || idt.Subject != "alice" || idt.Nonce != nonce || tok.RefreshToken == "" {
		t.Fatalf("id_token of the person who signed in: %v %+v, refresh token %t", err, idt, tok.RefreshToken != "")
	}
	if s.Logins() != 1 {
		t.Errorf("logins = %d, want 1", s.Logins())
	}

	// The same browser is asked again, and may deny.
	state = oauth2.GenerateVerifier()
	pageURL, _ = openPage(t, b, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(pkce)))
	resp, _ = answer(t, pageURL, s.Issuer(), url.Values{"username": {"alice"}, "consent": {"deny"}})
	loc, _ = url.Parse(resp.Header.Get("Location"))
	if loc == nil || !strings.HasPrefix(loc.String(), cfg.RedirectURL+"?") || loc.Query().Get("error") != "access_denied" ||
		loc.Query().Get("state") != state || loc.Query().Get("code") != "" {
		t.Fatalf("deny: %d, location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if s.Logins() != 1 {
		t.Errorf("logins = %d after a deny, want 1", s.Logins())
	}
}

// TestRedirectURIPrefix: a client with a RedirectURIPrefix accepts the
// prefix followed by one path segment, and nothing else, as its redirect
// URI; without LoginPage, /login takes no answers.
func TestRedirectURIPrefix(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{})
	cfg := pageClient(t, s)
	codeFlow(t, s, cfg) // redirectURL/prv_0123, admitted
	for _, ru := range []string{redirectURL + "/", redirectURL + "/prv_0123/more", redirectURL + "/prv_0123?x=1", redirectURL + "x/prv_0123", "http://127.0.0.2:1/callback/prv_0123"} {
		c := *cfg
		c.RedirectURL = ru
		resp, err := browser(t).Get(c.AuthCodeURL(oauth2.GenerateVerifier(), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("redirect_uri %s: %d, location %q: accepted", ru, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	resp, _ := answer(t, s.Issuer()+"/login?next="+url.QueryEscape(s.Issuer()+"/authorize"), s.Issuer(), url.Values{"consent": {"allow"}})
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /login without LoginPage: %d", resp.StatusCode)
	}
}
