package vault_test

import (
	"sync"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// TestTwoFlightsOfOneReplicaPresentTheTokenOnce: on one replica, a forced
// refresh and tokens.get calls with min_valid_seconds the token does not
// meet arrive together: different flights (singleflight keys), which must
// wait for each other as two replicas' flights do (invariant 5).
func TestTwoFlightsOfOneReplicaPresentTheTokenOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	rt0 := e.storedRefreshToken(c.ConnectionID)
	e.op.Delay(300 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	wg.Add(3)
	go func() {
		defer wg.Done()
		errs[0] = e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, nil)
	}()
	go func() {
		defer wg.Done()
		time.Sleep(50 * time.Millisecond)
		_, errs[1] = e.token(c.ConnectionID, intp(3600))
	}()
	go func() {
		defer wg.Done()
		time.Sleep(100 * time.Millisecond)
		_, errs[2] = e.token(c.ConnectionID, intp(3599))
	}()
	wg.Wait()
	e.op.Delay(0)
	uses := e.op.RefreshTokenUses()[oidcprovider.TokenHash(rt0)]
	got := e.get(c.ConnectionID)
	t.Logf("errs=%v uses=%d grants=%d status=%s", errs, uses, e.op.RefreshGrants(), got.Status)
	if uses != 1 {
		t.Fatalf("refresh token presented %d times, want 1 (invariant 5)", uses)
	}
}

// TestTwoFlightsOfOneReplicaKeepTheRotatedToken: as above, with the
// provider answering the rotation later than it would refuse a reuse: had
// the second flight presented the token too, its refusal would be stored
// first (attention_required) and the rotated token thrown away.
func TestTwoFlightsOfOneReplicaKeepTheRotatedToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	e.op.Delay(300 * time.Millisecond)
	e.op.SlowSuccess(300 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		errs[0] = e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, nil)
	}()
	go func() {
		defer wg.Done()
		time.Sleep(50 * time.Millisecond)
		_, errs[1] = e.token(c.ConnectionID, intp(3600))
	}()
	wg.Wait()
	got := e.get(c.ConnectionID)
	t.Logf("errs=%v grants=%d status=%s", errs, e.op.RefreshGrants(), got.Status)
	if got.Status != messages.StatusActive {
		t.Fatalf("status %s after the provider rotated the refresh token successfully (errs %v)", got.Status, errs)
	}
}

// TestReconsentDuringARefreshKeepsTheRotatedToken: a re-consent whose token
// response carries no refresh token keeps the stored one, which a refresh
// in flight at that moment has just rotated at the provider: the refresh's
// result must replace it although the token version moved, or the
// connection is left with a dead refresh token.
func TestReconsentDuringARefreshKeepsTheRotatedToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	e.op.SlowSuccess(700 * time.Millisecond)
	done := make(chan error, 1)
	go func() {
		done <- e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, nil)
	}()
	time.Sleep(200 * time.Millisecond) // the provider has rotated; its answer is on the way
	var reopened messages.Connection
	e.mustCall(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ConnectionID: c.ConnectionID, ProviderID: providerID,
		WorkspaceID: workspace, Scopes: []string{"openid", "offline_access", "profile"}}, &reopened)
	a := e.authorize([]string{"openid", "offline_access", "profile"})
	e.op.RewriteNextTokenResponse(func(b map[string]any) { delete(b, "refresh_token") })
	if _, err := e.exchange(c.ConnectionID, a); err != nil {
		t.Fatal(err)
	}
	t.Logf("in-flight refresh: %v", <-done)
	e.op.SlowSuccess(0)
	if err := e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, nil); err != nil {
		t.Fatalf("refresh after the re-consent: %v (status %s)", err, e.get(c.ConnectionID).Status)
	}
}
