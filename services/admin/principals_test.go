package admin_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// TestPrincipals: admin serves operators; the handshake may only read a
// provider; nobody else's key opens anything, on NATS or HTTP.
func TestPrincipals(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.create(oauth2Provider("github", "s"))
	as := func(key string) *natsx.Client {
		return &natsx.Client{NC: e.nc, Prefix: messages.DefaultPrefix, APIKey: key}
	}
	call := func(c *natsx.Client, subject string, body any) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return c.Request(ctx, subject, body, nil)
	}
	// The handshake reads providers, and nothing else.
	if err := call(as(handshakeKey), messages.SubjectProvidersGet, messages.ProviderRef{Provider: "github"}); err != nil {
		t.Fatalf("the handshake cannot read a provider: %v", err)
	}
	for _, subject := range []string{messages.SubjectProvidersCreate, messages.SubjectProvidersList, messages.SubjectProvidersUpdate, messages.SubjectProvidersDelete} {
		if err := call(as(handshakeKey), subject, map[string]any{"provider": "github"}); !errors.Is(err, messages.ErrForbidden) {
			t.Errorf("the handshake on %s: %v, want forbidden", subject, err)
		}
	}
	// Admin's own service key and a Gateway key are no operator's.
	for _, key := range []string{adminKey, "a-gateway-key-0123456789"} {
		if err := call(as(key), messages.SubjectProvidersList, map[string]any{}); !errors.Is(err, messages.ErrUnauthorized) {
			t.Errorf("key %.8s... on providers.list: %v, want unauthorized", key, err)
		}
	}
	// HTTP: the handshake's key is known but not an operator's.
	if status, body := e.do(http.MethodGet, "/v1/providers", "", "Bearer "+handshakeKey, nil); status != http.StatusForbidden {
		t.Errorf("the handshake's key on the HTTP API: %d %s", status, body)
	}
	if status, _ := e.do(http.MethodGet, "/v1/providers", "", "Bearer a-gateway-key-0123456789", nil); status != http.StatusUnauthorized {
		t.Errorf("a Gateway key on the HTTP API: %d", status)
	}
	var p messages.Provider
	if err := e.request(messages.SubjectProvidersGet, messages.ProviderRef{Provider: "github"}, &p); err != nil || p.Name != "github" {
		t.Fatalf("refused requests changed the provider: %v", err)
	}
}
