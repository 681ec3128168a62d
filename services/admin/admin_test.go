package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/admin"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

func TestCreateOIDCByIssuerAlone(t *testing.T) {
	t.Parallel()
	e := setup(t)
	got := e.create(e.oidcProvider("acme", "s3cret-acme", "acme-sso"))
	iss := e.oidc.Issuer()
	want := map[string]string{
		"authorization_endpoint": iss + "/authorize", "token_endpoint": iss + "/token",
		"revocation_endpoint": iss + "/revoke", "jwks_uri": iss + "/jwks",
	}
	have := map[string]string{
		"authorization_endpoint": got.AuthorizationEndpoint, "token_endpoint": got.TokenEndpoint,
		"revocation_endpoint": got.RevocationEndpoint, "jwks_uri": got.JWKSURI,
	}
	for k, v := range want {
		if have[k] != v {
			t.Errorf("%s = %q, want %q", k, have[k], v)
		}
	}
	if !strings.HasPrefix(got.ID, "prv_") || got.ClientSecret != "" || !got.ClientSecretSet ||
		got.ClientAuthMethod != messages.ClientSecretBasic || got.CreatedAt.IsZero() || !slices.Equal(got.Aliases, []string{"acme-sso"}) {
		t.Errorf("created provider: %+v", got)
	}
	vc := e.vault.lastPut(t)
	if vc.ProviderID != got.ID || vc.ProviderName != "acme" || vc.ClientSecret != "s3cret-acme" || vc.TokenEndpoint != iss+"/token" ||
		vc.Issuer != iss || vc.JWKSURI != iss+"/jwks" || vc.RevocationEndpoint != iss+"/revoke" || vc.ClientAuthMethod != messages.ClientSecretBasic {
		t.Errorf("vault received %+v", vc)
	}
}

func TestCreateOAuth2ExplicitEndpointsAndStatic(t *testing.T) {
	t.Parallel()
	e := setup(t)
	p := oauth2Provider("github", "gh-secret")
	p.ClientAuthMethod = messages.ClientSecretPost
	p.RevocationEndpoint = "https://auth.example.com/revoke"
	p.DefaultTokenLifetimeSeconds = 900
	got := e.create(p)
	if vc := e.vault.lastPut(t); got.DefaultTokenLifetimeSeconds != 900 || vc.DefaultTokenLifetimeSeconds != 900 {
		t.Errorf("default token lifetime: stored %d, sent to the vault %d, want 900", got.DefaultTokenLifetimeSeconds, vc.DefaultTokenLifetimeSeconds)
	}
	if got.TokenEndpoint != p.TokenEndpoint || got.AuthorizationEndpoint != p.AuthorizationEndpoint || got.RevocationEndpoint != p.RevocationEndpoint ||
		got.ClientAuthMethod != messages.ClientSecretPost || got.AuthorizationParams["prompt"] != "consent" || !got.ClientSecretSet {
		t.Errorf("oauth2: %+v", got)
	}
	s := e.create(staticProvider("openai"))
	if s.ClientSecretSet || s.Strategy == nil || s.Strategy.Type != messages.StrategyHeader || len(s.CredentialSchema) == 0 {
		t.Errorf("static: %+v", s)
	}
	if vc := e.vault.lastPut(t); vc.Type != messages.ProviderStatic || vc.Strategy == nil || vc.ClientSecret != "" {
		t.Errorf("vault received %+v", vc)
	}
}

// An explicit endpoint overrides the discovered one.
func TestCreateOIDCExplicitEndpointOverrides(t *testing.T) {
	t.Parallel()
	e := setup(t)
	p := e.oidcProvider("acme", "x")
	p.TokenEndpoint = "https://proxy.example.com/token"
	got := e.create(p)
	if got.TokenEndpoint != "https://proxy.example.com/token" || got.AuthorizationEndpoint != e.oidc.Issuer()+"/authorize" {
		t.Errorf("got %+v", got)
	}
}

func TestCreateInvalid(t *testing.T) {
	t.Parallel()
	e := setup(t)
	mismatch := strings.Replace(e.oidc.Issuer(), "127.0.0.1", "localhost", 1)
	tests := []struct {
		name string
		p    messages.Provider
		want []string // substrings of the error message
	}{
		{"discovery issuer mismatch", messages.Provider{Name: "a", Type: "oidc", Issuer: mismatch, ClientID: "c", ClientSecret: "s"},
			[]string{"issuer: discovery at " + mismatch + "/.well-known/openid-configuration failed", "is not the configured issuer"}},
		{"discovery unreachable", messages.Provider{Name: "a", Type: "oidc", Issuer: "http://127.0.0.1:1", ClientID: "c", ClientSecret: "s"},
			[]string{"issuer: discovery", "could not fetch"}},
		{"missing fields listed together", messages.Provider{Type: "oauth2"},
			[]string{"name: is required", "authorization_endpoint: is required", "token_endpoint: is required", "client_id: is required", "client_secret: is required"}},
		{"missing type", messages.Provider{Name: "a"}, []string{"type: is required"}},
		{"unknown type", messages.Provider{Name: "a", Type: "saml"}, []string{"type: must be"}},
		{"oidc without issuer", messages.Provider{Name: "a", Type: "oidc", ClientID: "c", ClientSecret: "s"}, []string{"issuer: is required"}},
		{"bad auth method", withOAuth(func(p *messages.Provider) { p.ClientAuthMethod = "private_key_jwt" }),
			[]string{"client_auth_method: must be client_secret_basic or client_secret_post"}},
		{"forbidden authorization_params", withOAuth(func(p *messages.Provider) {
			p.AuthorizationParams = map[string]string{"state": "x", "redirect_uri": "https://evil", "prompt": "consent", "Code_Challenge": "x"}
		}), []string{`"state" is set by the broker`, `"redirect_uri" is set by the broker`, `"Code_Challenge" is set by the broker`}},
		{"issuer at a refused address", messages.Provider{Name: "a", Type: "oidc", Issuer: "http://127.0.0.2:9", ClientID: "c", ClientSecret: "s"},
			[]string{"issuer: 127.0.0.2 is a loopback address; add its network to PROVIDER_PRIVATE_NETWORKS to allow it"}},
		{"endpoint at a private address", withOAuth(func(p *messages.Provider) { p.TokenEndpoint = "https://10.0.0.5/token" }),
			[]string{"token_endpoint: 10.0.0.5 is a private address (RFC 1918); add its network to PROVIDER_PRIVATE_NETWORKS"}},
		{"endpoint at a metadata address", withOAuth(func(p *messages.Provider) {
			p.RevocationEndpoint = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
		}), []string{"revocation_endpoint: 169.254.169.254 is a cloud metadata address"}},
		{"relative endpoint", withOAuth(func(p *messages.Provider) { p.AuthorizationEndpoint = "/authorize" }),
			[]string{"authorization_endpoint: must be an absolute URL"}},
		{"bad names", withOAuth(func(p *messages.Provider) { p.Name = "GitHub"; p.Aliases = []string{"ok", "has space", "ok", "prv_x"} }),
			[]string{"name: may contain only", "aliases[1]: may contain only", `aliases: "ok" is listed twice`, "aliases[3]: must not start with prv_"}},
		{"name too long", withOAuth(func(p *messages.Provider) { p.Name = strings.Repeat("a", 65) }), []string{"name: must be at most 64"}},
		{"id given", withOAuth(func(p *messages.Provider) { p.ID = "prv_mine" }), []string{"id: is assigned by the broker"}},
		{"static with a client secret and no schema", messages.Provider{Name: "a", Type: "static", ClientSecret: "s"},
			[]string{"client_secret: static providers have no client secret", "credential_schema: is required", "strategy: is required"}},
		{"static schema not an object", func() messages.Provider {
			p := staticProvider("a")
			p.CredentialSchema = json.RawMessage(`[1,2]`)
			return p
		}(), []string{"credential_schema: must be a JSON object"}},
		{"bad scope", withOAuth(func(p *messages.Provider) { p.Scopes = []string{"a b"} }), []string{"scopes[0]: is not a valid scope token"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { e.refuseCreate(t, tc.p, tc.want...) })
	}
	if n, _ := e.count(); n != 0 || e.vault.putCount() != 0 {
		t.Errorf("after invalid creates: %d providers stored, %d vault puts", n, e.vault.putCount())
	}
}

func withOAuth(f func(p *messages.Provider)) messages.Provider {
	p := oauth2Provider("valid", "s")
	f(&p)
	return p
}

func TestNamesAndAliasesShareOneNamespace(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a := e.create(oauth2Provider("github", "s", "gh", "octo"))
	tests := []struct {
		name string
		p    messages.Provider
	}{
		{"same name", oauth2Provider("github", "s")},
		{"name equals an alias", oauth2Provider("gh", "s")},
		{"alias equals a name", oauth2Provider("other", "s", "github")},
		{"alias equals an alias", oauth2Provider("other", "s", "octo")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.request(messages.SubjectProvidersCreate, tc.p, nil)
			if !errors.Is(err, messages.ErrConflict) || !strings.Contains(err.Error(), "name or alias already in use") {
				t.Fatalf("err = %v", err)
			}
		})
	}
	b := e.create(oauth2Provider("gitlab", "s", "gl"))
	// Renaming onto another provider's alias is refused too.
	err := e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: "gitlab", Patch: json.RawMessage(`{"aliases":["gl","octo"]}`)}, nil)
	if !errors.Is(err, messages.ErrConflict) || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("update onto another's alias: %v", err)
	}
	// HTTP: 409 with the contract's body.
	doc, _ := json.Marshal(oauth2Provider("other", "s", "gh"))
	status, body := e.api(http.MethodPost, "/v1/providers", doc)
	var eb messages.ErrorBody
	if status != http.StatusConflict || json.Unmarshal(body, &eb) != nil || eb.Error == nil || eb.Error.Code != messages.CodeConflict ||
		!strings.Contains(eb.Error.Message, `"gh"`) {
		t.Errorf("HTTP create with a taken alias: %d %s", status, body)
	}
	if status, body := e.api(http.MethodPatch, "/v1/providers/gitlab", []byte(`{"name":"github"}`)); status != http.StatusConflict {
		t.Errorf("HTTP rename onto a taken name: %d %s", status, body)
	}
	for _, ref := range []string{a.ID, "github", "gh", "octo"} {
		var got messages.Provider
		if err := e.request(messages.SubjectProvidersGet, messages.ProviderRef{Provider: ref}, &got); err != nil || got.ID != a.ID {
			t.Errorf("get %q: %v %v", ref, got.ID, err)
		}
	}
	for _, ref := range []string{b.ID, "gitlab", "gl"} {
		var got messages.Provider
		if err := e.request(messages.SubjectProvidersGet, messages.ProviderRef{Provider: ref}, &got); err != nil || got.ID != b.ID {
			t.Errorf("get %q: %v %v", ref, got.ID, err)
		}
	}
	for _, ref := range []string{"nope", "prv_00000000000000000000000000000000"} {
		if err := e.request(messages.SubjectProvidersGet, messages.ProviderRef{Provider: ref}, nil); !errors.Is(err, messages.ErrNotFound) {
			t.Errorf("get %q: %v, want not_found", ref, err)
		}
	}
	if err := e.request(messages.SubjectProvidersGet, messages.ProviderRef{}, nil); !errors.Is(err, messages.ErrInvalidRequest) {
		t.Errorf("get without a ref: %v", err)
	}
}

func TestListPaging(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var ids []string
	for _, n := range []string{"p1", "p2", "p3", "p4", "p5"} {
		ids = append(ids, e.create(oauth2Provider(n, "s")).ID)
	}
	ids = append(ids, e.create(staticProvider("s1")).ID)
	slices.Sort(ids)

	var seen []string
	cursor, pages := "", 0
	for {
		var page messages.ListProvidersReply
		if err := e.request(messages.SubjectProvidersList, messages.ListProvidersRequest{Limit: 4, Cursor: cursor}, &page); err != nil {
			t.Fatal(err)
		}
		pages++
		for _, p := range page.Providers {
			seen = append(seen, p.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if !slices.Equal(seen, ids) || pages != 2 {
		t.Errorf("paged ids %v in %d pages, want %v", seen, pages, ids)
	}

	var statics messages.ListProvidersReply
	if err := e.request(messages.SubjectProvidersList, messages.ListProvidersRequest{Type: messages.ProviderStatic}, &statics); err != nil ||
		len(statics.Providers) != 1 || statics.Providers[0].Name != "s1" || statics.NextCursor != "" {
		t.Errorf("type filter: %+v %v", statics, err)
	}
	// Exactly one page's worth: no next cursor pointing at an empty page.
	var all messages.ListProvidersReply
	if err := e.request(messages.SubjectProvidersList, messages.ListProvidersRequest{Limit: 6}, &all); err != nil || len(all.Providers) != 6 || all.NextCursor != "" {
		t.Errorf("limit 6: %d providers, cursor %q, %v", len(all.Providers), all.NextCursor, err)
	}
	for _, bad := range []messages.ListProvidersRequest{{Cursor: "not-a-cursor"}, {Limit: -1}, {Type: "saml"}} {
		if err := e.request(messages.SubjectProvidersList, bad, nil); !errors.Is(err, messages.ErrInvalidRequest) {
			t.Errorf("list %+v: %v, want invalid_request", bad, err)
		}
	}
	// HTTP side of the same.
	status, body := e.api(http.MethodGet, "/v1/providers?limit=2&type=oauth2", nil)
	var page messages.ListProvidersReply
	if status != 200 || json.Unmarshal(body, &page) != nil || len(page.Providers) != 2 || page.NextCursor == "" {
		t.Fatalf("HTTP list: %d %s", status, body)
	}
	status, body = e.api(http.MethodGet, "/v1/providers?limit=10&type=oauth2&cursor="+url.QueryEscape(page.NextCursor), nil)
	if status != 200 || json.Unmarshal(body, &page) != nil || len(page.Providers) != 3 || page.NextCursor != "" {
		t.Errorf("HTTP list page 2: %d %s", status, body)
	}
	if status, body := e.api(http.MethodGet, "/v1/providers?limit=abc", nil); status != 400 || !strings.Contains(string(body), "invalid_request") {
		t.Errorf("HTTP list limit=abc: %d %s", status, body)
	}
}

func TestUpdateByMergePatch(t *testing.T) {
	t.Parallel()
	e := setup(t)
	orig := e.create(e.oidcProvider("acme", "first-secret", "acme-sso"))

	var renamed messages.Provider
	err := e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: "acme-sso",
		Patch: json.RawMessage(`{"name":"acme2","aliases":["a2"],"client_secret":"second-secret","scopes":["openid"],"authorization_params":{"prompt":"login"}}`)}, &renamed)
	if err != nil {
		t.Fatal(err)
	}
	if renamed.ID != orig.ID || renamed.Name != "acme2" || !slices.Equal(renamed.Aliases, []string{"a2"}) || renamed.ClientSecret != "" ||
		!renamed.ClientSecretSet || !renamed.UpdatedAt.After(orig.UpdatedAt) || !renamed.CreatedAt.Equal(orig.CreatedAt) ||
		renamed.TokenEndpoint != orig.TokenEndpoint || renamed.AuthorizationParams["prompt"] != "login" {
		t.Errorf("renamed: %+v", renamed)
	}
	if vc := e.vault.lastPut(t); vc.ClientSecret != "second-secret" || vc.ProviderName != "acme2" || vc.ProviderID != orig.ID {
		t.Errorf("vault received %+v", vc)
	}
	if err := e.request(messages.SubjectProvidersGet, messages.ProviderRef{Provider: "acme-sso"}, nil); !errors.Is(err, messages.ErrNotFound) {
		t.Errorf("old alias still resolves: %v", err)
	}

	// No secret in the patch: the vault gets an empty one and keeps its own.
	var kept messages.Provider
	if err := e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: orig.ID, Patch: json.RawMessage(`{"authorization_params":null}`)}, &kept); err != nil {
		t.Fatal(err)
	}
	if vc := e.vault.lastPut(t); vc.ClientSecret != "" || !kept.ClientSecretSet || kept.AuthorizationParams != nil || e.vault.secret(orig.ID) != "second-secret" {
		t.Errorf("update without secret: vault got %+v, reply %+v", vc, kept)
	}

	// A new issuer is rediscovered: the old endpoints go, the new ones come.
	op2, err := oidcprovider.New(oidcprovider.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer op2.Close()
	var moved messages.Provider
	if err := e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: "acme2",
		Patch: json.RawMessage(`{"issuer":"` + op2.Issuer() + `"}`)}, &moved); err != nil {
		t.Fatal(err)
	}
	if moved.TokenEndpoint != op2.Issuer()+"/token" || moved.JWKSURI != op2.Issuer()+"/jwks" || moved.Issuer != op2.Issuer() {
		t.Errorf("after issuer change: %+v", moved)
	}

	// A rejected patch changes nothing.
	before := moved
	tests := []struct {
		name  string
		patch string
		want  string
	}{
		{"id", `{"id":"prv_x"}`, "id: is set by the broker"},
		{"timestamps", `{"created_at":"2020-01-01T00:00:00Z","client_secret_set":false}`, "created_at: is set by the broker"},
		{"unknown field", `{"nmae":"x"}`, `unknown field "nmae"`},
		{"wrong type", `{"scopes":"openid"}`, `scopes: must be an array of strings`},
		{"not an object", `["x"]`, "patch must be a JSON object"},
		{"null", `null`, "patch is required"},
		{"invalid result", `{"client_auth_method":"none","issuer":"http://example.com"}`, "client_auth_method: must be"},
		{"forbidden param", `{"authorization_params":{"nonce":"x"}}`, `"nonce" is set by the broker`},
		{"secret on static", `{"type":"static"}`, "is not used by static providers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: orig.ID, Patch: json.RawMessage(tc.patch)}, nil)
			if !errors.Is(err, messages.ErrInvalidRequest) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want invalid_request mentioning %q", err, tc.want)
			}
		})
	}
	var after messages.Provider
	if err := e.request(messages.SubjectProvidersGet, messages.ProviderRef{Provider: orig.ID}, &after); err != nil || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("rejected patches changed the provider: %+v %v", after, err)
	}
	if err := e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: "ghost", Patch: json.RawMessage(`{"name":"x"}`)}, nil); !errors.Is(err, messages.ErrNotFound) {
		t.Errorf("update unknown: %v", err)
	}

	// HTTP PATCH with application/merge-patch+json.
	status, body := e.api(http.MethodPatch, "/v1/providers/acme2", []byte(`{"scopes":["openid","email"],"client_secret":"third-secret"}`))
	var p messages.Provider
	if status != 200 || json.Unmarshal(body, &p) != nil || !slices.Equal(p.Scopes, []string{"openid", "email"}) {
		t.Errorf("HTTP PATCH: %d %s", status, body)
	}
	if e.vault.secret(orig.ID) != "third-secret" {
		t.Errorf("HTTP PATCH secret did not reach the vault")
	}
	if status, body := e.do(http.MethodPatch, "/v1/providers/acme2", "text/plain", "Bearer "+apiKey, []byte(`{}`)); status != 400 || !strings.Contains(string(body), "Content-Type") {
		t.Errorf("PATCH text/plain: %d %s", status, body)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	e := setup(t)
	p := e.create(oauth2Provider("github", "s", "gh"))
	e.vault.failDeletes(messages.Errorf(messages.CodeNotActive, "provider %s still has 2 live connection(s)", p.ID))
	err := e.request(messages.SubjectProvidersDelete, messages.ProviderRef{Provider: "gh"}, nil)
	if !errors.Is(err, messages.ErrNotActive) || !strings.Contains(err.Error(), "live connection") {
		t.Fatalf("delete refused by the vault: %v", err)
	}
	if err := e.request(messages.SubjectProvidersGet, messages.ProviderRef{Provider: "gh"}, nil); err != nil {
		t.Fatalf("provider gone after a refused delete: %v", err)
	}
	e.vault.failDeletes(nil)
	var deleted messages.Provider
	if err := e.request(messages.SubjectProvidersDelete, messages.ProviderRef{Provider: "gh"}, &deleted); err != nil || deleted.ID != p.ID {
		t.Fatalf("delete: %+v %v", deleted, err)
	}
	if err := e.request(messages.SubjectProvidersGet, messages.ProviderRef{Provider: p.ID}, nil); !errors.Is(err, messages.ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}
	if n, a := e.count(); n != 0 || a != 0 {
		t.Errorf("after delete: %d providers, %d aliases", n, a)
	}
	if e.vault.secret(p.ID) != "" {
		t.Error("the vault was not told")
	}
	if err := e.request(messages.SubjectProvidersDelete, messages.ProviderRef{Provider: "gh"}, nil); !errors.Is(err, messages.ErrNotFound) {
		t.Errorf("delete again: %v", err)
	}
	// The name is free again.
	e.create(oauth2Provider("gh", "s"))
	// HTTP DELETE.
	if status, body := e.api(http.MethodDelete, "/v1/providers/gh", nil); status != 200 || !strings.Contains(string(body), `"name":"gh"`) {
		t.Errorf("HTTP DELETE: %d %s", status, body)
	}
	if status, _ := e.api(http.MethodDelete, "/v1/providers/gh", nil); status != 404 {
		t.Errorf("HTTP DELETE again: %d", status)
	}
}

func TestVaultFailureRollsBack(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.vault.failPuts(messages.Errorf(messages.CodeInvalidRequest, "vault says no"))
	err := e.request(messages.SubjectProvidersCreate, oauth2Provider("github", "s", "gh"), nil)
	if !errors.Is(err, messages.ErrInvalidRequest) || !strings.Contains(err.Error(), "vault says no") {
		t.Fatalf("create with the vault refusing: %v", err)
	}
	if n, a := e.count(); n != 0 || a != 0 {
		t.Fatalf("stored %d providers, %d aliases after a vault failure", n, a)
	}

	// An update the vault refuses changes nothing either.
	e.vault.failPuts(nil)
	p := e.create(oauth2Provider("github", "s", "gh"))
	e.vault.failPuts(messages.Errorf(messages.CodeInternal, "disk full"))
	err = e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: "gh", Patch: json.RawMessage(`{"name":"renamed"}`)}, nil)
	if !errors.Is(err, messages.ErrInternal) {
		t.Fatalf("update with the vault failing: %v", err)
	}
	var got messages.Provider
	if err := e.request(messages.SubjectProvidersGet, messages.ProviderRef{Provider: "github"}, &got); err != nil || !got.UpdatedAt.Equal(p.UpdatedAt) {
		t.Fatalf("after failed update: %+v %v", got, err)
	}

	// A vault that does not answer at all: unavailable, nothing stored.
	e.vault.failPuts(nil)
	if err := e.vault.svc.Stop(); err != nil {
		t.Fatal(err)
	}
	err = e.request(messages.SubjectProvidersCreate, oauth2Provider("gitlab", "s"), nil)
	if !errors.Is(err, messages.ErrUnavailable) {
		t.Fatalf("create without a vault: %v", err)
	}
	if n, _ := e.count(); n != 1 {
		t.Errorf("stored %d providers, want 1", n)
	}
}

func TestClientSecretNeverLeaves(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const s1, s2, s3 = "SECRET-one-7f3a9c", "SECRET-two-51be02", "SECRET-three-c0ffee"
	// NATS: create, get, list, update, delete.
	p := e.create(e.oidcProvider("acme", s1, "acme-sso"))
	e.request(messages.SubjectProvidersGet, messages.ProviderRef{Provider: "acme"}, nil)
	e.request(messages.SubjectProvidersList, messages.ListProvidersRequest{}, nil)
	e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: "acme", Patch: json.RawMessage(`{"client_secret":"` + s2 + `"}`)}, nil)
	// HTTP: create, get, list, patch.
	doc, _ := json.Marshal(oauth2Provider("github", s3, "gh"))
	if status, body := e.api(http.MethodPost, "/v1/providers", doc); status != 201 {
		t.Fatalf("HTTP create: %d %s", status, body)
	}
	e.api(http.MethodGet, "/v1/providers/gh", nil)
	e.api(http.MethodGet, "/v1/providers", nil)
	e.api(http.MethodPatch, "/v1/providers/gh", []byte(`{"client_secret":"`+s3+`","name":"github2"}`))
	// A failed create with a secret, too.
	bad := oauth2Provider("Bad Name", s3)
	e.request(messages.SubjectProvidersCreate, bad, nil)

	if e.vault.secret(p.ID) != s2 {
		t.Fatalf("the vault holds %q for acme, want the second secret", e.vault.secret(p.ID))
	}
	for _, s := range []string{s1, s2, s3} {
		for i, r := range e.replies {
			if strings.Contains(string(r), s) {
				t.Errorf("reply %d carries a client secret: %s", i, r)
			}
		}
		if strings.Contains(e.logs.String(), s) {
			t.Errorf("the log carries a client secret")
		}
	}
	dump := e.dumpAdminSchema()
	for _, s := range []string{s1, s2, s3} {
		if strings.Contains(dump, s) {
			t.Errorf("schema admin holds a client secret:\n%s", dump)
		}
	}
	if !strings.Contains(dump, "acme") || !strings.Contains(dump, "github2") {
		t.Errorf("dump does not show the providers, so it proves nothing:\n%s", dump)
	}
	e.request(messages.SubjectProvidersDelete, messages.ProviderRef{Provider: "acme"}, nil)
}

func TestHTTPAuthAndCRUD(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"none", "", 401},
		{"wrong key", "Bearer wrong-key-0123456789", 401},
		{"not bearer", "Basic " + apiKey, 401},
		{"first key", "Bearer " + apiKey, 200},
		{"second key", "Bearer second-key-0123456789", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/v1/providers", "/v1/providers/x"} {
				status, body := e.do(http.MethodGet, path, "", tc.auth, nil)
				if tc.want == 401 && (status != 401 || !strings.Contains(string(body), `"unauthorized"`)) {
					t.Errorf("GET %s: %d %s", path, status, body)
				}
				if tc.want == 200 && status == 401 {
					t.Errorf("GET %s: 401 with a valid key", path)
				}
			}
		})
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if status, body := e.do(http.MethodGet, path, "", "", nil); status != 200 {
			t.Errorf("%s: %d %s", path, status, body)
		}
	}

	doc, _ := json.Marshal(e.oidcProvider("acme", "s", "acme-sso"))
	status, body := e.api(http.MethodPost, "/v1/providers", doc)
	var p messages.Provider
	if status != 201 || json.Unmarshal(body, &p) != nil || p.TokenEndpoint == "" {
		t.Fatalf("POST: %d %s", status, body)
	}
	status, body = e.api(http.MethodGet, "/v1/providers/acme-sso", nil)
	var got messages.Provider
	if status != 200 || json.Unmarshal(body, &got) != nil || got.ID != p.ID {
		t.Errorf("GET by alias: %d %s", status, body)
	}
	status, body = e.api(http.MethodGet, "/v1/providers/nope", nil)
	if status != 404 || !strings.Contains(string(body), `"not_found"`) {
		t.Errorf("GET unknown: %d %s", status, body)
	}
	status, body = e.api(http.MethodPost, "/v1/providers", []byte(`{"name":"x","type":"oauth2"}`))
	if status != 400 || !strings.Contains(string(body), "token_endpoint: is required") {
		t.Errorf("POST invalid: %d %s", status, body)
	}
	big := []byte(`{"name":"` + strings.Repeat("a", 1<<20) + `"}`)
	if status, body := e.api(http.MethodPost, "/v1/providers", big); status != 400 || !strings.Contains(string(body), "larger than 1 MiB") {
		t.Errorf("POST 1 MiB: %d %.200s", status, body)
	}
}

// Configuration problems come together, and no URL password shows in them.
func TestLoadConfigHidesURLPasswords(t *testing.T) {
	l := config.FromMap(map[string]string{
		"NATS_URL":      "nats://admin:Zq7/Wx9Lm@nats.example:4222",
		"DATABASE_URL":  "postgres://admin:Ab3/Cd4Ef@db.example/nexus",
		"ADMIN_API_KEY": apiKey, "ADMIN_SERVICE_KEY": adminKey, "HANDSHAKE_SERVICE_KEY": handshakeKey,
	})
	admin.LoadConfig(l)
	err := l.Err()
	if err == nil {
		t.Fatal("no problem found")
	}
	for _, want := range []string{`NATS_URL: nats://xxxxx@nats.example:4222: the password contains "/"`, `DATABASE_URL: postgres://xxxxx@db.example/nexus: the password contains "/"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\ndoes not say %s", err, want)
		}
	}
	for _, piece := range []string{"Zq7", "Wx9Lm", "Ab3", "Cd4Ef"} {
		if strings.Contains(err.Error(), piece) {
			t.Errorf("the error shows %q of a password:\n%v", piece, err)
		}
	}
}

func TestHTTPMethodNotAllowed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, tc := range []struct{ method, path, allow, says string }{
		{http.MethodPut, "/v1/providers/github", "GET, HEAD, PATCH, DELETE", "PUT is not allowed on /v1/providers/{ref}; use GET, PATCH or DELETE"},
		{http.MethodPost, "/v1/providers/github", "GET, HEAD, PATCH, DELETE", "use GET, PATCH or DELETE"},
		{http.MethodDelete, "/v1/providers", "GET, HEAD, POST", "DELETE is not allowed on /v1/providers; use GET or POST"},
		{http.MethodPut, "/v1/providers", "GET, HEAD, POST", "use GET or POST"},
		{http.MethodPatch, "/v1/providers", "GET, HEAD, POST", "use GET or POST"},
	} {
		req, err := http.NewRequest(tc.method, e.http.URL+tc.path, strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+apiKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var eb messages.ErrorBody
		err = json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tc.allow || err != nil || eb.Error == nil ||
			eb.Error.Code != messages.CodeInvalidRequest || !strings.Contains(eb.Error.Message, tc.says) {
			t.Errorf("%s %s: %d Allow %q, body %+v (%v)", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), eb.Error, err)
		}
	}
	// Unknown routes stay 404, and the key is checked before the method.
	if status, body := e.api(http.MethodPut, "/v1/providers/a/b", nil); status != 404 || !strings.Contains(string(body), `"not_found"`) {
		t.Errorf("PUT on an unknown route: %d %s", status, body)
	}
	if status, _ := e.do(http.MethodPut, "/v1/providers/github", "application/json", "", []byte(`{}`)); status != 401 {
		t.Errorf("PUT without a key: %d", status)
	}
	if status, _ := e.do(http.MethodHead, "/v1/providers", "", "Bearer "+apiKey, nil); status != 200 {
		t.Errorf("HEAD /v1/providers: %d", status)
	}
}

func TestMalformedJSON(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.create(oauth2Provider("github", "s"))
	for _, subject := range []string{messages.SubjectProvidersCreate, messages.SubjectProvidersGet, messages.SubjectProvidersList,
		messages.SubjectProvidersUpdate, messages.SubjectProvidersDelete} {
		for _, body := range []string{`{bad`, ``, `[1]`, `{"provider": 5, "limit": "x", "name": 5}`, `{} {}`} {
			if body == `` && subject == messages.SubjectProvidersList {
				continue // an empty body is {}, a list of the first page
			}
			err := e.request(subject, []byte(body), nil)
			if body == "" && subject == messages.SubjectProvidersList {
				// An empty body is {}: the first page of every provider.
				if err != nil {
					t.Errorf("%s with an empty body: %v", subject, err)
				}
				continue
			}
			if !errors.Is(err, messages.ErrInvalidRequest) {
				t.Errorf("%s %q: %v, want invalid_request", subject, body, err)
			}
		}
	}
	for _, tc := range []struct{ method, path string }{
		{http.MethodPost, "/v1/providers"},
		{http.MethodPatch, "/v1/providers/github"},
	} {
		for _, body := range []string{`{bad`, ``, `{"name": 5}`} {
			status, resp := e.api(tc.method, tc.path, []byte(body))
			var eb messages.ErrorBody
			if status != 400 || json.Unmarshal(resp, &eb) != nil || eb.Error == nil || eb.Error.Code != messages.CodeInvalidRequest {
				t.Errorf("%s %s %q: %d %s", tc.method, tc.path, body, status, resp)
			}
		}
	}
	// Requests without the API key are refused on NATS.
	msg := e.nc
	resp, err := msg.Request(messages.Subject("", messages.SubjectProvidersList), []byte(`{}`), 5e9)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get(messages.HeaderErrorCode) != "401" {
		t.Errorf("NATS without an API key: %q", resp.Header.Get(messages.HeaderErrorCode))
	}
}

// Concurrent creates racing for one name: exactly one wins, whether the
// name is taken as a name or as an alias.
func TestNamespaceRace(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			var p messages.Provider
			if i%2 == 0 {
				p = oauth2Provider("contested", "s")
				p.Name = fmt.Sprintf("contested-%d", i)
				p.Aliases = []string{"contested"}
			} else {
				p = oauth2Provider("contested", "s")
			}
			errs <- e.request(messages.SubjectProvidersCreate, p, nil)
		}()
	}
	ok := 0
	for range n {
		err := <-errs
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, messages.ErrConflict):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d creates won the name, want 1", ok)
	}
}

// TestProviderHealthFromTheVault: providers.get and providers.list show what
// the vault says of each registration (misconfigured after invalid_client);
// a vault that does not answer leaves it out without failing the read.
func TestProviderHealthFromTheVault(t *testing.T) {
	t.Parallel()
	e := setup(t)
	p := e.create(oauth2Provider("github", "gh-secret"))
	since := time.Now().UTC().Truncate(time.Second)
	e.vault.mu.Lock()
	e.vault.health = map[string]messages.ProviderHealth{p.ID: {Status: messages.ProviderMisconfigured, Code: "invalid_client", Since: &since}}
	e.vault.mu.Unlock()
	var got messages.Provider
	if err := e.request(messages.SubjectProvidersGet, messages.ProviderRef{Provider: "github"}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Health == nil || got.Health.Status != messages.ProviderMisconfigured || got.Health.Code != "invalid_client" || !got.Health.Since.Equal(since) {
		t.Fatalf("health = %+v", got.Health)
	}
	var list messages.ListProvidersReply
	if err := e.request(messages.SubjectProvidersList, messages.ListProvidersRequest{}, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Providers) != 1 || list.Providers[0].Health == nil || list.Providers[0].Health.Status != messages.ProviderMisconfigured {
		t.Fatalf("list = %+v", list.Providers)
	}
	// The handshake's read, at every handshake.begin, asks no vault.
	hs := &natsx.Client{NC: e.nc, Prefix: messages.DefaultPrefix, APIKey: handshakeKey}
	var forHandshake messages.Provider
	if err := hs.Request(context.Background(), messages.SubjectProvidersGet, messages.ProviderRef{Provider: "github"}, &forHandshake); err != nil {
		t.Fatal(err)
	}
	if forHandshake.ID != p.ID || forHandshake.Health != nil {
		t.Fatalf("the handshake's read: %+v", forHandshake)
	}
	// No answer from the vault: the provider without its health.
	_ = e.vault.svc.Stop()
	var without messages.Provider
	if err := e.request(messages.SubjectProvidersGet, messages.ProviderRef{Provider: "github"}, &without); err != nil {
		t.Fatal(err)
	}
	if without.ID != p.ID || without.Health != nil {
		t.Fatalf("without a vault: %+v", without)
	}
}
