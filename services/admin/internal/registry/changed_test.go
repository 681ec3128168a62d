package registry

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/nexus-broker/nexus/messages"
)

func TestChanged(t *testing.T) {
	base := messages.Provider{
		ID: "prv_1", Name: "github", Type: messages.ProviderOAuth2, ClientID: "abc", Scopes: []string{"repo"},
		AuthorizationEndpoint: "https://a.example/authorize", TokenEndpoint: "https://a.example/token",
		CredentialSchema: json.RawMessage(`{"type": "object"}`), ClientSecretSet: true,
	}
	with := func(f func(*messages.Provider)) messages.Provider {
		p := base
		p.Scopes = slices.Clone(base.Scopes)
		f(&p)
		return p
	}
	for _, tc := range []struct {
		name          string
		before, after messages.Provider
		newSecret     bool
		want          []string
	}{
		{"create", messages.Provider{}, base, true,
			[]string{"name", "type", "authorization_endpoint", "token_endpoint", "client_id", "scopes", "credential_schema", "client_secret"}},
		{"nothing", base, base, false, []string{}},
		{"the secret alone", base, base, true, []string{"client_secret"}},
		{"scopes and aliases", base, with(func(p *messages.Provider) { p.Scopes = append(p.Scopes, "user"); p.Aliases = []string{"gh"} }), false,
			[]string{"aliases", "scopes"}},
		{"absent and empty are the same", base, with(func(p *messages.Provider) { p.Aliases = []string{}; p.AuthorizationParams = map[string]string{} }), false, []string{}},
		{"the schema's spacing is no change", base, with(func(p *messages.Provider) { p.CredentialSchema = json.RawMessage(`{"type":"object"}`) }), false, []string{}},
		{"the broker's fields are not the operator's", base, with(func(p *messages.Provider) { p.ClientSecretSet = false; p.ID = "prv_2" }), false, []string{}},
		{"removed", base, with(func(p *messages.Provider) { p.TokenEndpoint = "" }), false, []string{"token_endpoint"}},
	} {
		if got := changed(tc.before, tc.after, tc.newSecret); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
