package messages

import (
	"reflect"
	"testing"
)

func TestStrategyValidateAndFields(t *testing.T) {
	for _, tc := range []struct {
		name   string
		s      Strategy
		ok     bool
		fields []StrategyField
	}{
		{"header with defaults", Strategy{Type: StrategyHeader, Config: map[string]any{"header": "X-Api-Key"}}, true, []StrategyField{{Name: "api_key", Secret: true}}},
		{"header with prefix and field", Strategy{Type: StrategyHeader, Config: map[string]any{"header": "Authorization", "prefix": "Bearer ", "field": "token"}}, true, []StrategyField{{Name: "token", Secret: true}}},
		{"header without header", Strategy{Type: StrategyHeader, Config: map[string]any{}}, false, nil},
		{"query_param", Strategy{Type: StrategyQueryParam, Config: map[string]any{"param": "key"}}, true, []StrategyField{{Name: "api_key", Secret: true}}},
		{"basic_auth", Strategy{Type: StrategyBasicAuth, Config: map[string]any{}}, true, []StrategyField{{Name: "password", Secret: true}, {Name: "username"}}},
		{"aws_sigv4", Strategy{Type: StrategyAWSSigV4, Config: map[string]any{"service": "s3", "region": "eu-west-1"}}, true,
			[]StrategyField{{Name: "access_key_id"}, {Name: "secret_access_key", Secret: true}, {Name: "session_token", Optional: true, Secret: true}}},
		{"aws_sigv4 without region", Strategy{Type: StrategyAWSSigV4, Config: map[string]any{"service": "s3"}}, false, nil},
		{"hmac_payload", Strategy{Type: StrategyHMACPayload, Config: map[string]any{"header": "X-Sig", "algorithm": "sha256"}}, true, []StrategyField{{Name: "secret", Secret: true}}},
		{"hmac_payload bad algorithm", Strategy{Type: StrategyHMACPayload, Config: map[string]any{"header": "X-Sig", "algorithm": "md5"}}, false, nil},
		{"unknown setting", Strategy{Type: StrategyQueryParam, Config: map[string]any{"param": "k", "evil": "x"}}, false, nil},
		{"non-string setting", Strategy{Type: StrategyQueryParam, Config: map[string]any{"param": 3}}, false, nil},
		{"oauth2 is not static", Strategy{Type: StrategyOAuth2}, false, nil},
		{"unknown type", Strategy{Type: "magic"}, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && !reflect.DeepEqual(tc.s.Fields(), tc.fields) {
				t.Fatalf("Fields() = %+v, want %+v", tc.s.Fields(), tc.fields)
			}
		})
	}
}

func TestValidScope(t *testing.T) {
	for s, want := range map[string]bool{
		"openid": true, "https://www.googleapis.com/auth/gmail.readonly": true, "repo:status": true,
		"": false, "two words": false, "tab\t": false, `quote"`: false, `back\slash`: false, "é": false,
		string(make([]byte, MaxScopeLen+1)): false,
	} {
		if got := ValidScope(s); got != want {
			t.Errorf("ValidScope(%.20q) = %v, want %v", s, got, want)
		}
	}
}
