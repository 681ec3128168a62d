package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/egress"
)

func TestURLProblem(t *testing.T) {
	loopback, errs := egress.ParseNetworks("127.0.0.0/8,::1/128")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	tests := []struct {
		url     string
		ok      bool // with PROVIDER_PRIVATE_NETWORKS=127.0.0.0/8,::1/128
		okUnset bool // with it empty
	}{
		{"https://accounts.example.com", true, true},
		{"https://accounts.example.com/tenant/v2.0", true, true},
		{"http://127.0.0.1:8080", true, false},
		{"http://127.3.4.5/x", true, false},
		{"http://[::1]:9000/x", true, false},
		{"http://localhost:9000", true, false},
		{"http://LOCALHOST", true, false},
		{"https://127.0.0.1:8443", true, false},
		{"http://example.com", true, false}, // a name: the guard judges where it resolves
		{"http://10.0.0.1", false, false},
		{"https://10.0.0.1", false, false},
		{"https://169.254.169.254/latest", false, false},
		{"http://localhost.example.com", true, false},
		{"ftp://example.com", false, false},
		{"/relative", false, false},
		{"https://", false, false},
		{"https://user:pw@example.com", false, false},
		{"https://example.com/#frag", false, false},
		{"", false, false},
	}
	for _, tc := range tests {
		if got := urlRule(loopback).problem(tc.url); (got == "") != tc.ok {
			t.Errorf("problem(%q) with loopback listed = %q, want ok=%v", tc.url, got, tc.ok)
		}
		if got := (urlRule{}).problem(tc.url); (got == "") != tc.okUnset {
			t.Errorf("problem(%q) with nothing listed = %q, want ok=%v", tc.url, got, tc.okUnset)
		}
	}
	if (urlRule{}).issuerProblem("https://example.com/?tenant=1") == "" {
		t.Error("an issuer with a query was accepted")
	}
}

func TestNameProblem(t *testing.T) {
	for n, ok := range map[string]bool{
		"github": true, "google-workspace": true, "a.b_c-9": true, strings.Repeat("x", 64): true,
		"": false, "GitHub": false, "has space": false, "ünï": false, strings.Repeat("x", 65): false, "prv_abc": false, "a/b": false,
	} {
		if got := nameProblem(n); (got == "") != ok {
			t.Errorf("nameProblem(%q) = %q, want ok=%v", n, got, ok)
		}
	}
}

// RFC 7396 appendix A.
func TestMergePatchRFC7396(t *testing.T) {
	tests := []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
	}
	for _, tc := range tests {
		var target, patch, want any
		must(t, json.Unmarshal([]byte(tc.target), &target))
		must(t, json.Unmarshal([]byte(tc.patch), &patch))
		must(t, json.Unmarshal([]byte(tc.want), &want))
		if got := mergePatch(target, patch); !reflect.DeepEqual(got, want) {
			t.Errorf("merge %s with %s = %v, want %s", tc.target, tc.patch, got, tc.want)
		}
	}
}

func TestApplyPatchKeepsBrokerFields(t *testing.T) {
	cur := messages.Provider{ID: "prv_1", Name: "a", Type: messages.ProviderStatic, ClientSecretSet: true,
		CredentialSchema: json.RawMessage(`{"type":"object","properties":{"n":{"type":"integer","maximum":12345678901234567890}}}`)}
	next, ps, err := applyPatch(cur, map[string]any{"name": "b", "id": "prv_2", "client_secret_set": false})
	if err != nil || len(ps) != 0 {
		t.Fatal(err, ps)
	}
	if next.ID != "prv_1" || next.Name != "b" || !next.ClientSecretSet || !strings.Contains(string(next.CredentialSchema), "12345678901234567890") {
		t.Errorf("next = %+v (%s)", next, next.CredentialSchema)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	id, ok := decodeCursor(encodeCursor("prv_abc"))
	if !ok || id != "prv_abc" {
		t.Errorf("round trip: %q %v", id, ok)
	}
	for _, bad := range []string{"!!", "cHJ2X2FiYw", encodeCursor("")[:2]} {
		if _, ok := decodeCursor(bad); ok {
			t.Errorf("decodeCursor(%q) accepted", bad)
		}
	}
}

func TestSecretIsRedacted(t *testing.T) {
	s := secret("hunter2-very-secret")
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("x", "secret", s, "any", any(s))
	out := buf.String() + fmt.Sprint(s) + fmt.Sprintf("%v %+v %#v %s %q %x", s, s, s, s, s, s)
	if strings.Contains(out, "hunter2") {
		t.Errorf("secret printed: %s", out)
	}
	p := messages.Provider{ClientSecret: "hunter2"}
	if got := takeSecret(&p); string(got) != "hunter2" || p.ClientSecret != "" {
		t.Errorf("takeSecret: %q, left %q", got, p.ClientSecret)
	}
}

func TestIDs(t *testing.T) {
	a, b := newID(), newID()
	if a == b || len(a) != len(IDPrefix)+32 || !strings.HasPrefix(a, IDPrefix) || nameProblem(a) == "" {
		t.Errorf("ids %q %q", a, b)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestOrderedMergeKeepsKeyOrder(t *testing.T) {
	tests := []struct{ target, patch, want string }{
		{`{"z":1,"a":{"y":1,"b":2},"m":3}`, `{"a":{"b":null,"c":4},"n":5,"z":null}`, `{"a":{"y":1,"c":4},"m":3,"n":5}`},
		{``, `{"b":1,"a":{"x":null,"w":2}}`, `{"b":1,"a":{"w":2}}`},
		{`{"a":1}`, `[1,{"b":2}]`, `[1,{"b":2}]`},
		{`{"a":[1,2]}`, `{"a":{"q":"x"}}`, `{"a":{"q":"x"}}`},
		{`{"n":1.50,"s":"\u00e9"}`, `{"t":true}`, `{"n":1.50,"s":"é","t":true}`},
	}
	for _, tc := range tests {
		got, err := orderedMerge(json.RawMessage(tc.target), json.RawMessage(tc.patch))
		if err != nil || string(got) != tc.want {
			t.Errorf("orderedMerge(%s, %s) = %s, %v; want %s", tc.target, tc.patch, got, err, tc.want)
		}
	}
	if _, err := orderedMerge(nil, json.RawMessage(`{"a":1} x`)); err == nil {
		t.Error("trailing data accepted")
	}
}
