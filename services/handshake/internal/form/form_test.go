package form

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func names(f *Form) []string {
	var out []string
	for _, fd := range f.Fields {
		out = append(out, fd.Name)
	}
	return out
}

func TestOrder(t *testing.T) {
	tests := []struct {
		name, schema string
		want         []string
	}{
		{"document order", `{"required":["b"],"type":"object","properties":{"zeta":{"type":"string"},"b":{"type":"string"},"alpha":{"type":"string"}}}`,
			[]string{"zeta", "b", "alpha"}},
		{"x-order first, then document order", `{"type":"object","properties":{"c":{"type":"string"},"b":{"type":"string","x-order":2},"a":{"type":"string","x-order":1},"d":{"type":"string"}}}`,
			[]string{"a", "b", "c", "d"}},
		{"nested properties do not confuse it", `{"type":"object","$defs":{"x":{"properties":{"q":{}}}},"properties":{"y":{"type":"string","properties":{"inner":{}}},"x":{"type":"string"}}}`,
			[]string{"y", "x"}},
	}
	for _, tc := range tests {
		f, err := Parse(json.RawMessage(tc.schema))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := names(f); !slices.Equal(got, tc.want) {
			t.Errorf("%s: order %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSecretRule(t *testing.T) {
	tests := []struct {
		prop     string
		schema   string
		strategy bool // the strategy applies this field
		secret   bool
	}{
		{"api_key", `{"type":"string"}`, false, true},
		{"ClientSecret", `{"type":"string"}`, false, true},
		{"password", `{"type":"string"}`, false, true},
		{"refresh_token", `{"type":"string"}`, false, true},
		{"pin", `{"type":"string","writeOnly":true}`, false, true},
		{"pin", `{"type":"string","format":"password"}`, false, true},
		{"access_key_id", `{"type":"string","writeOnly":false}`, false, false},
		{"username", `{"type":"string"}`, false, false},
		{"token_count", `{"type":"integer"}`, false, false},
		{"pat", `{"type":"string"}`, true, true},
		{"credential", `{"type":"string"}`, true, true},
		{"access_key_id", `{"type":"string","writeOnly":false}`, true, false},
	}
	for _, tc := range tests {
		var strategy []string
		if tc.strategy {
			strategy = []string{tc.prop}
		}
		f, err := Parse(json.RawMessage(fmt.Sprintf(`{"type":"object","properties":{%q:%s}}`, tc.prop, tc.schema)), strategy...)
		if err != nil {
			t.Fatal(err)
		}
		fd := f.Fields[0]
		if fd.Secret != tc.secret || (fd.Kind == KindPassword) != tc.secret {
			t.Errorf("%s %s: secret=%v kind=%s, want secret=%v", tc.prop, tc.schema, fd.Secret, fd.Kind, tc.secret)
		}
	}
	// A secret's default is never shown.
	f, _ := Parse(json.RawMessage(`{"type":"object","properties":{"api_key":{"type":"string","default":"sk-default"},"host":{"type":"string","default":"db.local"}}}`))
	if f.Fields[0].Default != "" || f.Fields[1].Default != "db.local" {
		t.Errorf("defaults: %+v", f.Fields)
	}
}

func TestUnusable(t *testing.T) {
	for _, s := range []string{
		``, `[]`, `{"type":"object"}`, `{"type":"object","properties":{"x":{"type":"object"}}}`,
		`{"type":"object","properties":{"x":{"$ref":"file:///etc/passwd"}}}`, `{"type":"object","properties":{"x":{"type":"nope"}}}`,
	} {
		if _, err := Parse(json.RawMessage(s)); !errors.Is(err, ErrUnusable) {
			t.Errorf("Parse(%s) = %v, want ErrUnusable", s, err)
		}
	}
}

func TestRead(t *testing.T) {
	f, err := Parse(json.RawMessage(`{"type":"object","properties":{
		"user":{"type":"string","format":"email"},
		"secret":{"type":"string","minLength":4},
		"n":{"type":"integer","maximum":10},
		"x":{"type":"number"},
		"on":{"type":"boolean"},
		"tier":{"type":"integer","enum":[1,2]},
		"opt":{"type":"string"}},
		"required":["user","secret","n"]}`))
	if err != nil {
		t.Fatal(err)
	}
	creds, errs := f.Read(url.Values{"user": {" a@example.com "}, "secret": {" s p "}, "n": {"7"}, "x": {"-1.5e3"}, "on": {"true"}, "tier": {"2"}, "opt": {""}})
	if len(errs) != 0 {
		t.Fatalf("errs = %v", errs)
	}
	got, _ := json.Marshal(map[string]any(creds))
	if want := `{"n":7,"on":true,"secret":" s p ","tier":2,"user":"a@example.com","x":-1.5e3}`; string(got) != want {
		t.Errorf("credentials %s, want %s", got, want)
	}
	_, errs = f.Read(url.Values{"user": {"not-an-email"}, "secret": {"abc"}, "n": {"11"}, "x": {"1,5"}, "tier": {"3"}})
	want := Errors{"user": "Enter a valid email.", "secret": "Enter at least 4 characters.", "x": "Enter a number.", "tier": "Choose one of the allowed values."}
	for k, v := range want {
		if errs[k] != v {
			t.Errorf("error for %s = %q, want %q", k, errs[k], v)
		}
	}
	if errs["n"] != "Enter at most 10." {
		t.Errorf("error for n = %q", errs["n"])
	}
	for k, v := range errs {
		if strings.Contains(v, "abc") {
			t.Errorf("error for %s repeats the secret: %q", k, v)
		}
	}
	if _, errs := f.Read(url.Values{}); errs["user"] != "This field is required." || errs["n"] != "This field is required." {
		t.Errorf("missing: %v", errs)
	}
	kept := f.Kept(url.Values{"user": {"u"}, "secret": {"s"}, "n": {"1"}})
	if kept["user"] != "u" || kept["n"] != "1" || kept["secret"] != "" {
		t.Errorf("kept = %v", kept)
	}
}

func TestCredentialsAreRedacted(t *testing.T) {
	c := Credentials{"api_key": "sk-SECRET"}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "c", c)
	for _, s := range []string{b.String(), fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c)} {
		if strings.Contains(s, "sk-SECRET") || !strings.Contains(s, "[redacted]") {
			t.Errorf("printed: %s", s)
		}
	}
}
