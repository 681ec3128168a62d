package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/handshake/internal/flow"
	"github.com/nexus-broker/nexus/services/handshake/internal/state"
)

// memFlows is a flow store in memory, for callbacks driven by hand.
type memFlows struct {
	mu sync.Mutex
	m  map[string]flow.Flow
}

func (s *memFlows) Get(_ context.Context, ref string) (flow.Flow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.m[ref]
	if !ok {
		return flow.Flow{}, flow.ErrNotFound
	}
	return f, nil
}
func (s *memFlows) Consume(_ context.Context, ref string) (flow.Flow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.m[ref]
	if !ok {
		return flow.Flow{}, flow.ErrNotFound
	}
	delete(s.m, ref)
	return f, nil
}
func (s *memFlows) Put(_ context.Context, id string, f flow.Flow, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[flow.Ref(id)] = f
	return nil
}

type okVault struct{ failRecorder }

func (v *okVault) Exchange(context.Context, messages.VaultExchange) (messages.Connection, error) {
	return messages.Connection{ConnectionID: "conn-1"}, nil
}

func setupFlow(t *testing.T, public string) (*Handler, *memFlows, string, *http.Cookie, *okVault) {
	key := []byte("0123456789abcdef0123456789abcdef")
	pu, _ := url.Parse(public)
	signer, binder := state.NewSigner(key), state.NewBinder(key)
	id := flow.NewID()
	ref := flow.Ref(id)
	fl := &memFlows{m: map[string]flow.Flow{ref: {
		ConnectionID: "conn-1", ProviderID: "p1", ReturnURL: "https://app.example.com/cb",
		RedirectURI: public + "/v1/callback/p1", ExpectedIssuer: "https://idp.example.com", IssRequired: true,
		Verifier: "v", ExpiresAt: time.Now().Add(time.Hour),
	}}}
	v := &okVault{}
	h, err := New(Deps{Flows: fl, Vault: v, Signer: signer, Binder: binder, PublicURL: pu})
	if err != nil {
		t.Fatal(err)
	}
	st := signer.Sign(ref, time.Now().Add(time.Hour))
	return h, fl, st, &http.Cookie{Name: binder.CookieName(ref), Value: binder.Value(ref)}, v
}

func call(h *Handler, path, q string, c *http.Cookie) *httptest.ResponseRecorder {
	mux := http.NewServeMux()
	h.Mount(mux)
	r := httptest.NewRequest(http.MethodGet, "https://hs.example.com"+path+"?"+q, nil)
	r.AddCookie(c)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	return w
}

// TestCallbackUnderAPrefixedPublicURL: PUBLIC_URL with a path, behind a
// proxy that strips it (the routes are served at the root, as the cookie
// path assumes): the provider's response to the flow's own callback path
// completes the consent.
func TestCallbackUnderAPrefixedPublicURL(t *testing.T) {
	h, _, st, c, _ := setupFlow(t, "https://hs.example.com/broker")
	w := call(h, "/v1/callback/p1", url.Values{"state": {st}, "code": {"x"}, "iss": {"https://idp.example.com"}}.Encode(), c)
	if !strings.Contains(w.Header().Get("Location"), "status=active") {
		t.Errorf("genuine callback under a prefixed PUBLIC_URL: HTTP %d %s", w.Code, w.Header().Get("Location"))
	}

	// Another provider's callback path under the prefix is still refused.
	h, _, st, c, _ = setupFlow(t, "https://hs.example.com/broker")
	w = call(h, "/v1/callback/p2", url.Values{"state": {st}, "code": {"x"}, "iss": {"https://idp.example.com"}}.Encode(), c)
	if !strings.Contains(w.Header().Get("Location"), "error=wrong_callback") {
		t.Errorf("another provider's callback path: HTTP %d %s", w.Code, w.Header().Get("Location"))
	}
}
