package registry

import (
	"encoding/json"
	"testing"

	"github.com/nexus-broker/nexus/messages"
)

// FuzzPatch: any patch body, applied to a stored provider and validated,
// gives a result or an invalid_request, never a panic or another error.
func FuzzPatch(f *testing.F) {
	for _, s := range []string{`{"name":"b"}`, `{"aliases":null}`, `{"authorization_params":{"prompt":null}}`, `[1]`, `null`,
		`{"credential_schema":{"type":"object"}}`, `{"strategy":{"type":"header","config":{"a":1}}}`, `{"scopes":[1]}`, `{"type":"static"}`} {
		f.Add([]byte(s))
	}
	cur := messages.Provider{ID: "prv_1", Name: "a", Aliases: []string{"x"}, Type: messages.ProviderOAuth2,
		AuthorizationEndpoint: "https://e.example/a", TokenEndpoint: "https://e.example/t", ClientID: "c", ClientSecretSet: true,
		ClientAuthMethod: messages.ClientSecretBasic, Scopes: []string{"s"}, AuthorizationParams: map[string]string{"prompt": "consent"}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		patch, err := parsePatch(json.RawMessage(raw))
		if err != nil {
			assertInvalid(t, err)
			return
		}
		ps, err := checkFixed(cur, patch, false)
		if err != nil {
			assertCode(t, err, messages.CodeConflict)
			return
		}
		next, decoded, err := applyPatch(cur, patch)
		if err != nil {
			assertInvalid(t, err)
			return
		}
		if next.ID != cur.ID || next.CreatedAt != cur.CreatedAt {
			t.Fatalf("patch changed a broker field: %+v", next)
		}
		sec := takeSecret(&next)
		normalize(&next)
		ps = append(append(ps, decoded...), validate(next, urlRule{}, sec != "", true, false)...)
		if err := ps.err(); err != nil {
			assertInvalid(t, err)
		}
	})
}

// FuzzDocument: any create body gives a document or an invalid_request.
func FuzzDocument(f *testing.F) {
	for _, s := range []string{`{"name":"a","type":"oauth2"}`, `{"Name":1,"scopes":"x","strategy":{"typo":1}}`, `[1]`, `null`, `{"a":1} 2`, `{"authorization_params":{"a":1}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, ps, err := decodeDocument(raw)
		if err != nil {
			assertInvalid(t, err)
			return
		}
		sec := takeSecret(&p)
		normalize(&p)
		ps = append(ps, validate(p, urlRule{}, sec != "", false, false)...)
		if err := ps.err(); err != nil {
			assertInvalid(t, err)
		}
	})
}

func assertInvalid(t *testing.T, err error) {
	t.Helper()
	assertCode(t, err, messages.CodeInvalidRequest)
}

func assertCode(t *testing.T, err error, code messages.ErrorCode) {
	t.Helper()
	if e, ok := err.(*messages.Error); !ok || e.Code != code {
		t.Fatalf("err = %v, want %s", err, code)
	}
}
