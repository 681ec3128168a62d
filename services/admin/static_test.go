package admin_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/nexus-broker/nexus/messages"
)

// Credential schemas as operators write them: one per common kind of static
// credential.
const (
	apiKeySchema = `{"type":"object","properties":{
		"api_key":{"type":"string","title":"API key","description":"From the dashboard","writeOnly":true,"minLength":8},
		"region":{"type":"string","enum":["eu","us"]}},"required":["api_key"]}`
	basicSchema = `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{
		"username":{"type":"string","title":"User name"},
		"password":{"type":"string","format":"password"},
		"port":{"type":"integer","minimum":1,"maximum":65535},
		"sandbox":{"type":"boolean"}},"required":["username","password"]}`
	awsSchema = `{"type":"object","properties":{
		"access_key_id":{"type":"string","title":"Access key ID","pattern":"^[A-Z0-9]{16,32}$"},
		"secret_access_key":{"type":"string","title":"Secret access key"},
		"session_token":{"type":"string","title":"Session token"}},
		"required":["access_key_id","secret_access_key"]}`
)

func static(name, schema string, st messages.Strategy, aliases ...string) messages.Provider {
	return messages.Provider{Name: name, Aliases: aliases, Type: messages.ProviderStatic,
		CredentialSchema: json.RawMessage(schema), Strategy: &st}
}

var (
	headerStrategy = messages.Strategy{Type: messages.StrategyHeader, Config: map[string]any{"header": "Authorization", "prefix": "Bearer "}}
	basicStrategy  = messages.Strategy{Type: messages.StrategyBasicAuth, Config: map[string]any{}}
	awsStrategy    = messages.Strategy{Type: messages.StrategyAWSSigV4, Config: map[string]any{"service": "s3", "region": "eu-west-1"}}
)

// propertyOrder reads a schema's property names in document order.
func propertyOrder(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var props map[string]json.RawMessage
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(top["properties"], &props); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(top["properties"]))
	dec.Token() // {
	var names []string
	for dec.More() {
		k, _ := dec.Token()
		names = append(names, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return names
}

func TestStaticProvidersCreate(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ver := &messages.Verification{URL: "https://api.example.com/v1/me", Method: "GET", ExpectStatus: 200}
	p := static("openai", apiKeySchema, messages.Strategy{Type: messages.StrategyHeader,
		Config: map[string]any{"header": "Authorization", "prefix": "Bearer ", "field": "api_key"}}, "oai")
	p.Verification = ver
	got := e.create(p)
	if got.Type != messages.ProviderStatic || got.Strategy == nil || got.Strategy.Config["header"] != "Authorization" ||
		got.Verification == nil || *got.Verification != *ver || got.ClientSecretSet {
		t.Fatalf("created: %+v", got)
	}
	if order := propertyOrder(t, got.CredentialSchema); !slices.Equal(order, []string{"api_key", "region"}) {
		t.Errorf("schema property order = %v", order)
	}
	vc := e.vault.lastPut(t)
	if vc.ProviderID != got.ID || vc.Type != messages.ProviderStatic || vc.Strategy == nil || vc.Strategy.Type != messages.StrategyHeader ||
		vc.Verification == nil || *vc.Verification != *ver || !json.Valid(vc.CredentialSchema) ||
		!slices.Equal(propertyOrder(t, vc.CredentialSchema), []string{"api_key", "region"}) {
		t.Errorf("vault received %+v", vc)
	}
	// Read back: nothing hidden, nothing reordered.
	var read messages.Provider
	if err := e.request(messages.SubjectProvidersGet, messages.ProviderRef{Provider: "oai"}, &read); err != nil ||
		read.Verification == nil || !strings.Contains(string(read.CredentialSchema), `"writeOnly":true`) {
		t.Fatalf("get: %+v %v", read, err)
	}

	b := e.create(static("db", basicSchema, basicStrategy))
	if order := propertyOrder(t, b.CredentialSchema); !slices.Equal(order, []string{"username", "password", "port", "sandbox"}) {
		t.Errorf("basic schema order = %v", order)
	}
	// The AWS session token is optional: not required, and may even be absent.
	e.create(static("aws", awsSchema, awsStrategy))
	e.create(static("aws-no-token", `{"type":"object","properties":{"access_key_id":{"type":"string"},"secret_access_key":{"type":"string"}},
		"required":["secret_access_key","access_key_id"]}`, awsStrategy))
	// HTTP too.
	doc, _ := json.Marshal(static("hmac", `{"type":"object","properties":{"secret":{"type":"string"}},"required":["secret"]}`,
		messages.Strategy{Type: messages.StrategyHMACPayload, Config: map[string]any{"header": "X-Sig", "algorithm": "sha256"}}))
	if status, body := e.api(http.MethodPost, "/v1/providers", doc); status != 201 {
		t.Fatalf("HTTP create: %d %s", status, body)
	}
}

func TestStaticProvidersInvalid(t *testing.T) {
	t.Parallel()
	e := setup(t)
	withSchema := func(schema string) messages.Provider { return static("a", schema, headerStrategy) }
	const ok = `{"type":"object","properties":{"api_key":{"type":"string"}},"required":["api_key"]}`
	tests := []struct {
		name string
		p    messages.Provider
		want []string
	}{
		{"schema does not compile", withSchema(`{"type":"object","properties":{"api_key":{"type":"strin"}},"required":["api_key"]}`),
			[]string{"credential_schema: is not a valid JSON Schema (draft 2020-12):", "properties/api_key/type"}},
		{"schema keyword of the wrong type", withSchema(`{"type":"object","properties":{"api_key":{"type":"string","minLength":"8"}},"required":["api_key"]}`),
			[]string{"credential_schema: is not a valid JSON Schema", "minLength"}},
		{"another draft", withSchema(`{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"api_key":{"type":"string"}}}`),
			[]string{"$schema must be https://json-schema.org/draft/2020-12/schema"}},
		{"external reference", withSchema(`{"type":"object","properties":{"api_key":{"$ref":"file:///etc/passwd"}},"required":["api_key"]}`),
			[]string{"credential_schema: is not a valid JSON Schema", "external references are not allowed"}},
		{"not an object schema", withSchema(`{"type":"string"}`), []string{`must have "type": "object"`, `must have "properties"`}},
		{"not JSON object", withSchema(`"x"`), []string{"credential_schema: must be a JSON object"}},
		{"nested object", withSchema(`{"type":"object","properties":{"api_key":{"type":"string"},"extra":{"type":"object","properties":{"x":{"type":"string"}}}},"required":["api_key"]}`),
			[]string{`credential_schema.properties.extra: type "object" cannot be shown in the hosted form: nested objects and arrays are not supported`}},
		{"array", withSchema(`{"type":"object","properties":{"api_key":{"type":"string"},"scopes":{"type":"array","items":{"type":"string"}}},"required":["api_key"]}`),
			[]string{`credential_schema.properties.scopes: type "array" cannot be shown`}},
		{"type list", withSchema(`{"type":"object","properties":{"api_key":{"type":["string","null"]}},"required":["api_key"]}`),
			[]string{"credential_schema.properties.api_key: type must be one type name"}},
		{"no type", withSchema(`{"type":"object","properties":{"api_key":{"minLength":3}},"required":["api_key"]}`),
			[]string{"credential_schema.properties.api_key: needs a type"}},
		{"enum of the wrong type", withSchema(`{"type":"object","properties":{"api_key":{"type":"string"},"n":{"type":"integer","enum":[1,"two"]}},"required":["api_key"]}`),
			[]string{`credential_schema.properties.n: enum value "two" is not of type integer`}},
		{"required names no property", withSchema(`{"type":"object","properties":{"api_key":{"type":"string"}},"required":["api_key","ghost"]}`),
			[]string{`required lists "ghost", which is not in properties`}},
		{"strategy field missing", withSchema(`{"type":"object","properties":{"key":{"type":"string"}},"required":["key"]}`),
			[]string{`the header strategy uses the credential field "api_key": it must be a property and listed in required`}},
		{"strategy field not required", withSchema(`{"type":"object","properties":{"api_key":{"type":"string"}}}`),
			[]string{`the header strategy uses the credential field "api_key": it must be listed in required`}},
		{"strategy field not a string", withSchema(`{"type":"object","properties":{"api_key":{"type":"integer"}},"required":["api_key"]}`),
			[]string{"credential_schema.properties.api_key: the header strategy applies it as text, so its type must be string"}},
		{"basic auth fields", static("a", ok, basicStrategy),
			[]string{`credential field "password"`, `credential field "username"`}},
		{"aws required fields, renamed", static("a", awsSchema, messages.Strategy{Type: messages.StrategyAWSSigV4,
			Config: map[string]any{"service": "s3", "region": "eu-west-1", "secret_access_key_field": "secret"}}),
			[]string{`credential field "secret": it must be a property`}},
		{"strategy config", static("a", ok, messages.Strategy{Type: messages.StrategyHeader, Config: map[string]any{"heder": "X"}}),
			[]string{"strategy.config.heder is not a setting of header", "strategy.config.header is required for header"}},
		{"strategy type", static("a", ok, messages.Strategy{Type: "cookie"}), []string{"strategy.type must be one of"}},
		{"oauth2 strategy", static("a", ok, messages.Strategy{Type: messages.StrategyOAuth2}), []string{"strategy.type: must be one of"}},
		{"verification", func() messages.Provider {
			p := withSchema(ok)
			p.Verification = &messages.Verification{URL: "http://10.1.2.3/me", Method: "DELETE", ExpectStatus: 700}
			return p
		}(), []string{"verification.url: 10.1.2.3 is a private address", "verification.method: must be GET, POST or HEAD", "verification.expect_status: must be an HTTP status"}},
		{"verification without url", func() messages.Provider {
			p := withSchema(ok)
			p.Verification = &messages.Verification{}
			return p
		}(), []string{"verification.url: is required"}},
		{"verification on oauth2", withOAuth(func(p *messages.Provider) { p.Verification = &messages.Verification{URL: "https://x.example.com"} }),
			[]string{"verification: is only for static providers"}},
		{"schema too large", withSchema(`{"type":"object","description":"` + strings.Repeat("x", 33<<10) + `","properties":{"api_key":{"type":"string"}},"required":["api_key"]}`),
			[]string{"credential_schema: must be at most 32 KiB"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { e.refuseCreate(t, tc.p, tc.want...) })
	}
	if n, _ := e.count(); n != 0 || e.vault.putCount() != 0 {
		t.Errorf("after invalid creates: %d providers stored, %d vault puts", n, e.vault.putCount())
	}
	// Loopback verification URLs are fine (tests, local development).
	p := withSchema(ok)
	p.Verification = &messages.Verification{URL: "http://127.0.0.1:9/me"}
	e.create(p)
}

// A schema update goes to the vault (connections made under the old schema
// keep their sealed credentials there), keeps the schema's key order, and
// renaming a provider keeps its id, so connections, which reference the id,
// stay intact.
func TestStaticSchemaUpdateAndRename(t *testing.T) {
	t.Parallel()
	e := setup(t)
	orig := e.create(static("openai", apiKeySchema, headerStrategy, "oai"))

	var upd messages.Provider
	err := e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: "oai", Patch: json.RawMessage(
		`{"credential_schema":{"properties":{"region":null,"org":{"type":"string","title":"Organisation"},"api_key":{"title":"Secret key"}}},
		  "verification":{"url":"https://api.example.com/v1/models"}}`)}, &upd)
	if err != nil {
		t.Fatal(err)
	}
	if upd.ID != orig.ID || upd.Verification == nil || upd.Verification.URL != "https://api.example.com/v1/models" {
		t.Fatalf("updated: %+v", upd)
	}
	if order := propertyOrder(t, upd.CredentialSchema); !slices.Equal(order, []string{"api_key", "org"}) {
		t.Errorf("property order after the patch = %v, want api_key (kept in place) then org (new)", order)
	}
	if !strings.Contains(string(upd.CredentialSchema), `"title":"Secret key"`) || !strings.Contains(string(upd.CredentialSchema), `"writeOnly":true`) {
		t.Errorf("merged schema: %s", upd.CredentialSchema)
	}
	vc := e.vault.lastPut(t)
	if vc.ProviderID != orig.ID || !strings.Contains(string(vc.CredentialSchema), "Organisation") || vc.Verification == nil {
		t.Errorf("vault received %+v", vc)
	}
	// A patch that would break the strategy's fields is refused.
	err = e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: "oai", Patch: json.RawMessage(`{"credential_schema":{"required":[]}}`)}, nil)
	if !errors.Is(err, messages.ErrInvalidRequest) || !strings.Contains(err.Error(), "must be listed in required") {
		t.Fatalf("breaking patch: %v", err)
	}

	// Rename, with new aliases: same id, every new name resolves to it.
	var renamed messages.Provider
	if err := e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: orig.ID,
		Patch: json.RawMessage(`{"name":"openai-platform","aliases":["openai","oai"]}`)}, &renamed); err != nil {
		t.Fatal(err)
	}
	if renamed.ID != orig.ID || renamed.Name != "openai-platform" {
		t.Fatalf("renamed: %+v", renamed)
	}
	for _, ref := range []string{orig.ID, "openai-platform", "openai", "oai"} {
		var got messages.Provider
		if err := e.request(messages.SubjectProvidersGet, messages.ProviderRef{Provider: ref}, &got); err != nil || got.ID != orig.ID {
			t.Errorf("get %q: %q %v", ref, got.ID, err)
		}
	}
	if vc := e.vault.lastPut(t); vc.ProviderID != orig.ID || vc.ProviderName != "openai-platform" {
		t.Errorf("vault received %+v", vc)
	}
	// Removing the verification.
	var noVer messages.Provider
	if err := e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: "openai", Patch: json.RawMessage(`{"verification":null}`)}, &noVer); err != nil || noVer.Verification != nil {
		t.Fatalf("remove verification: %+v %v", noVer, err)
	}
	if vc := e.vault.lastPut(t); vc.Verification != nil {
		t.Errorf("vault still has a verification: %+v", vc.Verification)
	}
}
