package system_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/testkit"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// TestEgressRegistrationRefused: an operator (or whoever holds an operator
// key) registers providers aimed at an internal service, here 127.0.0.2,
// which the broker's PROVIDER_PRIVATE_NETWORKS (127.0.0.1/32) does not
// open, and at the cloud metadata endpoint. Every registration is refused,
// naming the host and the variable, and nothing reaches the listeners: no
// client secret, no discovery request.
func TestEgressRegistrationRefused(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)

	internal, conns := testkit.HTTPServer(t, testkit.InternalHost+":0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	// A real OpenID provider at the internal address.
	op, err := oidcprovider.New(oidcprovider.Options{Addr: "127.0.0.2:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Close)

	const refused = "127.0.0.2 is a loopback address; add its network to PROVIDER_PRIVATE_NETWORKS to allow it"
	for _, tc := range []struct {
		name string
		p    messages.Provider
		want string
	}{
		{"token endpoint", messages.Provider{Name: "internal-token", Type: messages.ProviderOAuth2, ClientID: "c", ClientSecret: "s3cret",
			AuthorizationEndpoint: "https://idp.example.com/authorize", TokenEndpoint: internal.URL + "/token"}, "token_endpoint: " + refused},
		{"revocation endpoint over https", messages.Provider{Name: "internal-revoke", Type: messages.ProviderOAuth2, ClientID: "c", ClientSecret: "s3cret",
			AuthorizationEndpoint: "https://idp.example.com/authorize", TokenEndpoint: "https://idp.example.com/token",
			RevocationEndpoint: "https://" + strings.TrimPrefix(internal.URL, "http://") + "/revoke"}, "revocation_endpoint: " + refused},
		{"oidc issuer", messages.Provider{Name: "internal-oidc", Type: messages.ProviderOIDC, ClientID: "c", ClientSecret: "s3cret",
			Issuer: op.Issuer()}, "issuer: " + refused},
		{"verification", messages.Provider{Name: "internal-static", Type: messages.ProviderStatic,
			CredentialSchema: []byte(`{"type":"object","required":["api_key"],"properties":{"api_key":{"type":"string","writeOnly":true}}}`),
			Strategy:         &messages.Strategy{Type: messages.StrategyHeader, Config: map[string]any{"header": "X-Api-Key"}},
			Verification:     &messages.Verification{URL: internal.URL + "/v1/me"}}, "verification.url: " + refused},
		{"metadata", messages.Provider{Name: "metadata", Type: messages.ProviderOAuth2, ClientID: "c", ClientSecret: "s3cret",
			AuthorizationEndpoint: "https://idp.example.com/authorize",
			TokenEndpoint:         "http://169.254.169.254/latest/meta-data/iam/security-credentials/"},
			"token_endpoint: 169.254.169.254 is a cloud metadata address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := b.Operator.Request(ctx, messages.SubjectProvidersCreate, tc.p, nil)
			if !errors.Is(err, messages.ErrInvalidRequest) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want invalid_request saying %q", err, tc.want)
			}
		})
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("the internal listener saw %d connection(s)", n)
	}
	if n := op.Connections(); n != 0 {
		t.Errorf("the internal provider saw %d connection(s)", n)
	}
}
