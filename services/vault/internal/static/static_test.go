package static

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/nexus-broker/nexus/messages"
)

func TestSelect(t *testing.T) {
	aws := messages.Strategy{Type: messages.StrategyAWSSigV4, Config: map[string]any{"service": "s3", "region": "eu-west-1"}}
	tests := []struct {
		name    string
		st      messages.Strategy
		creds   map[string]any
		used    map[string]any
		missing []string
	}{
		{"extra properties stay out", aws, map[string]any{"access_key_id": "a", "secret_access_key": "s", "note": "n"},
			map[string]any{"access_key_id": "a", "secret_access_key": "s"}, nil},
		{"optional present", aws, map[string]any{"access_key_id": "a", "secret_access_key": "s", "session_token": "t"},
			map[string]any{"access_key_id": "a", "secret_access_key": "s", "session_token": "t"}, nil},
		{"optional empty or null", aws, map[string]any{"access_key_id": "a", "secret_access_key": "s", "session_token": nil},
			map[string]any{"access_key_id": "a", "secret_access_key": "s"}, nil},
		{"optional not text", aws, map[string]any{"access_key_id": "a", "secret_access_key": "s", "session_token": json.Number("1")},
			map[string]any{"access_key_id": "a", "secret_access_key": "s"}, []string{"session_token"}},
		{"required empty, missing, number", messages.Strategy{Type: messages.StrategyBasicAuth, Config: map[string]any{}},
			map[string]any{"username": "", "password": json.Number("5")}, map[string]any{}, []string{"password", "username"}},
		{"renamed field", messages.Strategy{Type: messages.StrategyHeader, Config: map[string]any{"header": "X", "field": "token"}},
			map[string]any{"api_key": "k", "token": "t"}, map[string]any{"token": "t"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			used, missing := Select(tt.st, tt.creds)
			if !reflect.DeepEqual(used, tt.used) || !reflect.DeepEqual(missing, tt.missing) {
				t.Fatalf("Select = %v, %v; want %v, %v", used, missing, tt.used, tt.missing)
			}
			var inv *InvalidError
			if err := Check(tt.st, tt.creds); (err == nil) != (tt.missing == nil) || (err != nil && !errors.As(err, &inv)) {
				t.Fatalf("Check = %v", err)
			}
		})
	}
}

func TestSchemasCompileOnce(t *testing.T) {
	s := NewSchemas()
	raw := json.RawMessage(`{"type":"object"}`)
	a, h1, err := s.Get(raw)
	if err != nil {
		t.Fatal(err)
	}
	b, h2, _ := s.Get(raw)
	if a != b || h1 != h2 || h1 != SchemaHash(raw) {
		t.Fatal("the same schema was compiled twice")
	}
	if _, _, err := s.Get(json.RawMessage(`{"type":7}`)); err == nil {
		t.Fatal("an invalid schema compiled")
	}
}

const fuzzSchema = `{"type":"object","properties":{
	"api_key":{"type":"string","minLength":3,"maxLength":40,"pattern":"^k"},
	"count":{"type":"integer","minimum":1},
	"kind":{"enum":["a","b"]},
	"email":{"type":"string","format":"email"},
	"fixed":{"const":"c"},
	"nested":{"type":"object","properties":{"inner":{"type":"string","pattern":"^i"}},"additionalProperties":false}
},"required":["api_key"],"additionalProperties":false}`

// FuzzValidateNeverEchoesValues: whatever the credentials, the refusal
// names fields and rules, never a value.
func FuzzValidateNeverEchoesValues(f *testing.F) {
	sch, err := Compile(json.RawMessage(fuzzSchema))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"", "k", "x", "abc", "1", "a@b", "k-valid"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := "zq" + s + "qz" // a marker no message contains by chance
		creds := map[string]any{"api_key": v, "count": v, "kind": v, "email": v, "fixed": v,
			"nested": map[string]any{"inner": v}, "other": v}
		err := Validate(sch, creds)
		if err == nil {
			t.Fatal("accepted")
		}
		if strings.Contains(err.Error(), v) {
			t.Fatalf("message echoes the value: %v", err)
		}
		raw, _ := json.Marshal(creds)
		if _, err := Decode(raw); err != nil {
			t.Fatal(err)
		}
	})
}
