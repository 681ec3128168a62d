package admin_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// One reply lists every problem of a document, in the order of its fields:
// unknown members first, then id, name, aliases, type, issuer, the
// endpoints, client_id, client_secret, ..., credential_schema, strategy,
// verification.
func TestEveryProblemAtOnceInFieldOrder(t *testing.T) {
	t.Parallel()
	e := setup(t)
	tests := []struct {
		name, doc string
		want      string // the whole message
	}{
		{"empty", `{}`,
			`invalid provider: name: is required; type: is required (oidc, oauth2 or static)`},
		{"oauth2 missing endpoint and client", `{"name":"x","type":"oauth2","authorization_endpoint":"https://a.example/authorize"}`,
			`invalid provider: token_endpoint: is required; client_id: is required; client_secret: is required`},
		{"unknown members, wrong types and missing fields", `{"nmae":"x","Type":"oauth2","scopes":"repo","name":5,"client_secret":12345}`,
			`invalid provider: unknown field "nmae"; unknown field "Type" (did you mean "type"?); name: must be a string; type: is required (oidc, oauth2 or static); client_secret: must be a string; scopes: must be an array of strings`},
		{"static, out of order before", `{"name":"x","type":"static","client_secret":"s","scopes":["a"],"strategy":{"typo":1},"id":"prv_1"}`,
			`invalid provider: id: is assigned by the broker; leave it out (to change an existing provider, update it); client_secret: static providers have no client secret; scopes: is not used by static providers; credential_schema: is required for static providers (a JSON Schema object); strategy: unknown field "typo"`},
		{"nested wrong type", `{"name":"x","type":"static","strategy":{"type":5},"aliases":[1]}`,
			`invalid provider: aliases: must be an array of strings; credential_schema: is required for static providers (a JSON Schema object); strategy.type: must be a string`},
		{"discovery after the name", `{"type":"oidc","name":"Bad","issuer":"http://127.0.0.1:1","client_id":"c","client_secret":"s"}`,
			`invalid provider: name: may contain only lowercase letters, digits, '-', '_' and '.'; issuer: discovery at http://127.0.0.1:1/.well-known/openid-configuration failed`},
		{"strategy problems before verification", `{"name":"x","type":"oauth2","verification":{"url":"https://v.example"},"strategy":{"type":"nope"},"authorization_endpoint":"https://a.example/a","token_endpoint":"https://a.example/t","client_id":"c","client_secret":"s"}`,
			`invalid provider: strategy.type: is not a known strategy; verification: is only for static providers`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.request(messages.SubjectProvidersCreate, []byte(tc.doc), nil)
			var me *messages.Error
			if !errors.As(err, &me) || me.Code != messages.CodeInvalidRequest || !strings.HasPrefix(me.Message, tc.want) {
				t.Errorf("NATS:\n got %v\nwant %s", err, tc.want)
			}
			status, body := e.api(http.MethodPost, "/v1/providers", []byte(tc.doc))
			var eb messages.ErrorBody
			if status != 400 || json.Unmarshal(body, &eb) != nil || eb.Error == nil || !strings.HasPrefix(eb.Error.Message, tc.want) {
				t.Errorf("HTTP:\n got %d %s\nwant %s", status, body, tc.want)
			}
			if strings.Contains(string(body), "12345") {
				t.Errorf("the reply quotes a client_secret value: %s", body)
			}
		})
	}
	for _, doc := range []string{`[1]`, `null`, `"x"`} {
		if err := e.request(messages.SubjectProvidersCreate, []byte(doc), nil); !errors.Is(err, messages.ErrInvalidRequest) ||
			!strings.Contains(err.Error(), "must be a JSON object") {
			t.Errorf("create %s: %v", doc, err)
		}
	}
	// A patch too: every problem of the patched document, broker fields
	// and unknown members included.
	e.create(oauth2Provider("github", "s"))
	err := e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: "github",
		Patch: json.RawMessage(`{"scopes":"repo","id":"prv_other","nmae":"x","name":"GitHub","strategy":{"typo":1}}`)}, nil)
	want := `invalid provider: unknown field "nmae"; id: is set by the broker and cannot be changed; name: may contain only lowercase letters, digits, '-', '_' and '.'; scopes: must be an array of strings; strategy: unknown field "typo"`
	if err == nil || err.Error() != "invalid_request: "+want {
		t.Errorf("patch:\n got %v\nwant %s", err, want)
	}
}

// A document read with get can be edited and sent back whole as a patch:
// the broker's fields are accepted with the values they have. A document
// older than the provider is a conflict, so a stale copy cannot undo a
// change made since. Sent to create, it is refused for its id.
func TestGetEditSendBack(t *testing.T) {
	t.Parallel()
	e := setup(t)
	orig := e.create(oauth2Provider("github", "s", "gh"))

	status, body := e.api(http.MethodGet, "/v1/providers/github", nil)
	if status != 200 {
		t.Fatalf("GET: %d %s", status, body)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"id", "client_secret_set", "created_at", "updated_at"} {
		if _, ok := doc[f]; !ok {
			t.Fatalf("GET has no %s, so this proves nothing: %s", f, body)
		}
	}
	edit := func(changes map[string]any) []byte {
		d := map[string]any{}
		for k, v := range doc {
			d[k] = v
		}
		for k, v := range changes {
			d[k] = v
		}
		b, _ := json.Marshal(d)
		return b
	}

	// Whole document back, edited, over HTTP with application/json.
	status, body = e.do(http.MethodPatch, "/v1/providers/github", "application/json", "Bearer "+apiKey,
		edit(map[string]any{"scopes": []string{"repo", "read:org"}, "aliases": []string{"gh", "octo"}}))
	var got messages.Provider
	if status != 200 || json.Unmarshal(body, &got) != nil || got.ID != orig.ID || len(got.Scopes) != 2 || len(got.Aliases) != 2 ||
		!got.UpdatedAt.After(orig.UpdatedAt) || !got.CreatedAt.Equal(orig.CreatedAt) || !got.ClientSecretSet {
		t.Fatalf("PATCH with the edited document: %d %s", status, body)
	}
	// With a new secret, client_secret_set may stay true; on NATS too.
	doc2 := map[string]any{}
	_ = json.Unmarshal(body, &doc2)
	doc2["client_secret"] = "s2"
	raw, _ := json.Marshal(doc2)
	if err := e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: "github", Patch: raw}, &got); err != nil || e.vault.secret(orig.ID) != "s2" {
		t.Fatalf("NATS update with the read document and a new secret: %v", err)
	}

	// The first copy is now stale: conflict, and nothing changes.
	status, body = e.api(http.MethodPatch, "/v1/providers/github", edit(map[string]any{"scopes": []string{"stale"}}))
	var eb messages.ErrorBody
	if status != http.StatusConflict || json.Unmarshal(body, &eb) != nil || eb.Error == nil || eb.Error.Code != messages.CodeConflict ||
		!strings.Contains(eb.Error.Message, "read it again") {
		t.Errorf("PATCH with a stale document: %d %s", status, body)
	}
	var now messages.Provider
	if err := e.request(messages.SubjectProvidersGet, messages.ProviderRef{Provider: "github"}, &now); err != nil || !now.UpdatedAt.Equal(got.UpdatedAt) {
		t.Errorf("the stale patch changed the provider: %+v %v", now, err)
	}

	// Broker fields with other values are refused, each named.
	fresh := map[string]any{}
	b, _ := json.Marshal(now)
	_ = json.Unmarshal(b, &fresh)
	doc = fresh
	for _, tc := range []struct {
		name    string
		changes map[string]any
		want    string
	}{
		{"id", map[string]any{"id": "prv_00000000000000000000000000000000"}, "id: is set by the broker and cannot be changed"},
		{"created_at", map[string]any{"created_at": time.Now().UTC().Format(time.RFC3339)}, "created_at: is set by the broker"},
		{"client_secret_set", map[string]any{"client_secret_set": false}, "client_secret_set: is set by the broker"},
		{"updated_at not a time", map[string]any{"updated_at": "yesterday"}, "updated_at: is set by the broker"},
		{"unknown member", map[string]any{"extra": 1}, `unknown field "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.api(http.MethodPatch, "/v1/providers/github", edit(tc.changes))
			var eb messages.ErrorBody
			if status != 400 || json.Unmarshal(body, &eb) != nil || eb.Error == nil || !strings.Contains(eb.Error.Message, tc.want) {
				t.Errorf("%d %s, want 400 saying %q", status, body, tc.want)
			}
		})
	}

	// To create: the id is refused, the rest of the broker's fields ignored.
	status, body = e.api(http.MethodPost, "/v1/providers", edit(map[string]any{"name": "github-copy", "aliases": []string{}, "client_secret": "s"}))
	if status != 400 || !strings.Contains(string(body), "id: is assigned by the broker; leave it out") {
		t.Errorf("POST of a read document: %d %s", status, body)
	}
	status, body = e.api(http.MethodPost, "/v1/providers", edit(map[string]any{"id": nil, "name": "github-copy", "aliases": []string{}, "client_secret": "s"}))
	var copied messages.Provider
	if status != 201 || json.Unmarshal(body, &copied) != nil || copied.ID == orig.ID || !copied.CreatedAt.After(orig.CreatedAt) {
		t.Errorf("POST of a read document without its id: %d %s", status, body)
	}
}

// An oidc document sent back with only its issuer edited carries the old
// issuer's endpoints: they are rediscovered, not kept as overrides.
func TestGetEditIssuerRediscovers(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.create(e.oidcProvider("acme", "s"))
	op2, err := oidcprovider.New(oidcprovider.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer op2.Close()
	_, body := e.api(http.MethodGet, "/v1/providers/acme", nil)
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	doc["issuer"] = op2.Issuer()
	doc["token_endpoint"] = "https://proxy.example.com/token" // an explicit new value stays
	raw, _ := json.Marshal(doc)
	status, body := e.api(http.MethodPatch, "/v1/providers/acme", raw)
	var got messages.Provider
	if status != 200 || json.Unmarshal(body, &got) != nil {
		t.Fatalf("PATCH: %d %s", status, body)
	}
	if got.AuthorizationEndpoint != op2.Issuer()+"/authorize" || got.JWKSURI != op2.Issuer()+"/jwks" || got.TokenEndpoint != "https://proxy.example.com/token" {
		t.Errorf("after the issuer change: %+v", got)
	}
}
