// Package provider talks to OAuth 2.0 / OpenID Connect providers on the
// vault's behalf: it redeems authorization codes (verifying OIDC id_tokens),
// refreshes tokens and revokes them (RFC 7009), with x/oauth2 and go-oidc.
package provider

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/secret"
	"github.com/nexus-broker/nexus/shared/egress"
)

// DefaultTimeout bounds every call to a provider: the egress client's
// whole-request timeout.
const DefaultTimeout = egress.DefaultTimeout

// Client calls providers, every request through the egress guard. It
// caches one JWKS key set per jwks_uri.
type Client struct {
	http *http.Client
	now  func() time.Time

	mu      sync.Mutex
	keySets map[string]*oidc.RemoteKeySet
}

// New returns a client that makes its requests with hc, the egress guard
// (a guard that opens no private network when nil): token, revocation and
// JWKS requests go only to addresses it allows, never follow a redirect (a
// token, revocation or JWKS endpoint that answers 3xx would otherwise have
// Go re-send the refresh token, the code and verifier, or the client
// secret to whatever host it names), and time out. now may be nil.
func New(hc *egress.Client, now func() time.Time) *Client {
	if hc == nil {
		hc = egress.New(egress.Options{})
	}
	if now == nil {
		now = time.Now
	}
	return &Client{
		http:    hc.HTTP(),
		now:     now,
		keySets: map[string]*oidc.RemoteKeySet{},
	}
}

// ExchangeRequest is an authorization code to redeem.
type ExchangeRequest struct {
	Code, Verifier, RedirectURI, Nonce string
	// Scopes requested in the authorization request; the granted scopes when
	// the provider does not say.
	Scopes []string
}

// LogValue keeps the code and verifier out of logs.
func (r ExchangeRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("redirect_uri", r.RedirectURI), slog.String("code", "[redacted]"))
}

func (c *Client) config(cl Registration, redirectURI string, scopes []string) *oauth2.Config {
	style := oauth2.AuthStyleInHeader
	if cl.AuthMethod == messages.ClientSecretPost {
		style = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{
		ClientID:     cl.ClientID,
		ClientSecret: cl.ClientSecret.Reveal(),
		Endpoint:     oauth2.Endpoint{TokenURL: cl.TokenEndpoint, AuthStyle: style},
		RedirectURL:  redirectURI,
		Scopes:       scopes,
	}
}

// ctx makes x/oauth2 send the request through the egress guard, with the
// response normalised as cl's quirks say and what x/oauth2 drops noted in got.
func (c *Client) ctx(ctx context.Context, cl Registration, got *reading) context.Context {
	hc := *c.http
	hc.Transport = &normalizer{base: c.http.Transport, quirks: cl.Quirks, got: got}
	return context.WithValue(ctx, oauth2.HTTPClient, &hc)
}

// Exchange redeems an authorization code with its PKCE verifier. For an OIDC
// provider it verifies the id_token (signature, iss, aud, exp, nonce,
// at_hash), which it then drops: the id_token is never stored or returned.
func (c *Client) Exchange(ctx context.Context, cl Registration, r ExchangeRequest) (Tokens, error) {
	var got reading
	tok, err := c.config(cl, r.RedirectURI, r.Scopes).Exchange(c.ctx(ctx, cl, &got), r.Code, oauth2.VerifierOption(r.Verifier))
	if err != nil {
		return Tokens{}, classify("token", err, cl.Quirks)
	}
	if cl.Type == messages.ProviderOIDC {
		raw, _ := tok.Extra("id_token").(string)
		switch {
		case raw != "":
			if err := c.verifyIDToken(ctx, cl, raw, r.Nonce, tok.AccessToken); err != nil {
				return Tokens{}, &Error{Kind: InvalidIDToken, Endpoint: "token", Err: err}
			}
		case slices.Contains(r.Scopes, oidc.ScopeOpenID):
			return Tokens{}, &Error{Kind: InvalidIDToken, Endpoint: "token", Err: errors.New("the token response has no id_token although openid was requested")}
		}
	}
	return tokens(tok, got, r.Scopes, cl.DefaultLifetime, c.now()), nil
}

// Refresh redeems a refresh token. A response without a refresh token
// leaves Tokens.Refresh empty: the caller keeps the old one.
func (c *Client) Refresh(ctx context.Context, cl Registration, refresh secret.Value) (Tokens, error) {
	if refresh.IsZero() {
		return Tokens{}, &Error{Kind: Permanent, Endpoint: "token", Code: "no_refresh_token", Err: errors.New("no refresh token is stored")}
	}
	// An expired token with only a refresh token makes the source refresh.
	var got reading
	src := c.config(cl, "", nil).TokenSource(c.ctx(ctx, cl, &got), &oauth2.Token{RefreshToken: refresh.Reveal(), Expiry: time.Unix(1, 0)})
	tok, err := src.Token()
	if err != nil {
		return Tokens{}, classify("token", err, cl.Quirks)
	}
	t := tokens(tok, got, nil, cl.DefaultLifetime, c.now())
	if tok.RefreshToken == refresh.Reveal() {
		t.Refresh = "" // x/oauth2 copies the old one in when none came back
	}
	return t, nil
}

// tokens turns x/oauth2's token into the vault's. expires_in is read from
// the response itself (got), as a JSON number or a string of digits, in
// the unit the quirks say: x/oauth2 collapses 0 into "absent". An absent
// expires_in on a renewable token (one that came with a refresh token)
// takes the provider's default lifetime, so it is refreshed in time rather
// than used until the API refuses it. expires_in 0 is the provider saying
// the token does not expire (Mailchimp): no lifetime is invented for it,
// nor for a token with neither expires_in nor refresh token (GitHub OAuth
// apps), which would send the connection to attention_required for nothing.
func tokens(tok *oauth2.Token, got reading, requested []string, defaultLifetime time.Duration, now time.Time) Tokens {
	t := Tokens{
		Access:    secret.Value(tok.AccessToken),
		Refresh:   secret.Value(tok.RefreshToken),
		TokenType: tok.Type(),
		Scopes:    requested,
		Config:    got.config,
	}
	var exp time.Time
	switch {
	case got.expiresIn != nil && *got.expiresIn > 0:
		exp = now.Add(time.Duration(*got.expiresIn) * time.Second)
	case got.expiresIn != nil:
	case tok.RefreshToken != "":
		if defaultLifetime <= 0 {
			defaultLifetime = time.Hour
		}
		exp = now.Add(defaultLifetime)
	}
	if !exp.IsZero() {
		e := exp.UTC().Truncate(time.Microsecond)
		t.ExpiresAt = &e
	}
	if s, ok := tok.Extra("scope").(string); ok && strings.TrimSpace(s) != "" {
		t.Scopes = strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })
	}
	for _, k := range []string{"refresh_token_expires_in", "refresh_expires_in"} {
		if secs, ok := seconds(tok.Extra(k), false); ok && secs > 0 {
			e := now.Add(time.Duration(secs) * time.Second).UTC().Truncate(time.Microsecond)
			t.RefreshExpires = &e
			break
		}
	}
	return t
}

var signingAlgs = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA}

func (c *Client) verifyIDToken(ctx context.Context, cl Registration, raw, nonce, accessToken string) error {
	if cl.Issuer == "" || cl.JWKSURI == "" {
		return errors.New("the provider has no issuer or jwks_uri registered")
	}
	v := oidc.NewVerifier(cl.Issuer, c.keySet(cl.JWKSURI), &oidc.Config{ClientID: cl.ClientID, SupportedSigningAlgs: signingAlgs, Now: c.now})
	idt, err := v.Verify(ctx, raw)
	if err != nil {
		return idTokenProblem(err)
	}
	if nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return errors.New("nonce does not match the authorization request")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(accessToken); err != nil {
			return fmt.Errorf("at_hash: %w", err)
		}
	}
	return nil
}

// keySet returns the cached key set for jwksURI. It fetches keys lazily and
// again when an unknown kid shows up (go-oidc's behaviour).
func (c *Client) keySet(jwksURI string) *oidc.RemoteKeySet {
	c.mu.Lock()
	defer c.mu.Unlock()
	ks, ok := c.keySets[jwksURI]
	if !ok {
		ks = oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), c.http), jwksURI)
		c.keySets[jwksURI] = ks
	}
	return ks
}

// idTokenProblem says why go-oidc refused an id_token in the broker's own
// words. go-oidc's messages quote what the provider sent (the token's iss
// and aud, the JWKS endpoint's response body), which is shown to no one
// (docs/ARCHITECTURE.md, invariant 9); only the egress guard's own
// refusals, which quote nothing of the provider's, are passed on.
func idTokenProblem(err error) error {
	var expired *oidc.TokenExpiredError
	if errors.As(err, &expired) {
		return errors.New("the id_token has expired")
	}
	if egress.IsBodyTooLarge(err) {
		return errors.New("the provider's keys (jwks_uri) are larger than the most the broker reads from a provider")
	}
	if errors.Is(err, egress.ErrRefused) {
		return errors.New("the provider's keys (jwks_uri) are at an address the egress guard refuses (PROVIDER_PRIVATE_NETWORKS)")
	}
	msg := err.Error()
	for _, p := range []struct{ in, out string }{
		{"issued by a different provider", "the id_token was issued by another issuer than the provider's"},
		{"expected audience", "the id_token is for another client (aud)"},
		{"before the nbf", "the id_token is not valid yet (nbf)"},
		{"get keys failed", "the provider's keys (jwks_uri) could not be fetched"},
		{"failed to decode keys", "the provider's keys (jwks_uri) are not a valid JWK set"},
		{"malformed jwt", "the id_token is not a well-formed JWT"},
		{"not signed", "the id_token is not signed"},
		{"signing algorithm", "the id_token is signed with an algorithm the broker does not accept"},
		{"failed to verify signature", "the id_token's signature does not verify with the provider's keys"},
	} {
		if strings.Contains(msg, p.in) {
			return errors.New(p.out)
		}
	}
	return errors.New("the id_token failed verification")
}
