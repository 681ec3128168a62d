package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// createRaw sends a raw create request and decodes the provider.
func (e *env) createRaw(doc string) (messages.Provider, error) {
	e.t.Helper()
	var out messages.Provider
	err := e.request(messages.SubjectProvidersCreate, []byte(doc), &out)
	return out, err
}

func TestCreateFromTemplate(t *testing.T) {
	t.Parallel()
	e := setup(t)
	zd, err := e.createRaw(`{"template": "zendesk", "client_id": "zd-client", "client_secret": "zd-secret", "params": {"subdomain": "acme"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if zd.Name != "zendesk" || zd.Type != messages.ProviderOAuth2 || zd.Template != "zendesk" || !maps.Equal(zd.Params, map[string]string{"subdomain": "acme"}) ||
		zd.AuthorizationEndpoint != "https://acme.zendesk.com/oauth/authorizations/new" || zd.TokenEndpoint != "https://acme.zendesk.com/oauth/tokens" ||
		zd.Issuer != "https://acme.zendesk.com" || zd.ClientAuthMethod != messages.ClientSecretPost || !slices.Equal(zd.Scopes, []string{"read"}) ||
		zd.DefaultTokenLifetimeSeconds != 0 || !zd.ClientSecretSet || zd.ClientID != "zd-client" {
		t.Errorf("zendesk from its template: %+v", zd)
	}
	if vc := e.vault.lastPut(t); vc.ProviderID != zd.ID || vc.ClientSecret != "zd-secret" || vc.TokenEndpoint != zd.TokenEndpoint || vc.DefaultTokenLifetimeSeconds != 0 {
		t.Errorf("vault received %+v", vc)
	}
	var got messages.Provider
	if err := e.request(messages.SubjectProvidersGet, messages.ProviderRef{Provider: "zendesk"}, &got); err != nil ||
		got.Template != "zendesk" || !maps.Equal(got.Params, zd.Params) {
		t.Errorf("providers.get: %+v, %v", got, err)
	}

	// The request's own fields win, whole; a param left out takes its default.
	sf, err := e.createRaw(`{"template": "salesforce", "name": "sf-prod", "aliases": ["sf"], "client_id": "sf-client", "client_secret": "sf-secret",
		"scopes": ["api"], "default_token_lifetime_seconds": 900}`)
	if err != nil {
		t.Fatal(err)
	}
	if sf.Name != "sf-prod" || !slices.Equal(sf.Aliases, []string{"sf"}) || !slices.Equal(sf.Scopes, []string{"api"}) || sf.DefaultTokenLifetimeSeconds != 900 ||
		sf.TokenEndpoint != "https://login.salesforce.com/services/oauth2/token" || sf.RevocationEndpoint != "https://login.salesforce.com/services/oauth2/revoke" ||
		!maps.Equal(sf.Params, map[string]string{"login_host": "login.salesforce.com"}) ||
		sf.Quirks == nil || sf.Quirks.ConfigFromToken["instance_url"] != "instance_url" {
		t.Errorf("salesforce with overrides: %+v", sf)
	}
	if vc := e.vault.lastPut(t); vc.Quirks == nil || vc.Quirks.ConfigFromToken["instance_url"] != "instance_url" || vc.DefaultTokenLifetimeSeconds != 900 {
		t.Errorf("vault received %+v (quirks %+v)", vc, vc.Quirks)
	}

	// Quirks come from the template and reach the vault.
	sl, err := e.createRaw(`{"template": "slack-user", "client_id": "sl-client", "client_secret": "sl-secret"}`)
	if err != nil {
		t.Fatal(err)
	}
	want := messages.Quirks{PermanentErrors: []string{"invalid_refresh_token", "token_revoked", "invalid_auth"}, OKField: true, TokenPath: "authed_user"}
	vc := e.vault.lastPut(t)
	for what, q := range map[string]*messages.Quirks{"stored": sl.Quirks, "pushed": vc.Quirks} {
		if q == nil || !slices.Equal(q.PermanentErrors, want.PermanentErrors) || q.OKField != want.OKField || q.TokenPath != want.TokenPath {
			t.Errorf("slack-user quirks %s: %+v", what, q)
		}
	}
	if sl.AuthorizationParams["user_scope"] != "users:read" || sl.Params != nil {
		t.Errorf("slack-user: %+v", sl)
	}

	// A static template: nothing but the template.
	oa, err := e.createRaw(`{"template": "openai"}`)
	if err != nil {
		t.Fatal(err)
	}
	if oa.Name != "openai" || oa.Type != messages.ProviderStatic || oa.Strategy == nil || oa.Strategy.Config["header"] != "Authorization" ||
		oa.Verification == nil || oa.Verification.URL != "https://api.openai.com/v1/models" || len(oa.CredentialSchema) == 0 || oa.Template != "openai" {
		t.Errorf("openai from its template: %+v", oa)
	}

	// An OIDC template runs discovery; here the request's own issuer (the
	// test server) wins over the one rendered from the param.
	oi, err := e.createRaw(fmt.Sprintf(`{"template": "generic-oidc", "name": "corp", "issuer": %q, "client_id": "c", "client_secret": "s",
		"params": {"issuer": "https://idp.example.com"}}`, e.oidc.Issuer()))
	if err != nil {
		t.Fatal(err)
	}
	if oi.Issuer != e.oidc.Issuer() || oi.TokenEndpoint != e.oidc.Issuer()+"/token" || !slices.Contains(oi.Scopes, "offline_access") ||
		oi.Params["issuer"] != "https://idp.example.com" {
		t.Errorf("generic-oidc: %+v", oi)
	}

	// The same template twice: the second needs a name of its own.
	if _, err := e.createRaw(`{"template": "openai"}`); !errors.Is(err, messages.ErrConflict) {
		t.Errorf("a second openai without a name: %v, want conflict", err)
	}
	// Over HTTP too.
	status, body := e.api(http.MethodPost, "/v1/providers", []byte(`{"template": "shopify", "client_id": "c", "client_secret": "s", "params": {"shop": "acme"}}`))
	var sh messages.Provider
	if status != http.StatusCreated || json.Unmarshal(body, &sh) != nil || sh.Quirks == nil || sh.Quirks.ConfigFromCallback["shop"] != "shop" ||
		sh.TokenEndpoint != "https://acme.myshopify.com/admin/oauth/access_token" {
		t.Errorf("POST shopify: %d %s", status, body)
	}
}

// TestCreateFromTemplateRefused: missing, unknown and hostile params, and
// unknown templates, are refused before anything is stored or pushed.
func TestCreateFromTemplateRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, tc := range []struct {
		name, doc string
		code      error
		want      []string
	}{
		{"missing required param", `{"template": "zendesk", "client_id": "c", "client_secret": "s"}`,
			messages.ErrInvalidRequest, []string{"params.subdomain: is required"}},
		{"empty required param", `{"template": "shopify", "client_id": "c", "client_secret": "s", "params": {"shop": ""}}`,
			messages.ErrInvalidRequest, []string{"params.shop: is required"}},
		{"path in a host param", `{"template": "zendesk", "client_id": "c", "client_secret": "s", "params": {"subdomain": "evil.com/x"}}`,
			messages.ErrInvalidRequest, []string{"params.subdomain: must match"}},
		{"user info in a host param", `{"template": "okta", "client_id": "c", "client_secret": "s", "params": {"domain": "acme.okta.com@evil.com"}}`,
			messages.ErrInvalidRequest, []string{"params.domain: must match"}},
		{"another domain than the template's", `{"template": "salesforce", "client_id": "c", "client_secret": "s", "params": {"login_host": "evil.com"}}`,
			messages.ErrInvalidRequest, []string{"params.login_host: must match"}},
		{"JSON in a param", `{"template": "microsoft", "client_id": "c", "client_secret": "s", "params": {"tenant": "x\",\"token_endpoint\":\"https://evil.com"}}`,
			messages.ErrInvalidRequest, []string{"params.tenant: must match"}},
		{"unknown param", `{"template": "github", "client_id": "c", "client_secret": "s", "params": {"tenant": "x"}}`,
			messages.ErrInvalidRequest, []string{`params: template "github" has no param "tenant" (it takes none)`}},
		{"params without template", `{"name": "x", "type": "static", "params": {"a": "b"}}`,
			messages.ErrInvalidRequest, []string{"params: are the values of a catalog template's placeholders"}},
		{"template not a string", `{"template": 7}`, messages.ErrInvalidRequest, []string{"template: must be a string"}},
		{"params not strings", `{"template": "zendesk", "params": {"subdomain": 1}}`, messages.ErrInvalidRequest, []string{"params: must be an object of strings"}},
		{"unknown template", `{"template": "myspace", "client_id": "c", "client_secret": "s"}`,
			messages.ErrNotFound, []string{`the catalog has no template "myspace"`}},
		{"the rendered document is still checked", `{"template": "github", "client_secret": "s"}`,
			messages.ErrInvalidRequest, []string{"client_id: is required"}},
		{"a request field is checked as ever", `{"template": "github", "client_id": "c", "client_secret": "s", "token_endpoint": "https://10.0.0.1/token"}`,
			messages.ErrInvalidRequest, []string{"token_endpoint: 10.0.0.1 is a private address"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.createRaw(tc.doc)
			if !errors.Is(err, tc.code) {
				t.Fatalf("err = %v, want %v", err, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			for _, hostile := range []string{"evil.com/x", "acme.okta.com@evil.com"} {
				if strings.Contains(err.Error(), hostile) {
					t.Errorf("the error quotes the value sent: %v", err)
				}
			}
		})
	}
	if n, _ := e.count(); n != 0 || e.vault.putCount() != 0 {
		t.Errorf("refused creates stored %d providers and pushed %d", n, e.vault.putCount())
	}
}

// TestQuirksByHand: an operator may set quirks on any OAuth provider; they
// are checked, stored, returned and pushed to the vault on create and on
// every update.
func TestQuirksByHand(t *testing.T) {
	t.Parallel()
	e := setup(t)
	p := oauth2Provider("acme", "s")
	p.Quirks = &messages.Quirks{ExpiresInUnit: "ms", KeepAliveSeconds: 3600, PermanentErrors: []string{"token_expired_forever"},
		ConfigFromCallback: map[string]string{"region": "region"}}
	got := e.create(p)
	if got.Quirks == nil || got.Quirks.ExpiresInUnit != "ms" || got.Quirks.KeepAliveSeconds != 3600 || got.Quirks.ConfigFromCallback["region"] != "region" {
		t.Errorf("stored quirks: %+v", got.Quirks)
	}
	if vc := e.vault.lastPut(t); vc.Quirks == nil || vc.Quirks.ExpiresInUnit != "ms" || !slices.Equal(vc.Quirks.PermanentErrors, []string{"token_expired_forever"}) {
		t.Errorf("pushed quirks: %+v", vc.Quirks)
	}
	var updated messages.Provider
	if err := e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: "acme",
		Patch: json.RawMessage(`{"quirks": {"keep_alive_seconds": 120, "expires_in_unit": null}}`)}, &updated); err != nil {
		t.Fatal(err)
	}
	if vc := e.vault.lastPut(t); updated.Quirks == nil || updated.Quirks.KeepAliveSeconds != 120 || updated.Quirks.ExpiresInUnit != "" ||
		vc.Quirks == nil || vc.Quirks.KeepAliveSeconds != 120 || vc.Quirks.ConfigFromCallback["region"] != "region" {
		t.Errorf("after the patch: stored %+v, pushed %+v", updated.Quirks, vc.Quirks)
	}
	// A patch that empties them leaves none.
	var cleared messages.Provider
	if err := e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: "acme", Patch: json.RawMessage(`{"quirks": null}`)}, &cleared); err != nil ||
		cleared.Quirks != nil || e.vault.lastPut(t).Quirks != nil {
		t.Errorf("quirks removed: %+v, %v", cleared.Quirks, err)
	}

	many := map[string]string{}
	for i := range 17 {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	bad := oauth2Provider("bad", "s")
	bad.Quirks = &messages.Quirks{ExpiresInUnit: "h", TokenPath: "authed_user..x", KeepAliveSeconds: 30,
		PermanentErrors: []string{"Bad Code", "invalid_client", "invalid_grant", "gone", "gone"},
		ConfigFromToken: many, ConfigFromCallback: map[string]string{"code": "code", "bad key": "x"}}
	e.refuseCreate(t, bad, "quirks.permanent_errors[0]: must match", "quirks.permanent_errors[1]: invalid_client is about the broker's client",
		"quirks.permanent_errors[2]: invalid_grant is permanent already", `quirks.permanent_errors[4]: "gone" is listed twice`,
		`quirks.expires_in_unit: must be "s"`, "quirks.token_path: must be a dotted path", "quirks.config_from_token: may have at most 16 entries",
		`quirks.config_from_callback: config key "bad key" must match`, "quirks.config_from_callback.code: code is read by the broker itself",
		"quirks.keep_alive_seconds: must be at least 60")
	bad.Quirks = &messages.Quirks{KeepAliveSeconds: -1}
	e.refuseCreate(t, bad, "quirks.keep_alive_seconds: must not be negative")
	bad.Quirks = &messages.Quirks{ConfigFromRequest: &messages.ConfigRequest{URL: "ftp://api.example.com/x"}}
	e.refuseCreate(t, bad, "quirks.config_from_request.url: must be an absolute http(s) URL", "quirks.config_from_request.config: must name at least one config key")
	bad.Quirks = &messages.Quirks{ConfigFromRequest: &messages.ConfigRequest{URL: "https://api.example.com/x", Config: map[string]string{"k": "0..x"}}}
	e.refuseCreate(t, bad, "quirks.config_from_request.config.k: must be a dotted path")
	st := staticProvider("key")
	st.Quirks = &messages.Quirks{OKField: true}
	e.refuseCreate(t, st, "quirks: is not used by static providers")
}

// TestTemplateFieldsAreFixed: template and params record how a provider was
// created; a patch may send them back unchanged (a document read with get),
// not change them.
func TestTemplateFieldsAreFixed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	zd, err := e.createRaw(`{"template": "zendesk", "client_id": "c", "client_secret": "s", "params": {"subdomain": "acme"}}`)
	if err != nil {
		t.Fatal(err)
	}
	zd.ClientID = "c2"
	doc, _ := json.Marshal(zd)
	var back messages.Provider
	if err := e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: zd.ID, Patch: doc}, &back); err != nil ||
		back.ClientID != "c2" || back.Template != "zendesk" || back.Params["subdomain"] != "acme" {
		t.Fatalf("get, edit, send back: %+v, %v", back, err)
	}
	for patch, want := range map[string]string{
		`{"template": "github"}`:                      "template: is the catalog template the provider was created from",
		`{"template": null}`:                          "template: is the catalog template",
		`{"params": {"subdomain": "other"}}`:          "params: are the values the provider's template was filled with",
		`{"params": null}`:                            "params: are the values",
		`{"params": {"subdomain": "acme", "x": "y"}}`: "params: are the values",
	} {
		err := e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: zd.ID, Patch: json.RawMessage(patch)}, nil)
		if !errors.Is(err, messages.ErrInvalidRequest) || !strings.Contains(err.Error(), want) {
			t.Errorf("patch %s: %v, want %q", patch, err, want)
		}
	}
}

func TestTemplatesListAndGet(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var list messages.ListTemplatesReply
	if err := e.request(messages.SubjectProvidersTemplatesList, []byte(``), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Templates) < 30 {
		t.Fatalf("%d templates", len(list.Templates))
	}
	var zd messages.Template
	if err := e.request(messages.SubjectProvidersTemplatesGet, messages.TemplateRef{Template: "zendesk"}, &zd); err != nil {
		t.Fatal(err)
	}
	if zd.Name != "zendesk" || len(zd.Params) != 1 || zd.Params[0].Name != "subdomain" || !zd.Params[0].Required ||
		!strings.Contains(string(zd.Provider), "https://{{subdomain}}.zendesk.com/oauth/tokens") {
		t.Errorf("zendesk: %+v %s", zd, zd.Provider)
	}
	if err := e.request(messages.SubjectProvidersTemplatesGet, messages.TemplateRef{Template: "nope"}, nil); !errors.Is(err, messages.ErrNotFound) {
		t.Errorf("get unknown: %v", err)
	}
	if err := e.request(messages.SubjectProvidersTemplatesGet, []byte(`{"name": "zendesk"}`), nil); !errors.Is(err, messages.ErrInvalidRequest) {
		t.Errorf("get with an unknown field: %v", err)
	}
	if err := e.request(messages.SubjectProvidersTemplatesList, []byte(`{"limit": 1}`), nil); !errors.Is(err, messages.ErrInvalidRequest) {
		t.Errorf("list with an unknown field: %v", err)
	}

	status, body := e.api(http.MethodGet, "/v1/templates", nil)
	var hl messages.ListTemplatesReply
	if status != 200 || json.Unmarshal(body, &hl) != nil || len(hl.Templates) != len(list.Templates) {
		t.Errorf("GET /v1/templates: %d %.300s", status, body)
	}
	status, body = e.api(http.MethodGet, "/v1/templates/salesforce", nil)
	var sf messages.Template
	if status != 200 || json.Unmarshal(body, &sf) != nil || sf.Name != "salesforce" || sf.Params[0].Default != "login.salesforce.com" {
		t.Errorf("GET /v1/templates/salesforce: %d %s", status, body)
	}
	if status, body := e.api(http.MethodGet, "/v1/templates/nope", nil); status != 404 || !strings.Contains(string(body), `"not_found"`) {
		t.Errorf("GET unknown: %d %s", status, body)
	}
	if status, _ := e.api(http.MethodPost, "/v1/templates", []byte(`{}`)); status != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/templates: %d", status)
	}
}

// TestTemplatesPrincipals: the catalog is for operators: the handshake's key
// is forbidden, and a Gateway's or admin's own key unknown, on NATS and HTTP.
func TestTemplatesPrincipals(t *testing.T) {
	t.Parallel()
	e := setup(t)
	call := func(key, subject string, body any) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return (&natsx.Client{NC: e.nc, Prefix: messages.DefaultPrefix, APIKey: key}).Request(ctx, subject, body, nil)
	}
	for _, subject := range []string{messages.SubjectProvidersTemplatesList, messages.SubjectProvidersTemplatesGet} {
		body := map[string]any{}
		if subject == messages.SubjectProvidersTemplatesGet {
			body["template"] = "github"
		}
		if err := call(apiKey, subject, body); err != nil {
			t.Errorf("an operator on %s: %v", subject, err)
		}
		if err := call(handshakeKey, subject, body); !errors.Is(err, messages.ErrForbidden) {
			t.Errorf("the handshake on %s: %v, want forbidden", subject, err)
		}
		for _, key := range []string{"a-gateway-key-0123456789", adminKey, ""} {
			if err := call(key, subject, body); !errors.Is(err, messages.ErrUnauthorized) {
				t.Errorf("key %.8q on %s: %v, want unauthorized", key, subject, err)
			}
		}
	}
	for _, path := range []string{"/v1/templates", "/v1/templates/github"} {
		for auth, want := range map[string]int{"": 401, "Bearer a-gateway-key-0123456789": 401, "Bearer " + handshakeKey: 403, "Bearer " + apiKey: 200} {
			if status, body := e.do(http.MethodGet, path, "", auth, nil); status != want {
				t.Errorf("GET %s with %.16q: %d %s, want %d", path, auth, status, body, want)
			}
		}
	}
}
