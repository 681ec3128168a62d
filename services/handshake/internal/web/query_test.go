package web

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func manyParams(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf("p%02d=%d", i, i))
	}
	return strings.Join(parts, "&")
}

func firstParams(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf("p%02d", i)] = fmt.Sprint(i)
	}
	return m
}

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
		{"error, its description never read", "error=access_denied&error_description=User+said+no&state=s", callbackQuery{State: "s", Error: "access_denied"}, false},
		{"an error code of no standard", "error=%3Cscript%3EBad+Code&state=s", callbackQuery{State: "s", Error: "provider_error"}, false},
		{"a made-up error code", "error=please_call_0800_123456&state=s", callbackQuery{State: "s", Error: "provider_error"}, false},
		{"empty error", "error=&state=s", callbackQuery{State: "s", Error: "provider_error"}, false},
		{"repeated state", "state=a&state=b", callbackQuery{}, true},
		{"repeated code", "code=a&code=b&state=s", callbackQuery{}, true},
		{"bad escape", "state=%zz", callbackQuery{}, true},
		{"too long", "state=" + strings.Repeat("a", 9000), callbackQuery{}, true},
		{"other parameters passed on (QuickBooks realmId)", "code=abc&state=s&realmId=4620816365&error_uri=x",
			callbackQuery{Code: "abc", State: "s", Params: map[string]string{"realmId": "4620816365"}}, false},
		{"a repeated other parameter is dropped", "code=abc&state=s&shop=a&shop=b", callbackQuery{Code: "abc", State: "s"}, false},
		{"at most 16 others, the first names in order", "code=c&state=s&" + manyParams(20),
			callbackQuery{Code: "c", State: "s", Params: firstParams(16)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCallbackQuery(tt.raw)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
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
		if q.Error != "" && q.Error != "provider_error" && !knownErrors[q.Error] {
			t.Fatalf("an error code of no standard was kept: %q", q.Error)
		}
	})
}
