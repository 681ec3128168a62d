package admin_test

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus-broker/nexus/services/admin"
	"github.com/nexus-broker/nexus/services/admin/internal/console"
	"github.com/nexus-broker/nexus/shared/config"
)

// startAdmin starts another admin on e's NATS and database, with env over
// e's configuration, and returns its HTTP address.
func startAdmin(t *testing.T, e *env, env map[string]string) string {
	t.Helper()
	vars := map[string]string{"NATS_URL": e.nc.ConnectedUrl(), "ADMIN_API_KEY": apiKey, "DATABASE_URL": e.dbURL,
		"ADMIN_SERVICE_KEY": adminKey, "HANDSHAKE_SERVICE_KEY": handshakeKey}
	for k, v := range env {
		vars[k] = v
	}
	l := config.FromMap(vars)
	cfg := admin.LoadConfig(l)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := admin.Start(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

var consoleToken = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// consoleSignIn signs in at base with key, sending origin, and returns the
// Set-Cookie headers of the answer and its status.
func consoleSignIn(t *testing.T, base, origin, key string) (int, []*http.Cookie) {
	t.Helper()
	resp, err := http.Get(base + "/console/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := consoleToken.FindSubmatch(body)
	if m == nil || len(resp.Cookies()) != 1 {
		t.Fatalf("login page: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/console/login", strings.NewReader(url.Values{"csrf": {string(m[1])}, "key": {key}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", origin)
	req.AddCookie(resp.Cookies()[0])
	out, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	out.Body.Close()
	return out.StatusCode, out.Cookies()
}

// consoleGet opens path with the cookie and returns the status.
func consoleGet(t *testing.T, base, path string, ck *http.Cookie) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestConsoleSessions: a session opened on one admin opens pages on
// another (they share the sessions' table); it ends when its key is no
// longer configured; with an https ADMIN_PUBLIC_URL the cookie is Secure
// and __Host-, and sign-in is accepted only from that origin.
func TestConsoleSessions(t *testing.T) {
	e := setup(t)
	const second = "second-key-0123456789"
	status, cookies := consoleSignIn(t, e.http.URL, e.http.URL, second)
	if status != http.StatusSeeOther || len(cookies) != 2 {
		t.Fatalf("sign-in with the second operator key: %d %v", status, cookies)
	}
	var session *http.Cookie
	for _, ck := range cookies {
		if ck.Name == "nexus_console" {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Secure || session.Path != "/" {
		t.Fatalf("session cookie %+v", session)
	}
	if got := consoleGet(t, e.http.URL, "/console/keys", session); got != http.StatusOK {
		t.Fatalf("the session opens a page on the admin it was made on with %d, want 200", got)
	}

	both := startAdmin(t, e, map[string]string{"ADMIN_API_KEY": apiKey + "," + second})
	if got := consoleGet(t, both, "/console/providers", session); got != http.StatusOK {
		t.Fatalf("another admin with the same keys: %d, want 200", got)
	}
	rotated := startAdmin(t, e, map[string]string{"ADMIN_API_KEY": apiKey})
	if got := consoleGet(t, rotated, "/console/providers", session); got != http.StatusSeeOther {
		t.Fatalf("an admin without the session's key: %d, want 303 to sign in", got)
	}

	public := startAdmin(t, e, map[string]string{"ADMIN_PUBLIC_URL": "https://admin.example.com"})
	if status, cookies := consoleSignIn(t, public, public, apiKey); status != http.StatusForbidden || len(cookies) != 0 {
		t.Fatalf("sign-in from the server's own address when ADMIN_PUBLIC_URL is another: %d %v", status, cookies)
	}
	status, cookies = consoleSignIn(t, public, "https://admin.example.com", apiKey)
	if status != http.StatusSeeOther {
		t.Fatalf("sign-in from ADMIN_PUBLIC_URL's origin: %d", status)
	}
	var secure *http.Cookie
	for _, ck := range cookies {
		if ck.Name == "__Host-nexus_console" && ck.MaxAge > 0 {
			secure = ck
		}
	}
	if secure == nil || !secure.Secure || !secure.HttpOnly || secure.SameSite != http.SameSiteStrictMode || secure.Domain != "" || secure.Path != "/" {
		t.Fatalf("https session cookie: %v", cookies)
	}
}

// TestConsoleSessionIdle: a session that opened no page for SessionIdle
// ends, one used within it goes on and its use is recorded; the sessions
// are aged in their table, as time would.
func TestConsoleSessionIdle(t *testing.T) {
	e := setup(t)
	signIn := func() *http.Cookie {
		status, cookies := consoleSignIn(t, e.http.URL, e.http.URL, apiKey)
		for _, ck := range cookies {
			if ck.Name == "nexus_console" && status == http.StatusSeeOther {
				return ck
			}
		}
		t.Fatalf("sign-in: %d %v", status, cookies)
		return nil
	}
	idle, used := signIn(), signIn()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	age := func(ck *http.Cookie, d time.Duration) {
		t.Helper()
		sum := sha256.Sum256([]byte(ck.Value))
		tag, err := conn.Exec(ctx, `update admin.console_sessions set last_seen_at = now() - make_interval(secs => $2) where id_hash = $1`, sum[:], d.Seconds())
		if err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("age the session: %v (%d rows)", err, tag.RowsAffected())
		}
	}
	age(idle, console.SessionIdle+time.Minute)
	age(used, console.SessionIdle-time.Minute)
	if got := consoleGet(t, e.http.URL, "/console/providers", idle); got != http.StatusSeeOther {
		t.Fatalf("a session idle for longer than %s: %d, want 303 to sign in", console.SessionIdle, got)
	}
	if got := consoleGet(t, e.http.URL, "/console/providers", used); got != http.StatusOK {
		t.Fatalf("a session used %s ago: %d, want 200", console.SessionIdle-time.Minute, got)
	}
	var since time.Duration
	sum := sha256.Sum256([]byte(used.Value))
	if err := conn.QueryRow(ctx, `select (extract(epoch from now() - last_seen_at) * 1e9)::bigint from admin.console_sessions where id_hash = $1`, sum[:]).Scan(&since); err != nil {
		t.Fatal(err)
	}
	if since > time.Minute {
		t.Fatalf("opening a page did not record the session's use: last seen %s ago", since)
	}
}
