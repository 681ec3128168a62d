// Package oidcprovider runs a real OAuth 2.0 / OpenID Connect authorization
// server in-process on loopback, for Nexus Broker's tests and benchmark.
//
// All OAuth2/OIDC protocol and token logic comes from github.com/ory/fosite
// (authorization code grant, PKCE, refresh-token rotation with reuse
// detection, token revocation, token introspection, OpenID Connect id_tokens)
// on top of fosite's in-memory storage. This package only adds the HTTP glue
// fosite leaves to its user: the discovery document, the JWKS, an
// auto-consenting login (or, with Options.LoginPage, a sign-in and consent
// page a person uses, for `make run`'s development provider), RFC 9207 "iss"
// on authorization responses, and test controls (fault injection, counters,
// id_token tampering).
//
// Behaviour worth knowing when writing tests against it:
//
//   - PKCE is enforced, S256 only. state and nonce must be at least 8
//     characters (fosite's minimum parameter entropy).
//   - A refresh token is issued only if "offline_access" (or "offline") was
//     requested and granted, unless Options.AlwaysIssueRefreshToken is set.
//   - Every refresh rotates: the response carries a new refresh token and the
//     presented one becomes inactive. Presenting an inactive refresh token
//     fails with invalid_grant AND (fosite's RFC 6819 reuse detection) revokes
//     the whole family, i.e. the newest refresh token and its access token too.
//     With Options.RefreshTokenReuseWindow a rotated token is still accepted
//     for that long (as Okta's grace period or Auth0's reuse interval do).
//   - Refresh grants are processed one at a time, so two concurrent refreshes
//     with the same token give one success and one invalid_grant (which then
//     also revokes the new token, see above).
//   - A refreshed id_token keeps the nonce of the original authentication.
package oidcprovider

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	foauth2 "github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// Client is an OAuth2 client registered with the provider.
type Client struct {
	ID, Secret   string
	RedirectURIs []string
	// AuthMethod is the token endpoint authentication method the client must
	// use: "client_secret_basic" (default), "client_secret_post", or "none"
	// (public client, no secret; PKCE still applies).
	AuthMethod string
	// Scopes the client may request, in addition to DefaultScopes.
	Scopes []string
	// RedirectURIPrefix, when set, makes every redirect URI that is this
	// prefix followed by one path segment a registered one when an
	// authorization request names it, as the broker's per-provider callback
	// PUBLIC_URL/v1/callback/<provider id>, whose id admin assigns only
	// once the provider is registered there.
	RedirectURIPrefix string
}

// DefaultScopes are allowed for every client (and listed in the discovery
// document's scopes_supported).
var DefaultScopes = []string{"openid", "offline_access", "offline", "profile", "email", "address", "phone"}

// Options configures a Server. Zero values select the defaults.
type Options struct {
	AccessTokenLifespan  time.Duration // default 1h
	RefreshTokenLifespan time.Duration // default 30 days
	IDTokenLifespan      time.Duration // default 1h
	Subject              string        // the user who always consents; default "user-1"
	// AlwaysIssueRefreshToken issues a refresh token on every code exchange.
	// By default (fosite's default) one is issued only when "offline_access"
	// or "offline" was granted, and only such grants may be refreshed.
	AlwaysIssueRefreshToken bool
	// RefreshTokenReuseWindow: a rotated refresh token is still accepted
	// for this long after its rotation, and a grant that presents it
	// rotates the family again (what the client failed to store is lost,
	// the new answer is as good). Presented later, it is reused: invalid_grant,
	// the family revoked. Zero is fosite's strict rotation.
	RefreshTokenReuseWindow time.Duration
	// Addr is where the provider listens, "127.0.0.1:0" by default. Any
	// 127.0.0.0/8 address works on Linux (all of it is routed to lo), so
	// tests can run a provider at an address the broker must refuse.
	Addr string
	// Listener, when set, is served instead of listening on Addr; the
	// issuer is its address.
	Listener net.Listener
	// LoginPage makes /login a page a person answers (who they sign in as,
	// and Allow or Deny for what the client asks) instead of signing
	// Subject in at once (loginpage.go).
	LoginPage bool
}

// SessionCookieName is the name of the provider's login session cookie.
const SessionCookieName = "oidcprovider_session"

type tokenFailure struct {
	status int
	header http.Header
	body   string
}

// Server is a running provider. All methods are safe for concurrent use.
type Server struct {
	issuer   string
	subject  string
	srv      *http.Server
	ln       net.Listener
	provider fosite.OAuth2Provider
	store    *store
	key      *rsa.PrivateKey
	kid      string
	signer   *jwt.DefaultSigner
	hmac     *foauth2.HMACSHAStrategy
	config   *fosite.Config

	// grantMu serialises refresh_token grants, revocations and
	// RevokeAllGrants, so a refresh token's check-and-rotate is atomic.
	grantMu sync.Mutex

	loginPage bool

	mu              sync.Mutex
	prefixClients   map[string]Client // clients with a RedirectURIPrefix, by ID
	sessions        map[string]string // session cookie value -> subject
	logins          int
	denyConsent     bool
	failures        []tokenFailure
	omitRefresh     bool
	delay           time.Duration
	slowSuccess     time.Duration
	mutateIDToken   []func(map[string]any)
	formResponses   int
	callbackParams  map[string]string
	rewriteResponse []func(map[string]any)
	beforeResponse  func(grantType string)
	foreignKey      *rsa.PrivateKey
	tokenRequests   int
	connections     atomic.Int64
	refreshGrants   int
	refreshUses     map[string]int
	revocations     []string
	authorizeReqs   []url.Values
	issued          Issued
	closeOnce       sync.Once
	serveErrChannel chan error
}

// New starts a provider on 127.0.0.1 (or Options.Addr) with a fresh RSA
// signing key.
func New(opts Options) (*Server, error) {
	if opts.Subject == "" {
		opts.Subject = "user-1"
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("oidcprovider: generate key: %w", err)
	}
	globalSecret := make([]byte, 32)
	if _, err := rand.Read(globalSecret); err != nil {
		return nil, fmt.Errorf("oidcprovider: generate secret: %w", err)
	}
	thumb, err := (&jose.JSONWebKey{Key: &key.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("oidcprovider: key thumbprint: %w", err)
	}

	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	ln := opts.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", opts.Addr); err != nil {
			return nil, fmt.Errorf("oidcprovider: listen: %w", err)
		}
	}
	issuer := "http://" + ln.Addr().String()

	config := &fosite.Config{
		AccessTokenLifespan:            opts.AccessTokenLifespan,
		RefreshTokenLifespan:           opts.RefreshTokenLifespan,
		IDTokenLifespan:                opts.IDTokenLifespan,
		IDTokenIssuer:                  issuer,
		AccessTokenIssuer:              issuer,
		TokenURL:                       issuer + "/token",
		GlobalSecret:                   globalSecret,
		EnforcePKCE:                    true,
		EnablePKCEPlainChallengeMethod: false,
		// Set explicitly: fosite initialises these lazily on first use,
		// which is a data race between concurrent requests.
		ScopeStrategy:            fosite.WildcardScopeStrategy,
		AudienceMatchingStrategy: fosite.DefaultAudienceMatchingStrategy,
		ClientSecretsHasher:      sha256Hasher{},
	}
	if opts.AlwaysIssueRefreshToken {
		config.RefreshTokenScopes = []string{} // empty, non-nil: every grant gets one
	}

	st := newStore(opts.RefreshTokenReuseWindow)
	keyGetter := func(context.Context) (interface{}, error) { return key, nil }
	signer := &jwt.DefaultSigner{GetPrivateKey: keyGetter}
	hmac := compose.NewOAuth2HMACStrategy(config)
	provider := compose.Compose(config, st, &compose.CommonStrategy{
		CoreStrategy:               hmac,
		OpenIDConnectTokenStrategy: compose.NewOpenIDConnectStrategy(keyGetter, config),
		Signer:                     signer,
	},
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.OAuth2PKCEFactory,
	)

	s := &Server{
		issuer:          issuer,
		subject:         opts.Subject,
		ln:              ln,
		provider:        provider,
		store:           st,
		key:             key,
		kid:             base64.RawURLEncoding.EncodeToString(thumb),
		signer:          signer,
		hmac:            hmac,
		config:          config,
		loginPage:       opts.LoginPage,
		prefixClients:   map[string]Client{},
		sessions:        map[string]string{},
		refreshUses:     map[string]int{},
		serveErrChannel: make(chan error, 1),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", s.handleDiscovery)
	mux.HandleFunc("GET /jwks", s.handleJWKS)
	mux.HandleFunc("/authorize", s.handleAuthorize)
	mux.HandleFunc("GET /login", s.handleLogin)
	mux.HandleFunc("POST /login", s.handleLoginAnswer)
	mux.HandleFunc("/token", s.handleToken)
	mux.HandleFunc("/revoke", s.handleRevoke)
	mux.HandleFunc("/introspect", s.handleIntrospect)
	mux.HandleFunc("/userinfo", s.handleUserinfo)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.connections.Add(1)
		}
	}}
	go func() { s.serveErrChannel <- s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server and closes all its connections.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		_ = s.srv.Close()
		<-s.serveErrChannel
	})
}

// Issuer is the provider's issuer URL, "http://127.0.0.1:PORT" (no trailing
// slash; the host is Options.Addr's); the discovery document is at Issuer()+"/.well-known/openid-configuration".
func (s *Server) Issuer() string { return s.issuer }

// Subject is the user every authorization is granted for.
func (s *Server) Subject() string { return s.subject }

// AccessTokenLifespan is how long the access tokens it issues live.
func (s *Server) AccessTokenLifespan() time.Duration {
	return s.config.GetAccessTokenLifespan(context.Background())
}

// KeyID is the kid of the provider's signing key.
func (s *Server) KeyID() string { return s.kid }

// AddClient registers (or replaces) a client. It may be called at any time.
func (s *Server) AddClient(c Client) error {
	fc, err := fositeClient(c)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.prefixClients, c.ID)
	if c.RedirectURIPrefix != "" {
		c.RedirectURIs = slices.Clone(c.RedirectURIs)
		s.prefixClients[c.ID] = c
	}
	s.store.setClient(fc)
	return nil
}

// fositeClient is c as fosite stores it, once c is checked.
func fositeClient(c Client) (*fosite.DefaultOpenIDConnectClient, error) {
	if c.ID == "" {
		return nil, errors.New("oidcprovider: client ID is required")
	}
	if len(c.RedirectURIs) == 0 && c.RedirectURIPrefix == "" {
		return nil, errors.New("oidcprovider: at least one redirect URI (or a RedirectURIPrefix) is required")
	}
	method := c.AuthMethod
	if method == "" {
		method = "client_secret_basic"
	}
	public := false
	switch method {
	case "client_secret_basic", "client_secret_post":
		if c.Secret == "" {
			return nil, fmt.Errorf("oidcprovider: client %q: %s requires a secret", c.ID, method)
		}
	case "none":
		public = true
	default:
		return nil, fmt.Errorf("oidcprovider: client %q: unsupported auth method %q", c.ID, method)
	}
	var hashed []byte
	if !public {
		hashed, _ = sha256Hasher{}.Hash(context.Background(), []byte(c.Secret))
	}
	scopes := slices.Clone(DefaultScopes)
	for _, sc := range c.Scopes {
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	return &fosite.DefaultOpenIDConnectClient{
		DefaultClient: &fosite.DefaultClient{
			ID:            c.ID,
			Secret:        hashed,
			RedirectURIs:  slices.Clone(c.RedirectURIs),
			GrantTypes:    []string{"authorization_code", "refresh_token"},
			ResponseTypes: []string{"code"},
			Scopes:        scopes,
			Public:        public,
		},
		TokenEndpointAuthMethod: method,
	}, nil
}

// redirectSegment is the one path segment after a client's
// RedirectURIPrefix: a provider id, as admin makes them (prv_ and hex).
var redirectSegment = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// admitRedirect registers the redirect URI of an authorization request for
// its client when it is the client's RedirectURIPrefix and one segment, so
// that fosite's exact match that follows accepts it.
func (s *Server) admitRedirect(form url.Values) {
	uri := form.Get("redirect_uri")
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.prefixClients[form.Get("client_id")]
	if !ok || slices.Contains(c.RedirectURIs, uri) {
		return
	}
	rest, ok := strings.CutPrefix(uri, c.RedirectURIPrefix)
	if !ok || !redirectSegment.MatchString(rest) {
		return
	}
	c.RedirectURIs = append(c.RedirectURIs, uri)
	fc, err := fositeClient(c)
	if err != nil {
		return // c was checked when it was added
	}
	s.prefixClients[c.ID] = c
	s.store.setClient(fc)
}

// ---- test controls ----

// DenyConsent makes /authorize (after login) answer error=access_denied.
func (s *Server) DenyConsent(deny bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denyConsent = deny
}

// FailTokenRequests makes the next n requests to /token answer with exactly
// status, header and body instead of being processed. If header has no
// Content-Type and body starts with "{", Content-Type application/json is sent.
// Injected failures count in TokenRequests but not in RefreshTokenUses.
func (s *Server) FailTokenRequests(n int, status int, header http.Header, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = s.failures[:0]
	for range n {
		s.failures = append(s.failures, tokenFailure{status: status, header: header.Clone(), body: body})
	}
}

// OmitRefreshTokenOnRefresh, when true, removes refresh_token from successful
// refresh_token grant responses. In this mode the presented refresh token is
// NOT rotated: it stays valid (the new one fosite minted is never stored), as
// does the previous access token. The presented token is still counted in
// RefreshTokenUses each time it is redeemed.
func (s *Server) OmitRefreshTokenOnRefresh(omit bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.omitRefresh = omit
}

// RevokeAllGrants deletes every access and refresh token issued so far, as if
// the user revoked the application: the next refresh fails with invalid_grant
// and those access tokens no longer introspect as active. Login sessions and
// not yet redeemed authorization codes are untouched.
func (s *Server) RevokeAllGrants() {
	s.grantMu.Lock()
	defer s.grantMu.Unlock()
	s.store.revokeAll(context.Background())
}

// Logout forgets all login sessions, so the next /authorize sends the browser
// to /login again.
func (s *Server) Logout() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.sessions)
}

// MutateNextIDToken arranges for the id_token of the next token response that
// carries one to be decoded, passed to f (claims as decoded by encoding/json:
// numbers are float64) and re-signed with the provider's key and kid.
// Several calls queue up, one per id_token.
func (s *Server) MutateNextIDToken(f func(claims map[string]any)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mutateIDToken = append(s.mutateIDToken, f)
}

// RewriteNextTokenResponse arranges for the JSON body of the next successful
// /token response to be passed to f before it is sent, so a test can drop,
// retype or add members (expires_in as a string, no expires_in, an extra
// refresh_token_expires_in ...). The tokens themselves are issued and stored
// as usual. Several calls queue up, one per response.
func (s *Server) RewriteNextTokenResponse(f func(body map[string]any)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rewriteResponse = append(s.rewriteResponse, f)
}

// AddNextCallbackParams adds params to the next successful authorization
// response's redirect, as QuickBooks adds realmId and Zoho accounts-server.
func (s *Server) AddNextCallbackParams(params map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.callbackParams = maps.Clone(params)
}

// FormNextTokenResponse makes the next successful /token response an
// application/x-www-form-urlencoded body instead of JSON (after any
// rewrite), as GitHub answers a client that asks for no JSON.
func (s *Server) FormNextTokenResponse() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.formResponses++
}

// BeforeTokenResponse calls f (nil removes it) with the grant type of every
// successful /token response, after the tokens are issued and stored and
// before the response is written: a test can stop the world between the
// provider's rotation and the client's hearing of it. A refresh grant's f
// runs while refresh grants are serialised, so f must not wait for another.
func (s *Server) BeforeTokenResponse(f func(grantType string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beforeResponse = f
}

// MintRefreshToken stores a new, valid refresh-token grant for clientID with
// scopes granted to the provider's subject, as a completed consent would,
// and returns the refresh token: no browser, no code exchange. Benchmarks use
// it to give many connections real refresh tokens quickly. The grant counts
// for RevokeAllGrants like any other.
func (s *Server) MintRefreshToken(clientID string, scopes []string) (string, error) {
	ctx := context.Background()
	client, err := s.store.GetClient(ctx, clientID)
	if err != nil {
		return "", fmt.Errorf("oidcprovider: client %q: %w", clientID, err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	session := &openid.DefaultSession{
		Claims: &jwt.IDTokenClaims{
			Issuer:      s.issuer,
			Subject:     s.subject,
			AuthTime:    now,
			RequestedAt: now,
		},
		Headers:  &jwt.Headers{Extra: map[string]interface{}{"kid": s.kid}},
		Subject:  s.subject,
		Username: s.subject,
	}
	if lifespan := s.config.GetRefreshTokenLifespan(ctx); lifespan > 0 {
		session.SetExpiresAt(fosite.RefreshToken, now.Add(lifespan))
	}
	req := fosite.NewRequest()
	req.Client = client
	req.RequestedAt = now
	req.Session = session
	for _, sc := range scopes {
		req.AppendRequestedScope(sc)
		req.GrantScope(sc)
	}
	token, signature, err := s.hmac.GenerateRefreshToken(ctx, req)
	if err != nil {
		return "", fmt.Errorf("oidcprovider: generate refresh token: %w", err)
	}
	s.grantMu.Lock()
	defer s.grantMu.Unlock()
	if err := s.store.CreateRefreshTokenSession(ctx, signature, "", req); err != nil {
		return "", fmt.Errorf("oidcprovider: store refresh token: %w", err)
	}
	s.mu.Lock()
	s.issued.RefreshTokens = append(s.issued.RefreshTokens, token)
	s.mu.Unlock()
	return token, nil
}

// SignNextIDTokenWithForeignKey makes the next id_token be signed with a fresh
// RSA key that is not in the JWKS (same kid), so signature verification fails.
func (s *Server) SignNextIDTokenWithForeignKey() {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic("oidcprovider: generate key: " + err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.foreignKey = k
}

// Delay adds latency d to every /token request (0 turns it off).
func (s *Server) Delay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Connections counts the TCP connections the provider accepted, whatever
// came over them: a test can tell that nothing reached it.
func (s *Server) Connections() int { return int(s.connections.Load()) }

// TokenRequests counts all requests to /token, including injected failures.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenRequests
}

// RefreshGrants counts successful refresh_token grants.
func (s *Server) RefreshGrants() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshGrants
}

// RefreshTokenUses maps TokenHash(refresh token) to the number of
// refresh_token grants (successful or not, injected failures excluded) that
// presented it.
func (s *Server) RefreshTokenUses() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.refreshUses))
	for k, v := range s.refreshUses {
		out[k] = v
	}
	return out
}

// Reuses counts the refresh grants that presented a rotated refresh token:
// Within the reuse window (accepted, Options.RefreshTokenReuseWindow) and
// Beyond it (refused with invalid_grant, the family revoked).
type Reuses struct{ Within, Beyond int }

// RefreshTokenReuses counts the presentations of rotated refresh tokens.
func (s *Server) RefreshTokenReuses() Reuses {
	return s.store.reuses()
}

// Revocations lists TokenHash of each token posted to /revoke, in order.
func (s *Server) Revocations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.revocations)
}

// AuthorizeRequests returns the parameters of each /authorize hit, in order
// (the first hit of a flow is the one that gets sent to /login).
func (s *Server) AuthorizeRequests() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]url.Values, len(s.authorizeReqs))
	for i, v := range s.authorizeReqs {
		out[i] = cloneValues(v)
	}
	return out
}

// Logins counts /login visits that established a session (with
// Options.LoginPage, the answers that allowed).
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// TokenHash is how tokens are identified in counters: hex(sha256(token)).
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// ---- HTTP glue ----

func (s *Server) handleDiscovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                         s.issuer,
		"authorization_endpoint":                         s.issuer + "/authorize",
		"token_endpoint":                                 s.issuer + "/token",
		"revocation_endpoint":                            s.issuer + "/revoke",
		"introspection_endpoint":                         s.issuer + "/introspect",
		"userinfo_endpoint":                              s.issuer + "/userinfo",
		"jwks_uri":                                       s.issuer + "/jwks",
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"grant_types_supported":                          []string{"authorization_code", "refresh_token"},
		"subject_types_supported":                        []string{"public"},
		"code_challenge_methods_supported":               []string{"S256"},
		"token_endpoint_auth_methods_supported":          []string{"client_secret_basic", "client_secret_post"},
		"revocation_endpoint_auth_methods_supported":     []string{"client_secret_basic", "client_secret_post"},
		"id_token_signing_alg_values_supported":          []string{"RS256"},
		"scopes_supported":                               DefaultScopes,
		"claims_supported":                               []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash"},
		"authorization_response_iss_parameter_supported": true,
	})
}

func (s *Server) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key:       &s.key.PublicKey,
		KeyID:     s.kid,
		Algorithm: string(jose.RS256),
		Use:       "sig",
	}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// issWriter adds the RFC 9207 "iss" parameter to the redirect fosite writes
// for an authorization error (fosite does not add it itself).
type issWriter struct {
	http.ResponseWriter
	iss string
}

func (w issWriter) WriteHeader(code int) {
	if code >= 300 && code < 400 {
		if loc := w.Header().Get("Location"); loc != "" {
			if u, err := url.Parse(loc); err == nil {
				if u.Fragment != "" {
					f, _ := url.ParseQuery(u.Fragment)
					f.Set("iss", w.iss)
					u.Fragment = f.Encode()
				} else {
					q := u.Query()
					q.Set("iss", w.iss)
					u.RawQuery = q.Encode()
				}
				w.Header().Set("Location", u.String())
			}
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	_ = r.ParseForm()
	s.mu.Lock()
	s.authorizeReqs = append(s.authorizeReqs, cloneValues(r.Form))
	s.mu.Unlock()

	s.admitRedirect(r.Form)
	ar, err := s.provider.NewAuthorizeRequest(ctx, r)
	if err != nil {
		s.provider.WriteAuthorizeError(ctx, issWriter{w, s.issuer}, ar, err)
		return
	}

	subject, ok := s.sessionSubject(r)
	if !ok || s.loginPage {
		next := s.issuer + r.URL.RequestURI()
		if r.Method != http.MethodGet {
			next = s.issuer + "/authorize?" + r.Form.Encode()
		}
		http.Redirect(w, r, s.issuer+"/login?next="+url.QueryEscape(next), http.StatusFound)
		return
	}
	s.answerAuthorize(ctx, w, ar, subject, false)
}

// answerAuthorize answers a valid authorization request of subject's: with
// access_denied when the person denied it (or DenyConsent is set),
// otherwise with a code granting everything that was asked for.
func (s *Server) answerAuthorize(ctx context.Context, w http.ResponseWriter, ar fosite.AuthorizeRequester, subject string, denied bool) {
	s.mu.Lock()
	denied = denied || s.denyConsent
	s.mu.Unlock()
	if denied {
		s.provider.WriteAuthorizeError(ctx, issWriter{w, s.issuer}, ar,
			fosite.ErrAccessDenied.WithHint("The resource owner denied the request."))
		return
	}

	// The user consents to everything that was asked for.
	for _, scope := range ar.GetRequestedScopes() {
		ar.GrantScope(scope)
	}
	for _, aud := range ar.GetRequestedAudience() {
		ar.GrantAudience(aud)
	}

	now := time.Now().UTC().Truncate(time.Second)
	session := &openid.DefaultSession{
		Claims: &jwt.IDTokenClaims{
			Issuer:      s.issuer,
			Subject:     subject,
			AuthTime:    now,
			RequestedAt: now,
		},
		Headers:  &jwt.Headers{Extra: map[string]interface{}{"kid": s.kid}},
		Subject:  subject,
		Username: subject,
	}
	resp, err := s.provider.NewAuthorizeResponse(ctx, ar, session)
	if err != nil {
		s.provider.WriteAuthorizeError(ctx, issWriter{w, s.issuer}, ar, err)
		return
	}
	resp.AddParameter("iss", s.issuer)
	s.mu.Lock()
	extra := s.callbackParams
	s.callbackParams = nil
	s.mu.Unlock()
	for k, v := range extra {
		resp.AddParameter(k, v)
	}
	s.provider.WriteAuthorizeResponse(ctx, w, ar, resp)
}

func (s *Server) sessionSubject(r *http.Request) (string, bool) {
	c, err := r.Cookie(SessionCookieName)
	if err != nil {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, ok := s.sessions[c.Value]
	return sub, ok
}

// handleLogin logs the configured Subject in without asking anything, sets the
// session cookie and sends the browser back to the authorization request;
// with Options.LoginPage it shows the page that asks instead.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	next, ok := loginNext(w, r, s.issuer)
	if !ok {
		return
	}
	if s.loginPage {
		showLoginPage(w, http.StatusOK, loginPage{Request: next.Query(), Username: s.subject})
		return
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		http.Error(w, "login: no randomness", http.StatusInternalServerError)
		return
	}
	value := base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	s.sessions[value] = s.subject
	s.logins++
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name:     SessionCookieName,
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, next.String(), http.StatusFound)
}

// loginNext is the authorization request /login was sent from, its next
// parameter; anything but this provider's /authorize is answered 400.
func loginNext(w http.ResponseWriter, r *http.Request, issuer string) (*url.URL, bool) {
	u, err := url.Parse(r.URL.Query().Get("next"))
	if err != nil || (u.Host != "" && issuer != u.Scheme+"://"+u.Host) || u.Path != "/authorize" {
		http.Error(w, "login: next must be this provider's /authorize URL", http.StatusBadRequest)
		return nil, false
	}
	return u, true
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.tokenRequests++
	delay := s.delay
	s.mu.Unlock()

	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}

	s.mu.Lock()
	var fail *tokenFailure
	if len(s.failures) > 0 {
		f := s.failures[0]
		s.failures = s.failures[1:]
		fail = &f
	}
	s.mu.Unlock()
	if fail != nil {
		for k, vs := range fail.header {
			w.Header()[k] = slices.Clone(vs)
		}
		if w.Header().Get("Content-Type") == "" && strings.HasPrefix(strings.TrimSpace(fail.body), "{") {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(fail.status)
		_, _ = w.Write([]byte(fail.body))
		return
	}

	ctx := r.Context()
	_ = r.ParseMultipartForm(1 << 20)
	isRefresh := r.PostForm.Get("grant_type") == "refresh_token"
	if isRefresh {
		s.grantMu.Lock()
		defer s.grantMu.Unlock()
		s.mu.Lock()
		if rt := r.PostForm.Get("refresh_token"); rt != "" {
			s.refreshUses[TokenHash(rt)]++
		}
		omit := s.omitRefresh
		s.mu.Unlock()
		if omit {
			ctx = context.WithValue(ctx, keepOldRefreshTokenKey, true)
		}
	}

	ar, err := s.provider.NewAccessRequest(ctx, r, openid.NewDefaultSession())
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}

	if isRefresh {
		s.mu.Lock()
		s.refreshGrants++
		slow := s.slowSuccess
		s.mu.Unlock()
		if slow > 0 {
			s.grantMu.Unlock() // let the next grant (the reuse) be answered first
			time.Sleep(slow)
			s.grantMu.Lock()
		}
		if keepOldRefreshToken(ctx) {
			delete(resp.ToMap(), "refresh_token")
		}
	}
	if idt, ok := resp.GetExtra("id_token").(string); ok && idt != "" {
		if tampered, err := s.tamperIDToken(ctx, idt); err != nil {
			s.provider.WriteAccessError(ctx, w, ar, fosite.ErrServerError.WithWrap(err))
			return
		} else if tampered != "" {
			resp.SetExtra("id_token", tampered)
		}
	}
	s.recordIssued(resp)
	s.mu.Lock()
	hook := s.beforeResponse
	s.mu.Unlock()
	if hook != nil {
		hook(r.PostForm.Get("grant_type"))
	}
	s.mu.Lock()
	var rewrite func(map[string]any)
	if len(s.rewriteResponse) > 0 {
		rewrite = s.rewriteResponse[0]
		s.rewriteResponse = s.rewriteResponse[1:]
	}
	asForm := s.formResponses > 0
	if asForm {
		s.formResponses--
		if rewrite == nil {
			rewrite = func(map[string]any) {}
		}
	}
	s.mu.Unlock()
	if rewrite == nil {
		s.provider.WriteAccessResponse(ctx, w, ar, resp)
		return
	}
	// What fosite's WriteAccessResponse does, over a rewritten body.
	body := maps.Clone(resp.ToMap())
	rewrite(body)
	if asForm {
		// As GitHub answers a client that sends no Accept header.
		form := url.Values{}
		for k, v := range body {
			form.Set(k, fmt.Sprint(v))
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(form.Encode()))
		return
	}
	js, err := json.Marshal(body)
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, fosite.ErrServerError.WithWrap(err))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(js)
}

// Issued lists, in plaintext, every token the provider has handed out, so a
// test can look for them where they must never be (the bus, the database).
type Issued struct {
	AccessTokens, RefreshTokens, IDTokens []string
}

// Counts summarises an Issued without printing any token.
func (i Issued) Counts() string {
	return fmt.Sprintf("%d access, %d refresh, %d id tokens", len(i.AccessTokens), len(i.RefreshTokens), len(i.IDTokens))
}

func (s *Server) recordIssued(resp fosite.AccessResponder) {
	m := resp.ToMap()
	s.mu.Lock()
	defer s.mu.Unlock()
	if at := resp.GetAccessToken(); at != "" {
		s.issued.AccessTokens = append(s.issued.AccessTokens, at)
	}
	if rt, ok := m["refresh_token"].(string); ok && rt != "" {
		s.issued.RefreshTokens = append(s.issued.RefreshTokens, rt)
	}
	if it, ok := resp.GetExtra("id_token").(string); ok && it != "" {
		s.issued.IDTokens = append(s.issued.IDTokens, it)
	}
}

// Issued returns a copy of every token issued so far.
func (s *Server) Issued() Issued {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Issued{
		AccessTokens:  slices.Clone(s.issued.AccessTokens),
		RefreshTokens: slices.Clone(s.issued.RefreshTokens),
		IDTokens:      slices.Clone(s.issued.IDTokens),
	}
}

// tamperIDToken applies pending MutateNextIDToken / SignNextIDTokenWithForeignKey
// controls. It returns "" when there is nothing to do.
func (s *Server) tamperIDToken(ctx context.Context, idToken string) (string, error) {
	s.mu.Lock()
	var mutate func(map[string]any)
	if len(s.mutateIDToken) > 0 {
		mutate = s.mutateIDToken[0]
		s.mutateIDToken = s.mutateIDToken[1:]
	}
	foreign := s.foreignKey
	s.foreignKey = nil
	s.mu.Unlock()
	if mutate == nil && foreign == nil {
		return "", nil
	}

	parts := strings.Split(idToken, ".")
	if len(parts) != 3 {
		return "", errors.New("id_token is not a compact JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	claims := map[string]any{}
	if err := json.NewDecoder(bytes.NewReader(payload)).Decode(&claims); err != nil {
		return "", err
	}
	if mutate != nil {
		mutate(claims)
	}
	signer := s.signer
	if foreign != nil {
		signer = &jwt.DefaultSigner{GetPrivateKey: func(context.Context) (interface{}, error) { return foreign, nil }}
	}
	token, _, err := signer.Generate(ctx, jwt.MapClaims(claims), &jwt.Headers{Extra: map[string]interface{}{"kid": s.kid}})
	return token, err
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	_ = r.ParseMultipartForm(1 << 20)
	if tok := r.PostForm.Get("token"); tok != "" {
		s.mu.Lock()
		s.revocations = append(s.revocations, TokenHash(tok))
		s.mu.Unlock()
	}
	s.grantMu.Lock()
	err := s.provider.NewRevocationRequest(ctx, r)
	s.grantMu.Unlock()
	s.provider.WriteRevocationResponse(ctx, w, err)
}

func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ir, err := s.provider.NewIntrospectionRequest(ctx, r, openid.NewDefaultSession())
	if err != nil {
		s.provider.WriteIntrospectionError(ctx, w, err)
		return
	}
	s.provider.WriteIntrospectionResponse(ctx, w, ir)
}

// handleUserinfo answers with the subject of a valid bearer access token.
func (s *Server) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	_, ar, err := s.provider.IntrospectToken(ctx, fosite.AccessTokenFromRequest(r), fosite.AccessToken, openid.NewDefaultSession())
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sub": ar.GetSession().GetSubject()})
}

// SlowSuccess delays the answer of a successful refresh grant by d, made
// after the grant (the refresh token is rotated at once), without holding
// other grants back: a rotation whose answer arrives late.
func (s *Server) SlowSuccess(d time.Duration) { s.mu.Lock(); s.slowSuccess = d; s.mu.Unlock() }
