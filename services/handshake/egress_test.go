package handshake_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/testkit"
)

// TestBeginRefusesWhatTheGuardRefuses: a consent for a provider whose
// issuer (fetched for discovery) or authorization endpoint is at a refused
// address does not start, and the issuer is never contacted. The handshake
// under test opens 127.0.0.1/32; 127.0.0.2 plays the internal service.
func TestBeginRefusesWhatTheGuardRefuses(t *testing.T) {
	e := newEnv(t)
	internal, conns := testkit.HTTPServer(t, testkit.InternalHost+":0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NotFound(w, r)
	}))

	e.fakes.mu.Lock()
	e.fakes.providers["internal-oidc"] = messages.Provider{ID: "prov-internal-oidc", Name: "internal-oidc", Type: messages.ProviderOIDC,
		Issuer: internal.URL, ClientID: clientID}
	e.fakes.providers["internal-oauth2"] = messages.Provider{ID: "prov-internal-oauth2", Name: "internal-oauth2", Type: messages.ProviderOAuth2,
		AuthorizationEndpoint: internal.URL + "/authorize", ClientID: clientID}
	e.fakes.mu.Unlock()

	for name, want := range map[string]*messages.Error{"internal-oidc": messages.ErrProviderError, "internal-oauth2": messages.ErrInternal} {
		_, err := e.begin(messages.BeginRequest{Provider: name, WorkspaceID: "ws-1", ReturnURL: returnURL})
		if !errors.Is(err, want) {
			t.Errorf("%s: err = %v, want %s", name, err, want.Code)
		}
	}
	if _, creates, _ := e.fakes.counts(); creates != 0 {
		t.Errorf("%d connection(s) opened for refused providers", creates)
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("the refused issuer saw %d connection(s)", n)
	}
}
