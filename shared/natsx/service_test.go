package natsx

import (
	"errors"
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
		{"unknown fields are tolerated", `{"connection_id":"a","new_field":1}`, true},
		{"empty", ``, false},
		{"blank", "  \n", false},
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
