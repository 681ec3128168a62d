package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/nexus-broker/nexus/messages"
)

// Every admin route that reads a body reads at most 1 MiB of it: a larger
// create or update is refused, naming the cap, and changes nothing; without
// a key, nothing is read at all.
func TestBodyCaps(t *testing.T) {
	e := setup(t)
	p := e.create(oauth2Provider("capped", "capped-client-secret-0123"))
	big := []byte(`{"scopes":["` + strings.Repeat("a", 1<<20) + `"]}`)
	for _, tc := range []struct{ method, path string }{
		{http.MethodPost, "/v1/providers"},
		{http.MethodPatch, "/v1/providers/" + p.ID},
	} {
		status, body := e.api(tc.method, tc.path, big)
		if status != http.StatusBadRequest || !strings.Contains(string(body), "larger than 1 MiB") {
			t.Errorf("%s %s with 1 MiB: %d %.200s", tc.method, tc.path, status, body)
		}
	}
	if providers, _ := e.count(); providers != 1 {
		t.Fatalf("%d providers after refused bodies, want 1", providers)
	}
	var got messages.Provider
	if err := e.request(messages.SubjectProvidersGet, messages.ProviderRef{Provider: p.ID}, &got); err != nil || !got.UpdatedAt.Equal(p.UpdatedAt) {
		t.Fatalf("the provider changed under a refused patch: %v, %v", got.UpdatedAt, err)
	}
	if status, _ := e.do(http.MethodPost, "/v1/providers", "application/json", "", big); status != http.StatusUnauthorized {
		t.Errorf("unauthenticated 1 MiB POST: %d", status)
	}
}
