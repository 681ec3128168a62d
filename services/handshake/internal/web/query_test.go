package web

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseCallbackQuery(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    callbackQuery
		wantErr bool
	}{
		{"code", "code=abc&state=s1", callbackQuery{Code: "abc", State: "s1"}, false},
		{"iss", "code=abc&state=s1&iss=https%3A%2F%2Fidp.example.com", callbackQuery{Code: "abc", State: "s1", Iss: "https://idp.example.com", HasIss: true}, false},
		{"empty iss counts as present", "code=abc&state=s1&iss=", callbackQuery{Code: "abc", State: "s1", HasIss: true}, false},
		{"error", "error=access_denied&error_description=User+said+no&state=s", callbackQuery{State: "s", Error: "access_denied", ErrorDescription: "User said no"}, false},
		{"error sanitised", "error=%3Cscript%3EBad+Code&state=s", callbackQuery{State: "s", Error: "scriptbadcode"}, false},
		{"error all junk", "error=%3C%3E&state=s", callbackQuery{State: "s", Error: "provider_error"}, false},
		{"description control chars", "error=x&error_description=a%00b%0Ac%1B", callbackQuery{Error: "x", ErrorDescription: "ab c"}, false},
		{"repeated state", "state=a&state=b", callbackQuery{}, true},
		{"repeated code", "code=a&code=b&state=s", callbackQuery{}, true},
		{"bad escape", "state=%zz", callbackQuery{}, true},
		{"too long", "state=" + strings.Repeat("a", 9000), callbackQuery{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCallbackQuery(tt.raw)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseCallbackQuery(f *testing.F) {
	for _, s := range []string{"code=abc&state=s", "error=access_denied&error_description=%E2%9C%93", "iss=&state=", "a=%", ";;&&=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseCallbackQuery(raw)
		if err != nil {
			return
		}
		if len(q.Error) > maxErrorCode {
			t.Fatalf("error code too long: %d", len(q.Error))
		}
		for _, r := range q.Error {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
				t.Fatalf("error code has %q", r)
			}
		}
		if !utf8.ValidString(q.ErrorDescription) || utf8.RuneCountInString(q.ErrorDescription) > maxDescription+3 {
			t.Fatalf("description not sanitised: %q", q.ErrorDescription)
		}
		for _, r := range q.ErrorDescription {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("description has control char %q", r)
			}
		}
	})
}
