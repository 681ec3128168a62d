package catalog_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/admin/internal/catalog"
	"github.com/nexus-broker/nexus/services/admin/internal/registry"
)

// TestEmbeddedCatalog: every template of the binary is well formed and
// renders, with sample params, into a document admin's own validation
// accepts. admin.Start runs the same check and refuses to start on failure.
func TestEmbeddedCatalog(t *testing.T) {
	c, err := catalog.Load(registry.CheckTemplate)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := c.List(t.Context(), struct{}{})
	if len(list.Templates) < 30 {
		t.Errorf("%d templates, want at least 30", len(list.Templates))
	}
	for i, tpl := range list.Templates {
		if i > 0 && list.Templates[i-1].Name >= tpl.Name {
			t.Errorf("templates not sorted by name: %q before %q", list.Templates[i-1].Name, tpl.Name)
		}
		got, err := c.Get(t.Context(), messages.TemplateRef{Template: tpl.Name})
		if err != nil || got.Name != tpl.Name || got.Description == "" || got.Docs == "" {
			t.Errorf("get %s: %+v, %v", tpl.Name, got, err)
		}
	}
	for _, name := range []string{"google", "microsoft", "github", "github-app", "slack", "slack-user", "salesforce", "atlassian",
		"notion", "hubspot", "zendesk", "xero", "shopify", "quickbooks", "zoho", "linear", "asana", "dropbox", "box", "zoom",
		"discord", "x", "gitlab", "okta", "auth0", "intercom", "stripe", "openai", "anthropic", "twilio", "aws", "generic-oidc"} {
		if _, err := c.Get(t.Context(), messages.TemplateRef{Template: name}); err != nil {
			t.Errorf("the catalog lacks %s: %v", name, err)
		}
	}
}

// render is Render on the embedded catalog, decoded.
func render(t *testing.T, name string, params map[string]string) (map[string]any, map[string]string, error) {
	t.Helper()
	c, err := catalog.Load(registry.CheckTemplate)
	if err != nil {
		t.Fatal(err)
	}
	doc, values, err := c.Render(name, params)
	if err != nil {
		return nil, nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(doc, &out); err != nil {
		t.Fatalf("rendered %s is not JSON: %v\n%s", name, err, doc)
	}
	return out, values, nil
}

func TestRenderFillsPlaceholders(t *testing.T) {
	doc, values, err := render(t, "microsoft", nil)
	if err != nil {
		t.Fatal(err)
	}
	if doc["token_endpoint"] != "https://login.microsoftonline.com/common/oauth2/v2.0/token" || values["tenant"] != "common" {
		t.Errorf("default tenant: %v %v", doc["token_endpoint"], values)
	}
	doc, values, err = render(t, "zendesk", map[string]string{"subdomain": "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if doc["authorization_endpoint"] != "https://acme.zendesk.com/oauth/authorizations/new" || values["subdomain"] != "acme" {
		t.Errorf("zendesk: %v %v", doc["authorization_endpoint"], values)
	}
	if _, values, err := render(t, "openai", nil); err != nil || values != nil {
		t.Errorf("a template without params: %v %v", values, err)
	}
}

// TestRenderRefusesHostileParams: a value that would move a URL's host (a
// path, user info, a query, a fragment, a port), or break out of its JSON
// string, is refused, naming the param and never quoting the value.
func TestRenderRefusesHostileParams(t *testing.T) {
	for _, tc := range []struct{ template, param, value string }{
		{"zendesk", "subdomain", "evil.com/"},
		{"zendesk", "subdomain", "evil.com#"},
		{"zendesk", "subdomain", "evil.example"}, // a dot: another domain than zendesk.com's
		{"zendesk", "subdomain", "Acme"},
		{"microsoft", "tenant", "evil.com/x"},
		{"microsoft", "tenant", "x@evil.com"},
		{"microsoft", "tenant", "common?x=1"},
		{"microsoft", "tenant", "evil.com:443"},
		{"microsoft", "tenant", `common","token_endpoint":"https://evil.com`},
		{"microsoft", "tenant", "common\n"},
		{"microsoft", "tenant", "../x"},
		{"microsoft", "tenant", strings.Repeat("a", 254)},
		{"okta", "domain", "evil.com/.well-known#"},
		{"salesforce", "login_host", "evil.com"},
		{"salesforce", "login_host", "salesforce.com.evil.com"},
		{"salesforce", "login_host", "evil.com/x.salesforce.com"},
		{"zoho", "accounts_host", "accounts.zoho.com.evil.com"},
		{"generic-oidc", "issuer", "https://user@evil.com"},
		{"generic-oidc", "issuer", "https://evil.com?x"},
		{"generic-oidc", "issuer", "http://evil.com"},
	} {
		_, _, err := render(t, tc.template, map[string]string{tc.param: tc.value})
		if !errors.Is(err, messages.ErrInvalidRequest) || !strings.Contains(err.Error(), "params."+tc.param+": must match") {
			t.Errorf("%s %s=%q: %v, want invalid_request naming params.%s", tc.template, tc.param, tc.value, err, tc.param)
			continue
		}
		if strings.Contains(err.Error(), tc.value) {
			t.Errorf("the error quotes the value: %v", err)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	if _, _, err := render(t, "zendesk", nil); !errors.Is(err, messages.ErrInvalidRequest) || !strings.Contains(err.Error(), "params.subdomain: is required") {
		t.Errorf("missing param: %v", err)
	}
	if _, _, err := render(t, "zendesk", map[string]string{"subdomain": "acme", "tenant": "x"}); !errors.Is(err, messages.ErrInvalidRequest) ||
		!strings.Contains(err.Error(), `has no param "tenant" (it takes subdomain)`) {
		t.Errorf("unknown param: %v", err)
	}
	if _, _, err := render(t, "no-such", nil); !errors.Is(err, messages.ErrNotFound) {
		t.Errorf("unknown template: %v", err)
	}
	c, _ := catalog.Load(registry.CheckTemplate)
	if _, err := c.Get(t.Context(), messages.TemplateRef{}); !errors.Is(err, messages.ErrInvalidRequest) {
		t.Errorf("get without a name: %v", err)
	}
}

// accept is a Check that accepts every document.
func accept(string, json.RawMessage) error { return nil }

// TestParseRefuses: every kind of broken template stops the load, naming
// its file and what is wrong.
func TestParseRefuses(t *testing.T) {
	const good = `"display_name": "Acme", "params": [{"name": "host", "description": "the host", "required": true}],
		"provider": {"type": "oauth2", "authorization_endpoint": "https://{{host}}/authorize", "token_endpoint": "https://{{host}}/token"}`
	for _, tc := range []struct {
		name, file, body string
		check            catalog.Check
		want             string
	}{
		{"not JSON", "acme.json", `{`, accept, "not a template"},
		{"unknown member", "acme.json", `{"name": "acme", "logo": "x", ` + good + `}`, accept, `unknown field "logo"`},
		{"name is not the file's", "acme.json", `{"name": "other", ` + good + `}`, accept, `name "other" must be the file's name, "acme"`},
		{"undeclared placeholder", "acme.json", `{"name": "acme", "display_name": "Acme",
			"provider": {"type": "oauth2", "token_endpoint": "https://{{host}}/token"}}`, accept, "placeholder {{host}} is not a declared param"},
		{"placeholder in a member name", "acme.json", `{"name": "acme", "display_name": "Acme", "params": [{"name": "host", "description": "h", "required": true}],
			"provider": {"type": "oauth2", "token_endpoint": "https://{{host}}/t", "authorization_params": {"{{host}}": "x"}}}`, accept, "may not be in a member name"},
		{"malformed placeholder", "acme.json", `{"name": "acme", "display_name": "Acme", "params": [{"name": "host", "description": "h", "required": true}],
			"provider": {"type": "oauth2", "token_endpoint": "https://{{host}}/t", "authorization_endpoint": "https://{{host/a"}}`, accept, "not well formed"},
		{"escaped placeholder", "acme.json", `{"name": "acme", "display_name": "Acme", "params": [{"name": "host", "description": "h", "required": true}],
			"provider": {"type": "oauth2", "token_endpoint": "https://\u007b{host}}/t"}}`, accept, "a placeholder is left after rendering"},
		{"unused param", "acme.json", `{"name": "acme", "display_name": "Acme", "params": [{"name": "host", "description": "h", "required": true}],
			"provider": {"type": "oauth2"}}`, accept, "params.host: is declared but no placeholder uses it"},
		{"reserved member", "acme.json", `{"name": "acme", "display_name": "Acme", "provider": {"type": "oauth2", "client_id": "x"}}`, accept,
			"provider.client_id: is not for a template to set"},
		{"bad pattern", "acme.json", `{"name": "acme", "display_name": "Acme", "params": [{"name": "host", "description": "h", "required": true, "pattern": "("}],
			"provider": {"token_endpoint": "https://{{host}}/t"}}`, accept, "pattern does not compile"},
		{"default outside the pattern", "acme.json", `{"name": "acme", "display_name": "Acme", "params": [{"name": "host", "description": "h", "default": "a/b"}],
			"provider": {"token_endpoint": "https://{{host}}/t"}}`, accept, "the default does not match the pattern"},
		{"neither default nor required", "acme.json", `{"name": "acme", "display_name": "Acme", "params": [{"name": "host", "description": "h"}],
			"provider": {"token_endpoint": "https://{{host}}/t"}}`, accept, "must have a default or be required"},
		{"no sample fits", "acme.json", `{"name": "acme", "display_name": "Acme", "params": [{"name": "n", "description": "h", "required": true, "pattern": "[0-9]+"}],
			"provider": {"token_endpoint": "https://x.example/{{n}}"}}`, accept, "no sample value"},
		{"rendered document invalid", "acme.json", `{"name": "acme", ` + strings.Replace(good, "https://{{host}}/token", "http://{{host}}/token", 1) + `}`,
			registry.CheckTemplate, "token_endpoint: must use https"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := catalog.Parse(fstest.MapFS{"t/" + tc.file: {Data: []byte(tc.body)}}, "t", tc.check)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "t/"+tc.file) {
				t.Fatalf("err = %v, want one naming t/%s and %q", err, tc.file, tc.want)
			}
		})
	}
	c, err := catalog.Parse(fstest.MapFS{"t/acme.json": {Data: []byte(`{"name": "acme", ` + good + `}`)}}, "t", registry.CheckTemplate)
	if err != nil {
		t.Fatalf("a good template: %v", err)
	}
	if _, _, err := c.Render("acme", map[string]string{"host": "auth.acme.example"}); err != nil {
		t.Fatal(err)
	}
}

// A value goes into its JSON string escaped, even under a pattern that
// lets quotes through.
func TestRenderEscapes(t *testing.T) {
	c, err := catalog.Parse(fstest.MapFS{"t/acme.json": {Data: []byte(`{"name": "acme", "display_name": "Acme",
		"params": [{"name": "v", "description": "anything", "default": "x", "pattern": ".*"}],
		"provider": {"type": "oauth2", "authorization_params": {"p": "{{v}}"}}}`)}}, "t", accept)
	if err != nil {
		t.Fatal(err)
	}
	doc, _, err := c.Render("acme", map[string]string{"v": `a","type":"static`})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Type   string            `json:"type"`
		Params map[string]string `json:"authorization_params"`
	}
	if err := json.Unmarshal(doc, &got); err != nil || got.Type != "oauth2" || got.Params["p"] != `a","type":"static` {
		t.Errorf("rendered %s: %+v %v", doc, got, err)
	}
}
