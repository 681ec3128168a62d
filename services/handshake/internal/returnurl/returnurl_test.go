package returnurl

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func mustParse(t testing.TB, entries ...string) *Allowlist {
	t.Helper()
	a, err := Parse(entries)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestCheck(t *testing.T) {
	a := mustParse(t, "https://app.example.com/cb", "http://localhost:3000", "https://Other.Example.com:8443/x/", "https://root.example.com/")
	tests := []struct {
		name string
		raw  string
		ok   bool
	}{
		{"exact", "https://app.example.com/cb", true},
		{"below", "https://app.example.com/cb/x", true},
		{"below with query", "https://app.example.com/cb/done?tab=1&x=%20", true},
		{"explicit default port", "https://app.example.com:443/cb", true},
		{"mixed case host and scheme", "HTTPS://APP.Example.COM/cb", true},
		{"entry without path allows any", "http://localhost:3000/anything/here?x=1", true},
		{"entry host mixed case", "https://other.example.com:8443/x/y", true},
		{"entry with trailing slash", "https://other.example.com:8443/x/", true},
		{"root entry", "https://root.example.com/a/b", true},

		{"sibling path", "https://app.example.com/cbx", false},
		{"parent path", "https://app.example.com/", false},
		{"path case differs", "https://app.example.com/CB", false},
		{"suffix domain", "https://app.example.com.evil.com/cb", false},
		{"prefix domain", "https://evilapp.example.com/cb", false},
		{"trailing dot host", "https://app.example.com./cb", false},
		{"scheme relative", "//evil.com/cb", false},
		{"scheme relative to allowed", "//app.example.com/cb", false},
		{"relative path", "/cb", false},
		{"backslash userinfo trick", `https://evil.com\@app.example.com/cb`, false},
		{"backslash in path", `https://app.example.com/cb\..\admin`, false},
		{"backslash authority", `https:\\app.example.com/cb`, false},
		{"userinfo", "https://user@app.example.com/cb", false},
		{"userinfo with password", "https://u:p@app.example.com/cb", false},
		{"userinfo to other host", "https://app.example.com@evil.com/cb", false},
		{"wrong scheme", "http://app.example.com/cb", false},
		{"wrong port", "https://app.example.com:444/cb", false},
		{"port where entry has none", "http://localhost:3001/", false},
		{"missing entry port", "https://other.example.com/x/", false},
		{"javascript", "javascript:alert(1)", false},
		{"javascript with slashes", "javascript://app.example.com/cb%0aalert(1)", false},
		{"data", "data:text/html,hi", false},
		{"opaque https", "https:app.example.com/cb", false},
		{"single slash", "https:/app.example.com/cb", false},
		{"fragment", "https://app.example.com/cb#x", false},
		{"empty fragment", "https://app.example.com/cb#", false},
		{"encoded dot segments", "https://app.example.com/cb/%2e%2e/admin", false},
		{"encoded dot segments upper", "https://app.example.com/cb/%2E%2E/admin", false},
		{"literal dot segments", "https://app.example.com/cb/../admin", false},
		{"single dot segment", "https://app.example.com/cb/./x", false},
		{"encoded slash", "https://app.example.com/cb%2f..%2fadmin", false},
		{"encoded backslash", "https://app.example.com/cb/%5c", false},
		{"percent-encoded host", "https://app%2eexample.com/cb", false},
		{"percent-encoded host char", "https://%61pp.example.com/cb", false},
		{"space", "https://app.example.com/cb x", false},
		{"tab", "https://app.example.com/c\tb", false},
		{"newline", "https://app.example.com/cb\n", false},
		{"nul", "https://app.example.com/cb\x00", false},
		{"non-ascii host", "https://аpp.example.com/cb", false},
		{"empty", "", false},
		{"too long", "https://app.example.com/cb/" + strings.Repeat("a", 3000), false},
		{"ipv6 other", "https://[::1]/cb", false},
		{"no host", "https:///cb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := a.Check(tt.raw)
			if tt.ok && err != nil {
				t.Fatalf("Check(%q) = %v, want allowed", tt.raw, err)
			}
			if !tt.ok {
				if err == nil {
					t.Fatalf("Check(%q) allowed %v, want refused", tt.raw, u)
				}
				if !errors.Is(err, ErrNotAllowed) {
					t.Fatalf("err = %v, want ErrNotAllowed", err)
				}
			}
		})
	}
}

func TestParseEntries(t *testing.T) {
	for _, bad := range []string{"", "app.example.com", "ftp://x.example.com", "https://u@x.example.com", "https://x.example.com/?q=1", "https://x.example.com/#f", "javascript:alert(1)", "/relative"} {
		if _, err := Parse([]string{"https://ok.example.com", bad}); err == nil {
			t.Errorf("Parse accepted %q", bad)
		}
	}
	if _, err := Parse(nil); err == nil {
		t.Error("Parse accepted no entries")
	}
	_, err := Parse([]string{"ftp://a", "https://ok.example.com", "mailto:x"})
	if err == nil || !strings.Contains(err.Error(), "entry 1") || !strings.Contains(err.Error(), "entry 3") {
		t.Errorf("every bad entry should be reported: %v", err)
	}
}

func TestWithParams(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://app.example.com/cb", "https://app.example.com/cb?connection_id=c1&status=active"},
		{"https://app.example.com/cb?tab=2&z=%2Fa", "https://app.example.com/cb?tab=2&z=%2Fa&connection_id=c1&status=active"},
		{"https://app.example.com/cb?status=forged&keep=1", "https://app.example.com/cb?keep=1&connection_id=c1&status=active"},
		{"https://app.example.com/cb?", "https://app.example.com/cb?connection_id=c1&status=active"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		got := WithParams(u, url.Values{"connection_id": {"c1"}, "status": {"active"}})
		if got != tt.want {
			t.Errorf("WithParams(%s) = %s, want %s", tt.in, got, tt.want)
		}
		if u.String() != tt.in && !strings.HasSuffix(tt.in, "?") {
			t.Errorf("input changed to %s", u)
		}
	}
}

func FuzzCheck(f *testing.F) {
	a := mustParse(f, "https://app.example.com/cb", "http://127.0.0.1:8080/")
	for _, s := range []string{"https://app.example.com/cb/x?y=1", "//evil.com", `https://evil.com\@app.example.com`, "https://app.example.com.evil.com/cb", "javascript:alert(1)", "http://127.0.0.1:8080/%2e%2e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := a.Check(raw)
		if err != nil {
			return
		}
		// Whatever is allowed must, as the browser will read it, point at an
		// allowed origin and path.
		out := WithParams(u, url.Values{"status": {"active"}})
		v, err := url.Parse(out)
		if err != nil {
			t.Fatalf("allowed %q but the redirect %q does not parse", raw, out)
		}
		host := strings.ToLower(v.Host)
		okHost := (v.Scheme == "https" && (host == "app.example.com" || host == "app.example.com:443") && (v.Path == "/cb" || strings.HasPrefix(v.Path, "/cb/"))) ||
			(v.Scheme == "http" && host == "127.0.0.1:8080")
		if !okHost || v.User != nil || v.Fragment != "" {
			t.Fatalf("allowed %q -> %q", raw, out)
		}
		if _, err := a.Check(out); err != nil {
			t.Fatalf("allowed %q but not its redirect %q: %v", raw, out, err)
		}
	})
}
