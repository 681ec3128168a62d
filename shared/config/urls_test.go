package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// badPasswords are passwords a user may paste into a URL unencoded (a
// base64 password holds "/" and "+"), each with pieces long enough that a
// leak of part of one is seen.
var badPasswords = []struct{ name, pw, mentions string }{
	{"slash", "Zq7/Wx9Lm", `"/"`},
	{"digits then slash", "9876/Wx9Lm", `"/"`},
	{"hash", "Zq7#Wx9Lm", `"#"`},
	{"question mark", "Zq7?Wx9Lm", `"?"`},
	{"space", "Zq7 Wx9Lm", `" "`},
	{"bad percent", "Zq7%Wx9Lm", `"%"`},
	{"everything", "Zq7/@%# ?Wx9Lm", `"/"`},
	{"base64", "k3J9+/abQ9==", `"/"`},
}

// goodPasswords parse; the "@" one because url.Parse ends the userinfo at
// the last "@".
var goodPasswords = []string{"Zq7%2FWx9Lm", "Zq7@Wx9Lm", "Zq7%20Wx9Lm", "Zq7:Wx9Lm"}

// leak returns the part of secret that text shows: the secret (as written
// or decoded), or any run of three or more letters and digits of it.
func leak(text, secret string) string {
	for _, s := range []string{secret, strings.ReplaceAll(secret, "%2F", "/"), strings.ReplaceAll(secret, "%20", " ")} {
		if strings.Contains(text, s) {
			return s
		}
	}
	for _, piece := range strings.FieldsFunc(secret, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) {
		if len(piece) >= 3 && strings.Contains(text, piece) {
			return piece
		}
	}
	return ""
}

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://vault:s3cret@nats:4222", "nats://vault:xxxxx@nats:4222"},
		{"nats://a:p1@n1:4222,nats://a:p2@n2:4222", "nats://a:xxxxx@n1:4222,nats://a:xxxxx@n2:4222"},
		{"nats://s3cr3ttoken@nats:4222", "nats://xxxxx@nats:4222"},
		{"nats://vault:ab/cd@nats:4222", "nats://xxxxx@nats:4222"},
		{"nats://vault:12/34@nats:4222", "nats://xxxxx@nats:4222"},
		{"nats://vault:a#b@nats:4222", "nats://xxxxx@nats:4222"},
		{"vault:s3cret@nats:4222", "xxxxx@nats:4222"},
		{"redis://:s3cret@redis:6379/0", "redis://:xxxxx@redis:6379/0"},
		{"nats://nats:42a2", "nats://nats:42a2"},
		{"postgres://u:p@h/db?sslmode=disable&Password=zz", "postgres://u:xxxxx@h/db?sslmode=disable&Password=xxxxx"},
	} {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestURLProblemNeverShowsThePassword(t *testing.T) {
	for _, scheme := range []string{"nats://", "redis://", "postgres://"} {
		for _, tc := range badPasswords {
			t.Run(scheme+tc.name, func(t *testing.T) {
				raw := scheme + "vault:" + tc.pw + "@db.example:4222/0"
				p := URLProblem(raw)
				if p == "" {
					t.Fatalf("URLProblem(%q) found nothing", raw)
				}
				if !strings.Contains(p, "password") || !strings.Contains(p, tc.mentions) {
					t.Errorf("problem %q does not say the password contains %s", p, tc.mentions)
				}
				for _, text := range []string{p, RedactURL(raw)} {
					if l := leak(text, tc.pw); l != "" {
						t.Errorf("%q shows %q of the password", text, l)
					}
				}
			})
		}
		for _, pw := range goodPasswords {
			raw := scheme + "vault:" + pw + "@db.example:4222/0"
			if p := URLProblem(raw); p != "" {
				t.Errorf("URLProblem(%q) = %q, want none", raw, p)
			}
			if l := leak(RedactURL(raw), pw); l != "" {
				t.Errorf("RedactURL(%q) shows %q", raw, l)
			}
		}
	}
	// A problem outside the userinfo is reported as url.Parse reports it,
	// from the URL with its userinfo replaced.
	if p := URLProblem("nats://vault:Zq7Wx9Lm@nats:42a2"); !strings.Contains(p, "invalid port") || strings.Contains(p, "Zq7Wx9Lm") {
		t.Errorf("bad port: %q", p)
	}
	if p := URLProblem("nats://Zq7/Wx9Lm@nats:4222"); !strings.Contains(p, "the user name contains") || leak(p, "Zq7/Wx9Lm") != "" {
		t.Errorf("token with a slash: %q", p)
	}
}

func TestLoaderNeverShowsAURLPassword(t *testing.T) {
	for _, tc := range badPasswords {
		t.Run(tc.name, func(t *testing.T) {
			l := FromMap(map[string]string{
				"NATS_URL":   "nats://127.0.0.1:4222, nats://vault:" + tc.pw + "@nats.example:4222",
				"API_KEY":    "0123456789abcdef",
				"PUBLIC_URL": "https://edge:" + tc.pw + "@broker.example",
			})
			l.Common(":0")
			l.URL("PUBLIC_URL", "", "https")
			err := l.Err()
			if err == nil {
				t.Fatal("no problem reported")
			}
			for _, want := range []string{"NATS_URL: nats://xxxxx@nats.example:4222: the password contains", "PUBLIC_URL: is not a valid URL"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%v\ndoes not say %q", err, want)
				}
			}
			if l := leak(err.Error(), tc.pw); l != "" {
				t.Errorf("the configuration error shows %q of the password:\n%v", l, err)
			}
		})
	}
	l := FromMap(map[string]string{"NATS_URL": "nats://vault:Zq7%2FWx9Lm@nats:4222", "API_KEY": "0123456789abcdef"})
	l.Common(":0")
	if err := l.Err(); err != nil {
		t.Errorf("an encoded password is refused: %v", err)
	}
}

func TestHideSecrets(t *testing.T) {
	base := errors.New("inner")
	err := HideSecrets(fmt.Errorf("login as vault with Zq7/Wx9Lm (Zq7%%2FWx9Lm) failed: %w", base), URLSecrets("nats://vault:Zq7%2FWx9Lm@nats:4222")...)
	if got, want := err.Error(), "login as vault with xxxxx (xxxxx) failed: inner"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if !errors.Is(err, base) {
		t.Error("errors.Is does not see the wrapped error")
	}
	if HideSecrets(nil, "x") != nil {
		t.Error("HideSecrets(nil) is not nil")
	}
	if got := URLSecrets("nats://tok3n@a:1, nats://b:2, redis://:pw@c:3"); strings.Join(got, ",") != "tok3n,pw" {
		t.Errorf("URLSecrets = %q", got)
	}
}
