package oidcprovider

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Consent is an authorization code obtained as a browser would, with the
// PKCE verifier and the nonce that went with its request.
type Consent struct {
	Code, Verifier, Nonce string
}

// Consent runs the browser's leg of an authorization-code flow for clientID:
// /authorize with PKCE S256, a nonce and a cookie jar (so the login cookie
// and redirects behave as in a browser), up to the provider's redirect to
// redirectURI, whose code it returns. For tests that redeem codes themselves.
func (s *Server) Consent(clientID, redirectURI string, scopes []string) (Consent, error) {
	c := Consent{Verifier: oauth2.GenerateVerifier(), Nonce: oauth2.GenerateVerifier()}
	cfg := oauth2.Config{ClientID: clientID, RedirectURL: redirectURI, Scopes: scopes, Endpoint: oauth2.Endpoint{AuthURL: s.issuer + "/authorize"}}
	u := cfg.AuthCodeURL(oauth2.GenerateVerifier(), oauth2.S256ChallengeOption(c.Verifier), oauth2.SetAuthURLParam("nonce", c.Nonce))
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 5 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirectURI) {
			return http.ErrUseLastResponse
		}
		if len(via) > 10 {
			return errors.New("too many redirects")
		}
		return nil
	}}
	resp, err := browser.Get(u)
	if err != nil {
		return Consent{}, err
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), redirectURI) {
		return Consent{}, fmt.Errorf("authorize: status %d, location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if c.Code = loc.Query().Get("code"); c.Code == "" {
		return Consent{}, fmt.Errorf("authorize: no code in the redirect (error=%q)", loc.Query().Get("error"))
	}
	return c, nil
}
