package adminapi

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/testkit"
)

const apiKey = "adminapi-test-key-0123456789"

func TestGetProvider(t *testing.T) {
	nc := testkit.Conn(t, testkit.NATS(t))
	c := &Client{NATS: &natsx.Client{NC: nc, Prefix: "hstest", APIKey: apiKey}}
	ctx := context.Background()
	if _, err := c.GetProvider(ctx, "acme"); !errors.Is(err, messages.ErrUnavailable) {
		t.Fatalf("no admin: err = %v, want unavailable", err)
	}

	acme := messages.Provider{ID: "prov-1", Name: "acme", Aliases: []string{"a"}, Type: messages.ProviderOIDC,
		Issuer: "https://idp.example.com", ClientID: "client", Scopes: []string{"email"}}
	svc, err := natsx.NewService(nc, natsx.ServiceConfig{Name: "admin", Version: "0.0.1", Prefix: "hstest", Callers: apikey.NewSet().Add(apikey.Handshake, []string{apiKey})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	err = natsx.Endpoint(svc, messages.SubjectProvidersGet, func(_ context.Context, ref messages.ProviderRef) (messages.Provider, error) {
		if ref.Provider != acme.Name && ref.Provider != acme.ID && ref.Provider != acme.Aliases[0] {
			return messages.Provider{}, messages.Errorf(messages.CodeNotFound, "no provider %q", ref.Provider)
		}
		return acme, nil
	}, natsx.For(apikey.Handshake))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		ref  string
		want error
	}{
		{"by name", "acme", nil},
		{"by id", "prov-1", nil},
		{"by alias", "a", nil},
		{"unknown", "nope", messages.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := c.GetProvider(ctx, tt.ref)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.want == nil && !reflect.DeepEqual(p, acme) {
				t.Fatalf("provider = %+v, want %+v", p, acme)
			}
		})
	}
}
