package redisx

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/nexus-broker/nexus/shared/testkit"
)

// logSink is a goroutine-safe buffer for a JSON logger.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}
func (s *logSink) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.buf.String() }

// captureLogs points go-redis's lines at a JSON logger for the test.
func captureLogs(t *testing.T) *logSink {
	t.Helper()
	sink := &logSink{}
	SetLogger(slog.New(slog.NewJSONHandler(sink, nil)))
	t.Cleanup(func() { SetLogger(nil) })
	return sink
}

func TestParseAndConnectNeverShowThePassword(t *testing.T) {
	port := testkit.ClosedPort(t)
	url := func(pw string) string { return "redis://vault:" + pw + "@127.0.0.1:" + port + "/0" }
	tests := []struct {
		name, url, secret string
		want              string // in the error
	}{
		{"slash", url("Zq7/Wx9Lm"), "Zq7/Wx9Lm", `the password contains "/"`},
		{"digits then slash", url("9876/Wx9Lm"), "9876/Wx9Lm", `the password contains "/"`},
		{"no user", "redis://:Zq7/Wx9Lm@127.0.0.1:" + port + "/0", "Zq7/Wx9Lm", `the password contains "/"`},
		{"hash", url("Zq7#Wx9Lm"), "Zq7#Wx9Lm", `the password contains "#"`},
		{"question mark", url("Zq7?Wx9Lm"), "Zq7?Wx9Lm", `the password contains "?"`},
		{"space", url("Zq7 Wx9Lm"), "Zq7 Wx9Lm", `the password contains " "`},
		{"percent", url("Zq7%Wx9Lm"), "Zq7%Wx9Lm", `"%" not followed by two hex digits`},
		{"cluster", "redis://:Zq7/Wx9Lm@127.0.0.1:" + port + ",127.0.0.1:" + port + "/?cluster=true", "Zq7/Wx9Lm", `the password contains "/"`},
		{"bad database beside a password", "redis://vault:Zq7Wx9Lm@127.0.0.1:" + port + "/x", "Zq7Wx9Lm", "invalid database number"},
		// These parse; nothing listens.
		{"at sign", url("Zq7@Wx9Lm"), "Zq7@Wx9Lm", "does not answer"},
		{"encoded", url("Zq7%2FWx9Lm"), "Zq7%2FWx9Lm", "redis at 127.0.0.1:" + port + " does not answer"},
	}
	sink := captureLogs(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckURL(tc.url); err != nil && testkit.Leak(err.Error(), tc.secret) != "" {
				t.Errorf("CheckURL: %q shows the password", err)
			}
			c, err := Connect(context.Background(), tc.url)
			if err == nil {
				c.Close()
				t.Fatal("connected to a closed port")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if l := testkit.Leak(err.Error(), tc.secret); l != "" {
				t.Errorf("error %q shows %q of the password", err, l)
			}
			if l := testkit.Leak(sink.String(), tc.secret); l != "" {
				t.Errorf("the log shows %q of the password:\n%s", l, sink.String())
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	for _, ok := range []string{"redis://127.0.0.1:6379/0", "rediss://:Zq7%2FWx9Lm@redis.example:6380/1", "redis://h1:1,h2:2/?cluster=true", "redis://h1:1,h2:2/0?master=m"} {
		if err := CheckURL(ok); err != nil {
			t.Errorf("CheckURL(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"redis://:Zq7/Wx9Lm@redis.example:6379/0", "redis://redis.example:6379/x", "http://redis.example"} {
		err := CheckURL(bad)
		if err == nil {
			t.Errorf("CheckURL(%q) found nothing", bad)
		} else if testkit.Leak(err.Error(), "Zq7/Wx9Lm") != "" {
			t.Errorf("CheckURL: %q shows the password", err)
		}
	}
}

// The server refuses the user and password (no such ACL user): the error
// says so without quoting the password sent.
func TestConnectAuthRefusedNeverShowsThePassword(t *testing.T) {
	base := testkit.Redis(t)
	const pw = "Zq7%2FWx9Lm"
	c, err := Connect(context.Background(), strings.Replace(base, "redis://", "redis://nexus-test-nobody:"+pw+"@", 1))
	if err == nil {
		c.Close()
		t.Fatal("the test Redis accepted a user that does not exist")
	}
	if !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("error %q is not the server's refusal", err)
	}
	if l := testkit.Leak(err.Error(), pw); l != "" {
		t.Errorf("error %q shows %q of the password", err, l)
	}
	c, err = Connect(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// go-redis logs a failed dial on its own; the line comes out through slog,
// at warn level, as JSON, without the password.
func TestGoRedisLinesGoThroughSlog(t *testing.T) {
	sink := captureLogs(t)
	const pw = "Zq7Wx9LmSecret"
	_, err := Connect(context.Background(), "redis://vault:"+pw+"@127.0.0.1:"+testkit.ClosedPort(t)+"/0")
	if err == nil {
		t.Fatal("connected to a closed port")
	}
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(sink.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON log line: %q", line)
		}
		if rec["level"] == "WARN" && rec["msg"] == "redis client" && strings.Contains(rec["detail"].(string), "failed to dial") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no structured go-redis line about the failed dial:\n%s", sink.String())
	}

	// What go-redis could print one day: a URL, or a password it holds.
	goRedisLogger{}.Printf(context.Background(), "redis: sentinel at %s refused %s", "redis://vault:Other7Pass@10.0.0.1:26379", pw)
	if strings.Contains(sink.String(), pw) || strings.Contains(sink.String(), "Other7Pass") {
		t.Errorf("the log shows a password:\n%s", sink.String())
	}
	if !strings.Contains(sink.String(), `"detail":"sentinel at redis://xxxxx@10.0.0.1:26379 refused xxxxx"`) {
		t.Errorf("the line is not as expected:\n%s", sink.String())
	}

	// Below warn, nothing is written.
	quiet := &logSink{}
	SetLogger(slog.New(slog.NewJSONHandler(quiet, &slog.HandlerOptions{Level: slog.LevelError})))
	goRedisLogger{}.Printf(context.Background(), "redis: something")
	if quiet.String() != "" {
		t.Errorf("an error-level logger got %s", quiet.String())
	}
}

// TestTLSInEveryMode: rediss:// keeps TLS for one server, a Cluster and a
// Sentinel group alike; redis:// has none.
func TestTLSInEveryMode(t *testing.T) {
	for raw, want := range map[string]bool{
		"rediss://:pw@cache.example:6380/0":                        true,
		"rediss://n1.example:6380,n2.example:6380/?cluster=true":   true,
		"rediss://s1.example:26379,s2.example:26379/0?master=main": true,
		"redis://n1.example:6379,n2.example:6379/?cluster=true":    false,
		"redis://cache.example:6379/0":                             false,
	} {
		opts, err := parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if got := opts.TLSConfig != nil; got != want {
			t.Errorf("%s: TLS %v, want %v", raw, got, want)
		}
		if want && opts.TLSConfig.InsecureSkipVerify {
			t.Errorf("%s: certificates not verified", raw)
		}
	}
	if _, err := parse("http://n1.example:6379,n2.example:6379/?cluster=true"); err == nil {
		t.Error("an http:// Redis URL was taken")
	}
}
