package vault_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

func TestTokensGetNeverReturnsSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	rt := e.storedRefreshToken(c.ConnectionID)
	for _, minValid := range []*int{nil, intp(0), intp(3600)} { // the last one refreshes
		cred, err := e.token(c.ConnectionID, minValid)
		if err != nil {
			t.Fatal(err)
		}
		body := mustJSON(t, cred)
		for _, s := range []string{rt, e.storedRefreshToken(c.ConnectionID), secret, "id_token", "refresh_token"} {
			if strings.Contains(body, s) {
				t.Fatalf("tokens.get reply contains %q: %s", s, body)
			}
		}
		if cred.AuthType != messages.AuthOAuth2 || cred.Strategy.Type != messages.StrategyOAuth2 || cred.Strategy.Config == nil ||
			cred.Credentials == nil || cred.Provider != "test-provider" || cred.ConnectionID != c.ConnectionID || cred.TokenType != "Bearer" {
			t.Fatalf("credential = %s", body)
		}
		if !strings.Contains(body, `"credentials":{}`) || !strings.Contains(body, `"config":{}`) {
			t.Fatalf("credential = %s", body)
		}
	}
}

func TestTokensGetRefreshesShortLivedTokenAndPersistsRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{provider: oidcprovider.Options{AccessTokenLifespan: 30 * time.Second}})
	c := e.connect(workspace)
	rt0 := e.storedRefreshToken(c.ConnectionID)
	first, err := e.token(c.ConnectionID, intp(0))
	if err != nil {
		t.Fatal(err)
	}
	if e.op.RefreshGrants() != 0 {
		t.Fatal("min_valid_seconds 0 refreshed a valid token")
	}
	// Default min_valid_seconds (60) > lifetime (30s): refresh first.
	second, err := e.token(c.ConnectionID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.op.RefreshGrants() != 1 || second.AccessToken == first.AccessToken {
		t.Fatalf("refresh grants = %d, token changed = %v", e.op.RefreshGrants(), second.AccessToken != first.AccessToken)
	}
	rt1 := e.storedRefreshToken(c.ConnectionID)
	if rt1 == rt0 || rt1 == "" {
		t.Fatal("rotated refresh token not persisted")
	}
	if uses := e.op.RefreshTokenUses(); uses[oidcprovider.TokenHash(rt0)] != 1 || uses[oidcprovider.TokenHash(rt1)] != 0 {
		t.Fatalf("refresh token uses = %v", uses)
	}
	got := e.get(c.ConnectionID)
	if got.LastRefreshedAt == nil || got.Status != messages.StatusActive {
		t.Fatalf("after refresh: %+v", got)
	}
	// Asking again for more than a fresh token gives does not refresh again
	// at once: the token just refreshed is as good as it gets.
	third, err := e.token(c.ConnectionID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.op.RefreshGrants() != 1 || third.AccessToken != second.AccessToken {
		t.Fatalf("a second request right after a refresh refreshed again (grants %d)", e.op.RefreshGrants())
	}
	// The rotated token works: fosite would answer invalid_grant to rt0.
	var forced messages.Credential
	e.mustCall(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, &forced)
	if e.op.RefreshGrants() != 2 || forced.AccessToken == second.AccessToken {
		t.Fatalf("forced refresh with the rotated token: grants %d", e.op.RefreshGrants())
	}
	if got := eventTypes(e.events(c.ConnectionID)); !slices.Equal(got, []string{"created", "active", "refreshed", "refreshed"}) {
		t.Fatalf("events = %v", got)
	}
}

func TestRefreshWithoutNewRefreshTokenKeepsTheOldOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	rt0 := e.storedRefreshToken(c.ConnectionID)
	e.op.OmitRefreshTokenOnRefresh(true)
	for range 2 {
		var cred messages.Credential
		e.mustCall(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, &cred)
		if rt := e.storedRefreshToken(c.ConnectionID); rt != rt0 {
			t.Fatal("refresh token changed although the provider sent none")
		}
	}
	if uses := e.op.RefreshTokenUses()[oidcprovider.TokenHash(rt0)]; uses != 2 {
		t.Fatalf("old refresh token used %d times, want 2", uses)
	}
}

func TestConcurrentRefreshCallsTheProviderOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.start(e.key) // a second replica on the same database and NATS
	c := e.connect(workspace)
	e.op.Delay(300 * time.Millisecond)
	const n = 24
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		tokens = map[string]int{}
		errs   []error
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cred messages.Credential
			err := e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, &cred)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			tokens[cred.AccessToken]++
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	if g := e.op.RefreshGrants(); g != 1 || len(tokens) != 1 {
		t.Fatalf("provider refresh grants = %d, distinct tokens = %d; want 1 and 1", g, len(tokens))
	}
	if got := e.get(c.ConnectionID); got.Status != messages.StatusActive {
		t.Fatalf("status = %s", got.Status)
	}
	if per := e.requestsPerReplica(messages.SubjectTokensRefresh); len(per) != 2 || per[0] == 0 || per[1] == 0 {
		t.Fatalf("tokens.refresh requests per replica = %v; the test needs both replicas to take part", per)
	}
}

func TestInvalidGrantNeedsAttentionThenRecovers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	if _, err := e.token(c.ConnectionID, intp(0)); err != nil { // cached now
		t.Fatal(err)
	}
	e.op.RevokeAllGrants()
	var cred messages.Credential
	err := e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, &cred)
	wantCode(t, err, messages.ErrAttentionRequired)
	if !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("error %q does not say why", err)
	}
	got := e.get(c.ConnectionID)
	if got.Status != messages.StatusAttentionRequired || got.Attention == nil || got.Attention.Code != "invalid_grant" || got.Attention.Since.IsZero() {
		t.Fatalf("after invalid_grant: %+v", got)
	}
	// Served from neither the cache nor the database any more.
	_, err = e.token(c.ConnectionID, intp(0))
	wantCode(t, err, messages.ErrAttentionRequired)

	// Transient failures change nothing.
	c2 := e.connect(workspace)
	e.op.FailTokenRequests(1, 503, nil, "")
	err = e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c2.ConnectionID}, &cred)
	wantCode(t, err, messages.ErrUnavailable)
	e.backoffPassed(c2.ConnectionID)
	e.op.FailTokenRequests(1, 429, map[string][]string{"Retry-After": {"5"}}, `{"error":"slow_down"}`)
	err = e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c2.ConnectionID}, &cred)
	wantCode(t, err, messages.ErrUnavailable)
	e.backoffPassed(c2.ConnectionID)
	e.op.FailTokenRequests(1, 401, nil, `{"error":"invalid_client"}`)
	err = e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c2.ConnectionID}, &cred)
	wantCode(t, err, messages.ErrProviderError)
	if got := e.get(c2.ConnectionID); got.Status != messages.StatusActive {
		t.Fatalf("transient failure changed status to %s", got.Status)
	}

	// Re-consent under the same id: active again, event recovered.
	var reopened messages.Connection
	e.mustCall(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ConnectionID: c.ConnectionID, ProviderID: providerID, WorkspaceID: workspace,
		Scopes: []string{"openid", "offline_access"}}, &reopened)
	if reopened.ConnectionID != c.ConnectionID || reopened.Status != messages.StatusAttentionRequired {
		t.Fatalf("reopened = %+v", reopened)
	}
	a := e.authorize([]string{"openid", "offline_access"})
	recovered, err := e.exchange(c.ConnectionID, a)
	if err != nil {
		t.Fatal(err)
	}
	if recovered.Status != messages.StatusActive || recovered.Attention != nil {
		t.Fatalf("recovered = %+v", recovered)
	}
	if _, err := e.token(c.ConnectionID, nil); err != nil {
		t.Fatal(err)
	}
	if got := eventTypes(e.events(c.ConnectionID)); !slices.Equal(got, []string{"created", "active", "attention_required", "recovered"}) {
		t.Fatalf("events = %v", got)
	}
}

func TestRevokeWipesSecretsAndStopsServing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.start(e.key) // a second replica: its cache must drop the token too
	c := e.connect(workspace)
	rt := e.storedRefreshToken(c.ConnectionID)
	for range 10 { // warm both replicas' caches
		if _, err := e.token(c.ConnectionID, intp(0)); err != nil {
			t.Fatal(err)
		}
	}
	var revoked messages.Connection
	e.mustCall(messages.SubjectConnectionsRevoke, messages.ConnectionRef{ConnectionID: c.ConnectionID}, &revoked)
	if revoked.Status != messages.StatusRevoked {
		t.Fatalf("revoked = %+v", revoked)
	}
	// Stops being served at once, on every replica.
	deadline := time.Now().Add(time.Second)
	for i := 0; i < 20; i++ {
		_, err := e.token(c.ConnectionID, intp(0))
		if err == nil {
			if time.Now().After(deadline) {
				t.Fatal("revoked connection still served after one second")
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		wantCode(t, err, messages.ErrNotActive)
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), "select count(*) from vault.connections where id = $1 and access_token is null and refresh_token is null", c.ConnectionID).Scan(&n); err != nil || n != 1 {
		t.Fatalf("sealed columns not wiped: %s", e.rawRow(c.ConnectionID))
	}
	if revs := e.op.Revocations(); !slices.Contains(revs, oidcprovider.TokenHash(rt)) {
		t.Fatalf("provider revocations = %v, want the refresh token", revs)
	}
	// Idempotent: revoking again returns it unchanged, no second event.
	var again messages.Connection
	e.mustCall(messages.SubjectConnectionsRevoke, messages.ConnectionRef{ConnectionID: c.ConnectionID}, &again)
	if again.Status != messages.StatusRevoked || !again.UpdatedAt.Equal(revoked.UpdatedAt) {
		t.Fatalf("second revoke = %+v", again)
	}
	if got := eventTypes(e.events(c.ConnectionID)); !slices.Equal(got, []string{"created", "active", "revoked"}) {
		t.Fatalf("events = %v", got)
	}
	var cred messages.Credential
	wantCode(t, e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, &cred), messages.ErrNotActive)

	// A provider whose revocation endpoint fails: revoked locally anyway.
	c2 := e.connect(workspace)
	e.putClient(messages.VaultClient{ProviderID: providerID, ProviderName: "test-provider", Type: messages.ProviderOIDC, ClientID: clientID,
		Issuer: e.op.Issuer(), TokenEndpoint: e.op.Issuer() + "/token", RevocationEndpoint: e.op.Issuer() + "/no-such-endpoint", JWKSURI: e.op.Issuer() + "/jwks"})
	e.mustCall(messages.SubjectConnectionsRevoke, messages.ConnectionRef{ConnectionID: c2.ConnectionID}, &revoked)
	if revoked.Status != messages.StatusRevoked {
		t.Fatalf("revoke with a failing provider: %+v", revoked)
	}
}

func TestTokensGetStatusRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	pending := e.create(workspace)
	failed := e.create(workspace)
	var f messages.Connection
	e.mustCall(messages.SubjectVaultConnectionsFail, messages.VaultFailConnection{ConnectionID: failed.ConnectionID, Reason: messages.Reason{Code: "access_denied", Message: "The user said no."}}, &f)
	if f.Status != messages.StatusFailed {
		t.Fatalf("fail: %+v", f)
	}
	for name, id := range map[string]string{"pending": pending.ConnectionID, "failed": failed.ConnectionID} {
		_, err := e.token(id, nil)
		if err == nil {
			t.Fatalf("%s connection served", name)
		}
		wantCode(t, err, messages.ErrNotActive)
	}
	for _, v := range []int{-1, 3601, 1 << 30} {
		_, err := e.token(pending.ConnectionID, intp(v))
		wantCode(t, err, messages.ErrInvalidRequest)
	}
}
