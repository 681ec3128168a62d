package vault_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/testkit"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// The egress guard, as an attacker who can register providers (or move
// their endpoints) would probe it. Tests use loopback aliases only: the
// vaults open 127.0.0.1/32 (or a wider 127.0.0.0/8 when registering), and
// 127.0.0.2 plays the internal service the attacker aims at.

// listener is a server on addr that counts the connections it accepts.
type listener struct {
	*httptest.Server
	conns *atomic.Int32
}

func listenOn(t *testing.T, addr string, h http.HandlerFunc) *listener {
	t.Helper()
	s, conns := testkit.HTTPServer(t, addr, h)
	return &listener{Server: s, conns: conns}
}

// providerAnswersAt makes the registered provider's token endpoint tokenURL,
// as if the provider itself answered there from now on (a move through
// vault.clients.put is refused while connections are live): how the tests
// play a provider that misbehaves at its own endpoint.
func (e *env) providerAnswersAt(tokenURL string) {
	e.t.Helper()
	if _, err := e.pool.Exec(context.Background(), `update vault.provider_clients set token_endpoint = $2 where provider_id = $1`, providerID, tokenURL); err != nil {
		e.t.Fatal(err)
	}
}

// restrict replaces the vault with one whose PROVIDER_PRIVATE_NETWORKS is
// list, on the same database: what an operator narrowing the setting does.
func (e *env) restrict(list string) {
	e.t.Helper()
	if err := e.svc.Close(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.networks = networksOf(e.t, list)
	e.svc = e.start(e.key)
}

// TestRefusedTokenEndpoint: a client whose token endpoint is at a refused
// address is not registered; one registered while its network was open is
// not refreshed once it is closed. Either way the refresh token and the
// client secret never reach the listener.
func TestRefusedTokenEndpoint(t *testing.T) {
	t.Parallel()
	// A real provider at 127.0.0.2, registered while 127.0.0.0/8 is open.
	e := newEnv(t, envOptions{networks: "127.0.0.0/8", provider: oidcprovider.Options{Addr: "127.0.0.2:0"}})
	c := e.connect(workspace) // the positive path, at a listed address
	before := e.op.Connections()

	// Closed to everything but 127.0.0.1: registering at 127.0.0.2 fails...
	e.restrict("127.0.0.1/32")
	inside := messages.VaultClient{ProviderID: "p-internal", ProviderName: "internal", Type: messages.ProviderOAuth2,
		ClientID: clientID, ClientSecret: secret, TokenEndpoint: e.op.Issuer() + "/token"}
	err := e.call(messages.SubjectVaultClientsPut, inside, nil)
	wantCode(t, err, messages.ErrInvalidRequest)
	if !strings.Contains(err.Error(), "127.0.0.2 is a loopback address; add its network to PROVIDER_PRIVATE_NETWORKS") {
		t.Errorf("registration: %v", err)
	}

	// ... and the stored client is not called: the refresh is refused
	// before any connection, as a provider error naming what to change,
	// and the connection stays as it was (the user can do nothing about it).
	refreshBefore := e.storedRefreshToken(c.ConnectionID)
	err = e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, nil)
	wantCode(t, err, messages.ErrProviderError)
	if !strings.Contains(err.Error(), "provider token endpoint: 127.0.0.2 is a loopback address; add its network to PROVIDER_PRIVATE_NETWORKS to allow it") {
		t.Errorf("refresh: %v", err)
	}
	// Revocation goes through the same guard.
	var revoked messages.Connection
	e.mustCall(messages.SubjectConnectionsRevoke, messages.ConnectionRef{ConnectionID: c.ConnectionID}, &revoked)
	if n := e.op.Connections() - before; n != 0 {
		t.Errorf("the refused provider saw %d connection(s)", n)
	}
	if got := e.op.Revocations(); len(got) != 0 {
		t.Errorf("revocations reached the refused provider: %v", got)
	}
	if refreshBefore == "" {
		t.Error("no refresh token was stored by the exchange")
	}
}

// TestVerificationNoPortOracle: a verification URL at a refused address
// gets the same answer whether its port is open or closed, and nothing
// reaches what listens there.
func TestVerificationNoPortOracle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noProvider: true, networks: "127.0.0.0/8"})
	open := listenOn(t, "127.0.0.2:0", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) })
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	for name, u := range map[string]string{"static-open": open.URL, "static-closed": closed} {
		c := apiKeyClient(name, name)
		c.Verification = &messages.Verification{URL: u + "/v1/me"}
		e.putClient(c)
	}

	// Registration-time: with 127.0.0.2 closed, both URLs are refused
	// alike (each message quotes its own URL, nothing else differs).
	e.restrict("127.0.0.1/32")
	var regs []string
	for _, u := range []string{open.URL, closed} {
		c := apiKeyClient("static-new", "static-new")
		c.Verification = &messages.Verification{URL: u + "/v1/me"}
		err := e.call(messages.SubjectVaultClientsPut, c, nil)
		wantCode(t, err, messages.ErrInvalidRequest)
		regs = append(regs, strings.ReplaceAll(err.Error(), u, "URL"))
	}
	if regs[0] != regs[1] {
		t.Errorf("registration answers differ:\n%s\n%s", regs[0], regs[1])
	}

	// Use-time: the credentials a person just typed are not sent, and the
	// answer is the same for both.
	var answers []string
	for _, p := range []string{"static-open", "static-closed"} {
		conn := e.createFor(p, workspace)
		_, err := e.storeStatic(conn.ConnectionID, map[string]any{"api_key": "sk-typed-by-a-person"})
		wantCode(t, err, messages.ErrUnavailable)
		answers = append(answers, err.Error())
		if got := e.get(conn.ConnectionID); got.Status != messages.StatusPending {
			t.Errorf("%s: status %s after a refused verification", p, got.Status)
		}
	}
	if answers[0] != answers[1] {
		t.Errorf("open and closed ports answer differently:\n%s\n%s", answers[0], answers[1])
	}
	if want := "the broker does not send the provider's verification request: 127.0.0.2 is a loopback address; add its network to PROVIDER_PRIVATE_NETWORKS to allow it"; !strings.Contains(answers[0], want) {
		t.Errorf("answer = %s\nwant it to say %s", answers[0], want)
	}
	if n := open.conns.Load(); n != 0 {
		t.Errorf("the refused verification endpoint saw %d connection(s)", n)
	}
}

// TestTokenEndpointRedirect: an allowed token endpoint that redirects does
// not get the refresh token and client secret re-sent where it points,
// refused address or allowed one.
func TestTokenEndpointRedirect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	refreshBefore := e.storedRefreshToken(c.ConnectionID)
	internal := listenOn(t, "127.0.0.2:0", func(w http.ResponseWriter, r *http.Request) {})
	elsewhere := listenOn(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {})
	for _, target := range []*listener{internal, elsewhere} {
		redirector := listenOn(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/token", http.StatusTemporaryRedirect)
		})
		e.providerAnswersAt(redirector.URL + "/token")
		e.backoffPassed(c.ConnectionID)
		err := e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, nil)
		wantCode(t, err, messages.ErrProviderError)
		if !strings.Contains(err.Error(), "HTTP 307") {
			t.Errorf("refresh: %v", err)
		}
		if redirector.conns.Load() == 0 {
			t.Error("the registered token endpoint was not called")
		}
	}
	if internal.conns.Load() != 0 || elsewhere.conns.Load() != 0 {
		t.Errorf("a redirect was followed: %d, %d connection(s)", internal.conns.Load(), elsewhere.conns.Load())
	}
	if got := e.get(c.ConnectionID); got.Status != messages.StatusActive || e.storedRefreshToken(c.ConnectionID) != refreshBefore {
		t.Errorf("the connection changed: %s", got.Status)
	}
}

// TestOversizedTokenResponse: a token endpoint that answers more than the
// cap is refused, not read in part, and nothing is stored.
func TestOversizedTokenResponse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	refreshBefore := e.storedRefreshToken(c.ConnectionID)
	huge := listenOn(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "attacker-chosen", "token_type": "Bearer",
			"refresh_token": "attacker-chosen-refresh", "padding": strings.Repeat("x", 2<<20)})
	})
	e.providerAnswersAt(huge.URL + "/token")
	err := e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, nil)
	wantCode(t, err, messages.ErrProviderError)
	if !strings.Contains(err.Error(), "larger than the broker reads from a provider") {
		t.Errorf("refresh: %v", err)
	}
	if e.storedRefreshToken(c.ConnectionID) != refreshBefore {
		t.Error("a refresh token from the oversized response was stored")
	}
	var me *messages.Error
	if errors.As(err, &me) && strings.Contains(me.Message, "attacker-chosen") {
		t.Error("the error quotes the response")
	}
}

// TestMovedTokenEndpointTakesNoRefreshToken: whoever holds an operator key
// re-points the provider's token endpoint at a host of their own, with a
// client secret of their own making (the old one cannot be read back), to
// collect every connection's refresh token at its next refresh. The vault
// refuses the move while connections hold grants of the old endpoint, and
// nothing reaches the new host; once no connection is live, the move is an
// ordinary change.
func TestMovedTokenEndpointTakesNoRefreshToken(t *testing.T) {
	e := newEnv(t, envOptions{networks: "127.0.0.0/8"})
	c := e.connect(workspace)
	collector := listenOn(t, "127.0.0.3:0", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	moved := messages.VaultClient{ProviderID: providerID, ProviderName: "test-provider", Type: messages.ProviderOIDC,
		ClientID: clientID, ClientSecret: "attacker-chosen", Issuer: e.op.Issuer(), JWKSURI: e.op.Issuer() + "/jwks",
		TokenEndpoint: collector.URL + "/token", RevocationEndpoint: e.op.Issuer() + "/revoke"}
	wantCode(t, e.call(messages.SubjectVaultClientsPut, moved, nil), messages.ErrConflict)
	revokeMoved := moved
	revokeMoved.TokenEndpoint, revokeMoved.RevocationEndpoint = e.op.Issuer()+"/token", collector.URL+"/revoke"
	wantCode(t, e.call(messages.SubjectVaultClientsPut, revokeMoved, nil), messages.ErrConflict)

	// The connection refreshes at the endpoint it was granted by.
	if err := e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID, WorkspaceID: workspace}, nil); err != nil {
		t.Fatalf("refresh after the refused move: %v", err)
	}
	var revoked messages.Connection
	e.mustCall(messages.SubjectConnectionsRevoke, messages.ConnectionRef{ConnectionID: c.ConnectionID, WorkspaceID: workspace}, &revoked)
	if n := collector.conns.Load(); n != 0 {
		t.Fatalf("the attacker's host saw %d connection(s)", n)
	}
	// No live connection: nothing would follow the move.
	e.putClient(moved)
}
