package vault_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// TestSlowProviderCostsOnlyItself: while one provider hangs under many
// refreshes (more than the vault's database pool has connections), token
// reads of another provider's connections that are not cached keep
// answering, because no refresh holds a transaction or a pool connection
// while its provider answers.
func TestSlowProviderCostsOnlyItself(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	// The other provider: healthy.
	other, err := oidcprovider.New(oidcprovider.Options{AlwaysIssueRefreshToken: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	if err := other.AddClient(oidcprovider.Client{ID: clientID, Secret: secret, RedirectURIs: []string{redirectURI}}); err != nil {
		t.Fatal(err)
	}
	e.putClient(messages.VaultClient{ProviderID: "prov-healthy", ProviderName: "healthy", Type: messages.ProviderOIDC,
		ClientID: clientID, ClientSecret: secret, Issuer: other.Issuer(), TokenEndpoint: other.Issuer() + "/token", JWKSURI: other.Issuer() + "/jwks"})
	var healthy []string
	for range 20 {
		var c messages.Connection
		e.mustCall(messages.SubjectVaultConnectionsCreate, messages.VaultCreateConnection{ProviderID: "prov-healthy", WorkspaceID: workspace, Scopes: []string{"openid", "offline_access"}}, &c)
		consent, err := other.Consent(clientID, redirectURI, c.Scopes)
		if err != nil {
			t.Fatal(err)
		}
		e.mustCall(messages.SubjectVaultExchange, messages.VaultExchange{ConnectionID: c.ConnectionID, Code: consent.Code, CodeVerifier: consent.Verifier, RedirectURI: redirectURI, Nonce: consent.Nonce}, nil)
		healthy = append(healthy, c.ConnectionID)
	}
	var slow []string
	for range 40 {
		slow = append(slow, e.connect(workspace).ConnectionID)
	}

	// The slow provider answers nothing for longer than a provider call may take.
	e.op.Delay(time.Minute)
	var (
		wg       sync.WaitGroup
		returned atomic.Int32
	)
	for _, id := range slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := e.call(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: id}, nil)
			returned.Add(1)
			if !errors.Is(err, messages.ErrUnavailable) {
				t.Errorf("a refresh against a hanging provider: %v, want unavailable", err)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // let them all be in flight
	for _, id := range healthy {
		start := time.Now()
		if _, err := e.token(id, nil); err != nil {
			t.Fatalf("a read of another provider's connection failed while one provider hangs: %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("a read of another provider's connection took %s while one provider hangs", d)
		}
	}
	if n := returned.Load(); n != 0 {
		t.Fatalf("%d refreshes of the hanging provider returned before the reads were done; the test proved nothing", n)
	}
	wg.Wait()
	e.op.Delay(0)
}
