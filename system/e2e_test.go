package system_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/testkit"
	"github.com/nexus-broker/nexus/system/systemtest"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

const (
	gatewayKey = "gw-key-current-7c1e9b2a4d"
	rotatedKey = "gw-key-previous-55aa01f3e9"
)

func startBroker(t *testing.T, popts oidcprovider.Options) *systemtest.Broker {
	t.Helper()
	return startBrokerEnv(t, popts, nil)
}

// startBrokerEnv is startBroker with extra environment for the services.
func startBrokerEnv(t *testing.T, popts oidcprovider.Options, env map[string]string) *systemtest.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	natsURL, passwords := testkit.NATSWithUsers(t)
	b, err := systemtest.Start(ctx, systemtest.Infra{
		NATSURL:            natsURL,
		NATSPasswords:      passwords,
		DatabaseURL:        testkit.Postgres(t),
		RedisURL:           testkit.Redis(t),
		EncryptionKey:      testkit.Key32(t),
		StateKey:           testkit.Key32(t),
		APIKeys:            []string{gatewayKey, rotatedKey},
		CrossWorkspaceKeys: []string{gatewayKey},
		Env:                env,
	}, popts)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestOIDCEndToEnd walks a newcomer's path: register a provider by issuer,
// begin a consent, consent in a browser, read tokens, list, revoke.
func TestOIDCEndToEnd(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)

	prov, err := b.RegisterOIDC(ctx, "acme", "acme-prod")
	if err != nil {
		t.Fatalf("register provider: %v", err)
	}
	if prov.TokenEndpoint != b.Provider.Issuer()+"/token" || prov.JWKSURI == "" || prov.AuthorizationEndpoint == "" {
		t.Fatalf("discovery did not fill the endpoints: %+v", prov)
	}
	if prov.ClientSecret != "" || !prov.ClientSecretSet {
		t.Fatalf("client secret must be write-only and held by the vault: secret=%q set=%v", prov.ClientSecret, prov.ClientSecretSet)
	}

	q, err := b.Connect(ctx, "acme-prod", "ws-1")
	if err != nil {
		t.Fatalf("consent: %v", err)
	}
	if q.Get("status") != "active" || q.Get("app") != "1" {
		t.Fatalf("return_url query = %v, want status=active and the original app=1", q)
	}
	id := q.Get("connection_id")

	// The authorization request carried state, nonce and PKCE S256, and no verifier.
	auths := b.Provider.AuthorizeRequests()
	if len(auths) == 0 {
		t.Fatal("the provider saw no authorization request")
	}
	a := auths[len(auths)-1]
	for _, p := range []string{"state", "nonce", "code_challenge"} {
		if a.Get(p) == "" {
			t.Errorf("authorization request lacks %s: %v", p, a)
		}
	}
	if a.Get("code_challenge_method") != "S256" || a.Has("code_verifier") {
		t.Errorf("authorization request must use S256 and never carry the verifier: %v", a)
	}

	var conn messages.Connection
	if err := b.Gateway.Request(ctx, messages.SubjectConnectionsGet, messages.ConnectionRef{ConnectionID: id, WorkspaceID: "ws-1"}, &conn); err != nil {
		t.Fatalf("connections.get: %v", err)
	}
	if conn.Status != messages.StatusActive || conn.Provider != "acme" || conn.ProviderID != prov.ID || conn.WorkspaceID != "ws-1" {
		t.Fatalf("connection = %+v", conn)
	}

	var cred messages.Credential
	if err := b.Gateway.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: id}, &cred); err != nil {
		t.Fatalf("tokens.get: %v", err)
	}
	issued := b.Provider.Issued()
	if cred.AccessToken == "" || cred.AccessToken != issued.AccessTokens[len(issued.AccessTokens)-1] {
		t.Fatalf("tokens.get returned %q, not the provider's access token", cred.AccessToken)
	}
	if cred.Strategy.Type != messages.StrategyOAuth2 || cred.AuthType != messages.AuthOAuth2 || cred.ExpiresAt == nil {
		t.Fatalf("credential = %+v", cred)
	}
	raw, _ := json.Marshal(cred)
	for _, secret := range append(issued.RefreshTokens, append(issued.IDTokens, systemtest.ClientSecret)...) {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("tokens.get reply carries a master secret")
		}
	}

	var list messages.ListConnectionsReply
	if err := b.Gateway.Request(ctx, messages.SubjectConnectionsList, messages.ListConnectionsRequest{WorkspaceID: "ws-1"}, &list); err != nil {
		t.Fatalf("connections.list: %v", err)
	}
	if len(list.Connections) != 1 || list.Connections[0].ConnectionID != id {
		t.Fatalf("connections.list = %+v", list)
	}
	// Every place that takes a provider takes its id, name or alias.
	for _, ref := range []string{prov.ID, "acme", "acme-prod"} {
		var byProvider messages.ListConnectionsReply
		if err := b.Gateway.Request(ctx, messages.SubjectConnectionsList, messages.ListConnectionsRequest{Provider: ref}, &byProvider); err != nil {
			t.Fatal(err)
		}
		if len(byProvider.Connections) != 1 || byProvider.Connections[0].ConnectionID != id {
			t.Errorf("connections.list with provider %q = %d connections", ref, len(byProvider.Connections))
		}
	}
	var none messages.ListConnectionsReply
	if err := b.Gateway.Request(ctx, messages.SubjectConnectionsList, messages.ListConnectionsRequest{Provider: "nobody"}, &none); err != nil || len(none.Connections) != 0 {
		t.Errorf("connections.list with an unknown provider = %+v, %v", none.Connections, err)
	}

	// Another workspace cannot see it.
	err = b.Gateway.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: id, WorkspaceID: "ws-2"}, &cred)
	if !errors.Is(err, messages.ErrNotFound) {
		t.Fatalf("tokens.get from another workspace: %v, want not_found", err)
	}

	before := len(b.Provider.Revocations())
	var revoked messages.Connection
	if err := b.Gateway.Request(ctx, messages.SubjectConnectionsRevoke, messages.ConnectionRef{ConnectionID: id}, &revoked); err != nil {
		t.Fatalf("connections.revoke: %v", err)
	}
	if revoked.Status != messages.StatusRevoked {
		t.Fatalf("revoked connection status = %s", revoked.Status)
	}
	if len(b.Provider.Revocations()) <= before {
		t.Fatal("revoke did not call the provider's RFC 7009 revocation endpoint")
	}
	err = b.Gateway.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: id}, &cred)
	if !errors.Is(err, messages.ErrNotActive) {
		t.Fatalf("tokens.get after revoke: %v, want not_active", err)
	}
	// Secrets are wiped: the row holds no sealed token any more.
	assertNoSealedTokens(t, b.Env["DATABASE_URL"], id)
}

func assertNoSealedTokens(t *testing.T, dbURL, id string) {
	t.Helper()
	ctx := ctxT(t)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var row string
	if err := conn.QueryRow(ctx, "select to_jsonb(c)::text from vault.connections c where id::text = $1", id).Scan(&row); err != nil {
		t.Fatalf("read connection row: %v", err)
	}
	var cols map[string]any
	_ = json.Unmarshal([]byte(row), &cols)
	for k, v := range cols {
		if strings.Contains(k, "sealed") && v != nil {
			t.Errorf("revoked connection still holds %s", k)
		}
	}
}

// TestNoMasterSecretOnTheBus subscribes to every subject while a whole flow
// and token reads run, and fails if a refresh token, client secret or id_token
// ever crosses NATS.
func TestNoMasterSecretOnTheBus(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)

	// The test server's observer may subscribe to everything, inboxes
	// included; no user of the deployment may.
	spy := testkit.ConnAs(t, b.Infra.NATSURL, testkit.Observer, b.Infra.NATSPasswords[testkit.Observer])
	var seen []string
	ch := make(chan string, 4096)
	sub, err := spy.Subscribe(">", func(m *nats.Msg) {
		var sb strings.Builder
		sb.WriteString(m.Subject + " ")
		for k, vs := range m.Header {
			sb.WriteString(k + ":" + strings.Join(vs, ",") + " ")
		}
		sb.Write(m.Data)
		ch <- sb.String()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RegisterOIDC(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	q, err := b.Connect(ctx, "acme", "ws-1")
	if err != nil || q.Get("status") != "active" {
		t.Fatalf("consent: %v %v", q, err)
	}
	for i := 0; i < 5; i++ {
		var cred messages.Credential
		if err := b.Gateway.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: q.Get("connection_id")}, &cred); err != nil {
			t.Fatal(err)
		}
	}
	var cred messages.Credential
	if err := b.Gateway.Request(ctx, messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: q.Get("connection_id")}, &cred); err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	_ = sub.Unsubscribe()
	close(ch)
	for m := range ch {
		seen = append(seen, m)
	}
	issued := b.Provider.Issued()
	if len(issued.RefreshTokens) < 2 || len(issued.IDTokens) == 0 {
		t.Fatalf("the flow should have issued refresh and id tokens: %s", issued.Counts())
	}
	// docs/ARCHITECTURE.md, invariants 1: a client secret an operator registers crosses
	// once, operator -> admin -> vault. Nothing else ever does.
	allowedOnce := map[string]bool{
		messages.Subject(messages.DefaultPrefix, messages.SubjectProvidersCreate): true,
		messages.Subject(messages.DefaultPrefix, messages.SubjectVaultClientsPut): true,
	}
	crossings := map[string]int{}
	for _, m := range seen {
		if strings.Contains(m, systemtest.ClientSecret) {
			subj, _, _ := strings.Cut(m, " ")
			crossings[subj]++
		}
	}
	for subj, n := range crossings {
		if !allowedOnce[subj] || n != 1 {
			t.Errorf("the client secret crossed NATS on %s %d time(s)", subj, n)
		}
	}
	for _, rt := range issued.RefreshTokens {
		checkBus(t, seen, map[string]string{"refresh token": rt})
	}
	for _, it := range issued.IDTokens {
		checkBus(t, seen, map[string]string{"id_token": it})
	}
	if len(seen) < 10 {
		t.Fatalf("the spy saw only %d messages; it is not watching the bus", len(seen))
	}
	// And the one access token we read did cross, so the spy does see replies.
	found := false
	for _, m := range seen {
		if strings.Contains(m, cred.AccessToken) {
			found = true
		}
	}
	if !found {
		t.Fatal("the spy never saw the access token reply; it cannot prove anything")
	}
}

func checkBus(t *testing.T, seen []string, secrets map[string]string) {
	t.Helper()
	for what, s := range secrets {
		for _, m := range seen {
			if strings.Contains(m, s) {
				subj, _, _ := strings.Cut(m, " ")
				t.Errorf("a %s crossed NATS on %s", what, subj)
			}
		}
	}
}

// TestNoPlaintextAtRest reads every column of every table of the broker's
// schemas and fails if a refresh token, access token, id_token or client
// secret is stored in plaintext.
func TestNoPlaintextAtRest(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)
	if _, err := b.RegisterOIDC(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	for _, ws := range []string{"ws-1", "ws-2"} {
		if q, err := b.Connect(ctx, "acme", ws); err != nil || q.Get("status") != "active" {
			t.Fatalf("consent: %v %v", q, err)
		}
	}
	conn, err := pgx.Connect(ctx, b.Env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `select table_schema, table_name from information_schema.tables
		where table_schema in ('vault','admin') and table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var s, n string
		err := r.Scan(&s, &n)
		return pgx.Identifier{s, n}.Sanitize(), err
	})
	if err != nil || len(tables) < 3 {
		t.Fatalf("tables: %v %v", tables, err)
	}
	var dump strings.Builder
	for _, tbl := range tables {
		rows, err := conn.Query(ctx, "select to_jsonb(t)::text from "+tbl+" t")
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range texts {
			dump.WriteString(r + "\n")
		}
	}
	issued := b.Provider.Issued()
	all := dump.String()
	if !strings.Contains(all, "ws-2") {
		t.Fatal("the dump does not contain the connections; the scan reads nothing")
	}
	for what, list := range map[string][]string{"refresh token": issued.RefreshTokens, "access token": issued.AccessTokens, "id_token": issued.IDTokens, "client secret": {systemtest.ClientSecret}} {
		for _, s := range list {
			if strings.Contains(all, s) {
				t.Errorf("a %s is stored in plaintext", what)
			}
		}
	}
}

// TestCallbackAttacks covers what a hostile browser or provider can do to the
// callback.
func TestCallbackAttacks(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)
	prov, err := b.RegisterOIDC(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}

	// stopAtCallback runs the browser up to the provider's redirect to the
	// handshake callback, and returns that URL without following it.
	stopAtCallback := func(t *testing.T) (*http.Client, *url.URL, string) {
		t.Helper()
		begin, err := b.Begin(ctx, "acme", "ws-1")
		if err != nil {
			t.Fatal(err)
		}
		br := systemtest.NewBrowser()
		br.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.Path, messages.SharedCallbackPath) {
				return http.ErrUseLastResponse
			}
			return nil
		}
		resp, err := br.Get(begin.AuthURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || loc.Path != prov.CallbackPath {
			t.Fatalf("expected a redirect to the callback, got %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		br.CheckRedirect = nil
		return br, loc, begin.ConnectionID
	}
	get := func(t *testing.T, br *http.Client, u string) (*http.Response, string) {
		t.Helper()
		resp, err := br.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	status := func(t *testing.T, id string) messages.ConnectionStatus {
		var c messages.Connection
		if err := b.Gateway.Request(ctx, messages.SubjectConnectionsGet, messages.ConnectionRef{ConnectionID: id}, &c); err != nil {
			t.Fatal(err)
		}
		return c.Status
	}

	t.Run("replayed callback", func(t *testing.T) {
		br, cb, id := stopAtCallback(t)
		resp, _ := get(t, br, cb.String())
		if resp.Request.URL.Query().Get("status") != "active" {
			t.Fatalf("first callback should succeed, ended at %s", resp.Request.URL.Redacted())
		}
		tokens := b.Provider.TokenRequests()
		resp, body := get(t, br, cb.String())
		if resp.StatusCode != http.StatusBadRequest || resp.Request.URL.Path != prov.CallbackPath {
			t.Fatalf("replay: %d at %s, want a 400 page", resp.StatusCode, resp.Request.URL.Path)
		}
		if !strings.Contains(strings.ToLower(body), "<html") {
			t.Fatal("the error is not a page a person can read")
		}
		if b.Provider.TokenRequests() != tokens {
			t.Fatal("a replayed callback reached the token endpoint")
		}
		if status(t, id) != messages.StatusActive {
			t.Fatal("a replay must not harm the connection")
		}
	})

	t.Run("forged state", func(t *testing.T) {
		br, cb, _ := stopAtCallback(t)
		q := cb.Query()
		st := q.Get("state")
		// Flip one bit of the MAC itself and encode it canonically, so the
		// forgery is a different MAC, not another spelling of the genuine one.
		p, m, _ := strings.Cut(st, ".")
		mac, err := base64.RawURLEncoding.Strict().DecodeString(m)
		if err != nil || len(mac) != 32 {
			t.Fatalf("state %q has no 32-byte MAC (%v)", st, err)
		}
		mac[len(mac)-1] ^= 0x01
		forged := p + "." + base64.RawURLEncoding.EncodeToString(mac)
		if forged == st {
			t.Fatal("the forged state equals the genuine one")
		}
		q.Set("state", forged)
		cb.RawQuery = q.Encode()
		tokens := b.Provider.TokenRequests()
		resp, _ := get(t, br, cb.String())
		if resp.StatusCode != http.StatusBadRequest || b.Provider.TokenRequests() != tokens {
			t.Fatalf("forged state: %d, token requests %d -> %d", resp.StatusCode, tokens, b.Provider.TokenRequests())
		}
	})

	t.Run("issuer mix-up", func(t *testing.T) {
		br, cb, id := stopAtCallback(t)
		q := cb.Query()
		q.Set("iss", "https://evil.example.com")
		cb.RawQuery = q.Encode()
		tokens := b.Provider.TokenRequests()
		resp, _ := get(t, br, cb.String())
		rq := resp.Request.URL.Query()
		if rq.Get("status") != "failed" || rq.Get("error") != "issuer_mismatch" || rq.Get("connection_id") != id {
			t.Fatalf("iss mix-up landed at %s", resp.Request.URL.Redacted())
		}
		if b.Provider.TokenRequests() != tokens {
			t.Fatal("the code was redeemed despite the issuer mismatch")
		}
		if status(t, id) != messages.StatusFailed {
			t.Fatal("the connection should be failed")
		}
	})

	t.Run("callback from another browser", func(t *testing.T) {
		_, cb, _ := stopAtCallback(t)
		tokens := b.Provider.TokenRequests()
		resp, _ := get(t, systemtest.NewBrowser(), cb.String())
		if resp.StatusCode != http.StatusBadRequest || b.Provider.TokenRequests() != tokens {
			t.Fatalf("a callback without the flow's cookie: %d", resp.StatusCode)
		}
	})

	t.Run("user denies consent", func(t *testing.T) {
		b.Provider.DenyConsent(true)
		defer b.Provider.DenyConsent(false)
		q, err := b.Connect(ctx, "acme", "ws-1")
		if err != nil {
			t.Fatal(err)
		}
		if q.Get("status") != "failed" || q.Get("error") != "access_denied" || q.Get("connection_id") == "" {
			t.Fatalf("denied consent landed with %v", q)
		}
		if status(t, q.Get("connection_id")) != messages.StatusFailed {
			t.Fatal("the connection should be failed")
		}
	})

	t.Run("provider rejects the code", func(t *testing.T) {
		b.Provider.FailTokenRequests(1, http.StatusBadRequest, nil, `{"error":"invalid_grant","error_description":"code expired"}`)
		q, err := b.Connect(ctx, "acme", "ws-1")
		if err != nil {
			t.Fatal(err)
		}
		if q.Get("status") != "failed" || q.Get("error") == "" {
			t.Fatalf("token error landed with %v", q)
		}
		if status(t, q.Get("connection_id")) != messages.StatusFailed {
			t.Fatal("the connection should be failed")
		}
	})

	t.Run("bad id_token nonce", func(t *testing.T) {
		b.Provider.MutateNextIDToken(func(c map[string]any) { c["nonce"] = "attacker-nonce" })
		q, err := b.Connect(ctx, "acme", "ws-1")
		if err != nil {
			t.Fatal(err)
		}
		if q.Get("status") != "failed" {
			t.Fatalf("an id_token with the wrong nonce was accepted: %v", q)
		}
	})
}

func TestBeginValidation(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)
	if _, err := b.RegisterOIDC(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  messages.BeginRequest
		want error
	}{
		{"return_url outside the allowlist", messages.BeginRequest{Provider: "acme", WorkspaceID: "w", ReturnURL: "https://evil.example.com/return"}, messages.ErrInvalidRequest},
		{"return_url on a lookalike path", messages.BeginRequest{Provider: "acme", WorkspaceID: "w", ReturnURL: b.Agent.URL + "/returnx"}, messages.ErrInvalidRequest},
		{"no workspace", messages.BeginRequest{Provider: "acme", ReturnURL: b.Agent.URL + "/return"}, messages.ErrInvalidRequest},
		{"unknown provider", messages.BeginRequest{Provider: "nope", WorkspaceID: "w", ReturnURL: b.Agent.URL + "/return"}, messages.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out messages.BeginReply
			err := b.Gateway.Request(ctx, messages.SubjectHandshakeBegin, tc.req, &out)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	var list messages.ListConnectionsReply
	if err := b.Gateway.Request(ctx, messages.SubjectConnectionsList, messages.ListConnectionsRequest{}, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Connections) != 0 {
		t.Fatalf("rejected begins created connections: %+v", list.Connections)
	}
}

// TestUnknownIDsAndMalformedJSON sends bad input to every subject.
func TestUnknownIDsAndMalformedJSON(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)
	subjects := []string{
		messages.SubjectHandshakeBegin, messages.SubjectConnectionsGet, messages.SubjectConnectionsList,
		messages.SubjectConnectionsRevoke, messages.SubjectTokensGet, messages.SubjectTokensRefresh,
		messages.SubjectProvidersCreate, messages.SubjectProvidersGet, messages.SubjectProvidersList,
		messages.SubjectProvidersUpdate, messages.SubjectProvidersDelete,
	}
	for _, subj := range subjects {
		for _, body := range []string{`{"connection_id":`, `not json`, `[1,2]`, ``, `{"a":1} {"b":2}`, `{"connection_id":"x","no_such_field":1}`} {
			err := rawRequest(ctx, b, subj, body)
			// An empty body is {}: a list with no filter is a valid request.
			if body == "" && (subj == messages.SubjectConnectionsList || subj == messages.SubjectProvidersList) {
				if err != nil {
					t.Errorf("%s with an empty body: %v", subj, err)
				}
				continue
			}
			if !errors.Is(err, messages.ErrInvalidRequest) {
				t.Errorf("%s with %q: %v, want invalid_request", subj, body, err)
			}
		}
	}
	for _, subj := range []string{messages.SubjectConnectionsGet, messages.SubjectConnectionsRevoke, messages.SubjectTokensGet, messages.SubjectTokensRefresh} {
		for _, id := range []string{"0190b3c4-0000-7000-8000-000000000000", "not-a-uuid", strings.Repeat("x", 5000)} {
			err := b.Gateway.Request(ctx, subj, messages.ConnectionRef{ConnectionID: id}, nil)
			if !errors.Is(err, messages.ErrNotFound) && !errors.Is(err, messages.ErrInvalidRequest) {
				t.Errorf("%s with unknown id %.20q: %v, want not_found", subj, id, err)
			}
		}
	}
}

// TestAPIKeys: every request needs a valid key; both keys of a rotation work.
func TestAPIKeys(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)
	list := messages.ListConnectionsRequest{WorkspaceID: "w"}
	begin := messages.BeginRequest{Provider: "none", WorkspaceID: "w", ReturnURL: b.Agent.URL + "/return"}
	// On the Gateway's NATS user: its keys, both during a rotation, and no other.
	for _, tc := range []struct {
		name, key string
		want      error
	}{
		{"current key", gatewayKey, nil},
		{"previous key during rotation", rotatedKey, nil},
		{"an operator's key", b.OperatorKey, messages.ErrUnauthorized},
		{"wrong key", "gw-key-wrong-000000000000", messages.ErrUnauthorized},
		{"no key", "", messages.ErrUnauthorized},
		{"prefix of a key", gatewayKey[:10], messages.ErrUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &natsx.Client{NC: b.NC, Prefix: messages.DefaultPrefix, APIKey: tc.key}
			for subj, body := range map[string]any{messages.SubjectConnectionsList: list, messages.SubjectHandshakeBegin: begin} {
				err := c.Request(ctx, subj, body, nil)
				if tc.want == nil {
					if errors.Is(err, messages.ErrUnauthorized) || errors.Is(err, messages.ErrForbidden) {
						t.Errorf("%s: a valid key was refused: %v", subj, err)
					}
					continue
				}
				if !errors.Is(err, tc.want) {
					t.Errorf("%s: %v, want %v", subj, err, tc.want)
				}
			}
		})
	}
	// On the operator's NATS user, which may reach admin: the Gateway's key
	// opens nothing there; the operator's does.
	gw := &natsx.Client{NC: b.Operator.NC, Prefix: messages.DefaultPrefix, APIKey: gatewayKey}
	if err := gw.Request(ctx, messages.SubjectProvidersList, messages.ListProvidersRequest{}, nil); !errors.Is(err, messages.ErrUnauthorized) {
		t.Errorf("the Gateway's key on providers.list: %v, want unauthorized", err)
	}
	if err := b.Operator.Request(ctx, messages.SubjectProvidersList, messages.ListProvidersRequest{}, nil); err != nil {
		t.Errorf("the operator's key on providers.list: %v", err)
	}
	// The admin HTTP API takes the operators' keys as bearer tokens, and no other.
	for _, tc := range []struct {
		auth string
		want int
	}{{"Bearer " + b.OperatorKey, 200}, {"Bearer " + gatewayKey, 401}, {"Bearer " + rotatedKey, 401}, {"Bearer nope-nope-nope-nope", 401}, {"", 401}} {
		req, _ := http.NewRequest("GET", b.AdminURL+"/v1/providers", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("admin API with %.20q...: %d, want %d", tc.auth, resp.StatusCode, tc.want)
		}
	}
}

// rawRequest sends body as it is, malformed or not, as the Gateway (or, on
// admin's subjects, as an operator).
func rawRequest(ctx context.Context, b *systemtest.Broker, subject, body string) error {
	msg := nats.NewMsg(messages.Subject(messages.DefaultPrefix, subject))
	msg.Data = []byte(body)
	c := b.Gateway
	if strings.HasPrefix(subject, "v1.admin.") {
		c = b.Operator
	}
	msg.Header.Set(messages.HeaderAPIKey, c.APIKey)
	resp, err := c.NC.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return err
	}
	return natsx.DecodeReply(resp, nil)
}
