package natsx

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"

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
		// A name given twice: one parser would read the first, another the last.
		{`{"connection_id":"a","connection_id":"b"}`, `field "connection_id" given more than once`},
		// Names match exactly: encoding/json would have folded the case.
		{`{"Connection_ID":"a"}`, `unknown field "Connection_ID"`},
		{"{\"connection_id\":\"a\xff\"}", "malformed JSON"},
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

// BenchmarkDecode is the cost of reading a tokens.get request (which takes
// the fast path, fastdecode.go), against the general decoder and
// encoding/json's plain Unmarshal (which would let unknown and duplicated
// fields through): go test -run '^$' -bench Decode ./shared/natsx
func BenchmarkDecode(b *testing.B) {
	body := []byte(`{"connection_id":"01a23164-90e4-7b9e-9415-a2a74b385532","workspace_id":"ws-1"}`)
	b.Run("strict", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v messages.TokenRequest
			if err := Decode(body, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("general", func(b *testing.B) { // the JSON v2 decoder alone, as for a body the fast path leaves
		b.ReportAllocs()
		for b.Loop() {
			var v messages.TokenRequest
			if err := jsonv2.Unmarshal(body, &v, jsonv2.RejectUnknownMembers(true)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json-unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v messages.TokenRequest
			if err := json.Unmarshal(body, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
