package natsx

import (
	"errors"
	"strings"
	"testing"

	"github.com/nexus-broker/nexus/messages"
)

func TestDecode(t *testing.T) {
	type body struct {
		ID  string `json:"connection_id"`
		Min *int   `json:"min_valid_seconds"`
	}
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"object", `{"connection_id":"a"}`, true},
		{"unknown field", `{"connection_id":"a","new_field":1}`, false},
		{"empty is an empty object", ``, true},
		{"blank is an empty object", "  \n", true},
		{"null", `null`, true},
		{"truncated", `{"connection_id":`, false},
		{"trailing value", `{"connection_id":"a"} {"b":1}`, false},
		{"not an object", `[1,2]`, false},
		{"wrong type", `{"min_valid_seconds":"soon"}`, false},
		{"garbage", `not json`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b body
			err := Decode([]byte(tc.in), &b)
			if tc.ok && err != nil {
				t.Fatalf("Decode(%q) = %v", tc.in, err)
			}
			if !tc.ok && !errors.Is(err, messages.ErrInvalidRequest) {
				t.Fatalf("Decode(%q) = %v, want invalid_request", tc.in, err)
			}
		})
	}
}

func TestDecodeNamesTheProblem(t *testing.T) {
	type body struct {
		ID  string `json:"connection_id"`
		Min *int   `json:"min_valid_seconds"`
	}
	for _, tc := range []struct{ in, want string }{
		{`{"connection_id":"a","workspace":"w"}`, `unknown field "workspace"`},
		{`{"min_valid_seconds":"soon"}`, `field "min_valid_seconds": expected int`},
		{`[1]`, "must be a JSON object"},
		{`{"connection_id":"a"} {}`, "more than one JSON value"},
		{`{"` + strings.Repeat("x", 500) + `":1}`, strings.Repeat("x", 64) + `..."`},
	} {
		var b body
		err := Decode([]byte(tc.in), &b)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Decode(%.40q) = %v, want it to say %q", tc.in, err, tc.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"connection_id":"a"}`, `{`, ``, `[]`, `{"min_valid_seconds":1e400}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v messages.TokenRequest
		if err := Decode(data, &v); err != nil && !errors.Is(err, messages.ErrInvalidRequest) {
			t.Fatalf("Decode returned a non-contract error: %v", err)
		}
	})
}
