package begin

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nexus-broker/nexus/messages"
)

func TestCheckRequest(t *testing.T) {
	ok := messages.BeginRequest{Provider: "p", WorkspaceID: "w", ReturnURL: "https://app.example.com/cb", Scopes: []string{"email", "https://www.googleapis.com/auth/drive"}}
	if err := checkRequest(&ok); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*messages.BeginRequest){
		"longest scope": func(r *messages.BeginRequest) { r.Scopes = []string{strings.Repeat("s", messages.MaxScopeLen)} },
		"most scopes":   func(r *messages.BeginRequest) { r.Scopes = slices.Repeat([]string{"email"}, messages.MaxScopes) },
	} {
		r := ok
		mutate(&r)
		if err := checkRequest(&r); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, mutate := range map[string]func(*messages.BeginRequest){
		"no provider":   func(r *messages.BeginRequest) { r.Provider = "" },
		"no workspace":  func(r *messages.BeginRequest) { r.WorkspaceID = "" },
		"no return_url": func(r *messages.BeginRequest) { r.ReturnURL = "" },
		"space scope":   func(r *messages.BeginRequest) { r.Scopes = []string{"a b"} },
		"quote scope":   func(r *messages.BeginRequest) { r.Scopes = []string{`a"`} },
		"empty scope":   func(r *messages.BeginRequest) { r.Scopes = []string{""} },
		"many scopes":   func(r *messages.BeginRequest) { r.Scopes = make([]string, 101) },
		"too many scopes": func(r *messages.BeginRequest) {
			r.Scopes = slices.Repeat([]string{"email"}, messages.MaxScopes+1)
		},
		"long scope": func(r *messages.BeginRequest) {
			r.Scopes = []string{strings.Repeat("s", messages.MaxScopeLen+1)}
		},
		"control char scope": func(r *messages.BeginRequest) { r.Scopes = []string{"a\x7f"} },
		"backslash scope":    func(r *messages.BeginRequest) { r.Scopes = []string{`a\b`} },
		"huge metadata": func(r *messages.BeginRequest) {
			r.Metadata = map[string]any{"blob": strings.Repeat("x", messages.MaxMetadataBytes)}
		},
	} {
		r := ok
		mutate(&r)
		if err := checkRequest(&r); !errors.Is(err, messages.ErrInvalidRequest) {
			t.Errorf("%s: err = %v, want invalid_request", name, err)
		}
	}
}

func TestScopes(t *testing.T) {
	oidc := &messages.Provider{Type: messages.ProviderOIDC, Scopes: []string{"email", "profile"}}
	plain := &messages.Provider{Type: messages.ProviderOAuth2, Scopes: []string{"repo"}}
	tests := []struct {
		name string
		req  []string
		p    *messages.Provider
		want []string
	}{
		{"oidc defaults", nil, oidc, []string{"openid", "email", "profile"}},
		{"oidc requested", []string{"email", "openid", "email"}, oidc, []string{"openid", "email"}},
		{"oauth2 defaults", nil, plain, []string{"repo"}},
		{"oauth2 requested", []string{"user"}, plain, []string{"user"}},
	}
	for _, tt := range tests {
		if got := scopes(tt.req, tt.p); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestAuthParamsDropsReserved(t *testing.T) {
	got := authParams(map[string]string{"access_type": "offline", "prompt": "consent", "state": "x", "redirect_uri": "https://evil", "code_challenge_method": "plain"})
	if len(got) != 2 || got["access_type"] != "offline" || got["prompt"] != "consent" {
		t.Fatalf("authParams = %v", got)
	}
}
