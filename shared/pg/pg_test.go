package pg_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/shared/pg"
	"github.com/nexus-broker/nexus/shared/testkit"
)

func TestConnectErrorsNeverShowThePassword(t *testing.T) {
	port := testkit.ClosedPort(t)
	url := func(pw string) string {
		return "postgres://vault:" + pw + "@127.0.0.1:" + port + "/nexus?sslmode=disable"
	}
	kv := func(pw string) string {
		return "host=127.0.0.1 port=" + port + " user=vault password=" + pw + " dbname=nexus sslmode=disable"
	}
	tests := []struct {
		name, dsn, secret string
		want              string // in the error
	}{
		{"slash", url("Zq7/Wx9Lm"), "Zq7/Wx9Lm", `the password contains "/"`},
		{"digits then slash", url("9876/Wx9Lm"), "9876/Wx9Lm", `the password contains "/"`},
		{"slash then at", url("Zq7/Ab3@Wx9Lm"), "Zq7/Ab3@Wx9Lm", `the password contains "/"`},
		{"at sign", url("Zq7@Wx9Lm"), "Zq7@Wx9Lm", `contains "@", which must be percent-encoded (%40)`},
		{"percent", url("Zq7%Wx9Lm"), "Zq7%Wx9Lm", `"%" not followed by two hex digits`},
		{"hash", url("Zq7#Wx9Lm"), "Zq7#Wx9Lm", "does not answer"}, // pgx reads it right
		{"question mark", url("Zq7?Wx9Lm"), "Zq7?Wx9Lm", "does not answer"},
		{"space", url("Zq7 Wx9Lm"), "Zq7 Wx9Lm", `the password contains " "`},
		{"everything", url("Zq7/@%# Wx9Lm"), "Zq7/@%# Wx9Lm", "the password contains"},
		{"encoded", url("Zq7%2FWx9Lm%40Ab3"), "Zq7%2FWx9Lm%40Ab3", "postgres at 127.0.0.1:" + port + "/nexus does not answer"},
		{"bad port beside a password", "postgres://vault:Zq7Wx9Lm@127.0.0.1:54a2/nexus", "Zq7Wx9Lm", "invalid port"},
		{"bad sslmode beside a password", "postgres://vault:Zq7Wx9Lm@127.0.0.1:5432/nexus?sslmode=bogus&password=Ab3Cd4", "Ab3Cd4", "sslmode is invalid"},
		{"key=value, unquoted space", kv("Zq7 Wx9Lm"), "Zq7 Wx9Lm", "DATABASE_URL: "},
		{"key=value, unterminated quote", kv("'Zq7 Wx9Lm"), "Zq7 Wx9Lm", "DATABASE_URL: "},
		{"key=value, escaped space and bad port", strings.Replace(kv(`Zq7\ Wx9Lm`), "port="+port, "port=x", 1), `Zq7\ Wx9Lm`, "invalid port"},
		{"key=value, quoted", kv("'Zq7 #/@Wx9Lm'"), "Zq7 #/@Wx9Lm", "does not answer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := pg.CheckURL(tc.dsn); err != nil && testkit.Leak(err.Error(), tc.secret) != "" {
				t.Errorf("CheckURL: %q shows the password", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			pool, err := pg.Connect(ctx, tc.dsn, 1)
			if err == nil {
				pool.Close()
				t.Fatal("connected to a closed port")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if l := testkit.Leak(err.Error(), tc.secret); l != "" {
				t.Errorf("error %q shows %q of the password", err, l)
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	for _, ok := range []string{"postgres://u:Zq7%2FWx9Lm@db.example/nexus", "postgres://u:p@h1:5432,h2:5433/nexus", "host=db user=u password='a b' dbname=x"} {
		if err := pg.CheckURL(ok); err != nil {
			t.Errorf("CheckURL(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"postgres://u:Zq7/Wx9Lm@db.example/nexus", "postgres://u:Zq7@Wx9Lm@db.example/nexus", "host=db password=Zq7 Wx9Lm dbname=x"} {
		err := pg.CheckURL(bad)
		if err == nil {
			t.Errorf("CheckURL(%q) found nothing", bad)
		} else if l := testkit.Leak(err.Error(), "Zq7 Wx9Lm"); l != "" || testkit.Leak(err.Error(), "Zq7/Wx9Lm") != "" {
			t.Errorf("CheckURL: %q shows the password", err)
		}
	}
}

// The local test server trusts loopback, so any password gets in: an
// encoded one must reach it intact enough to connect.
func TestConnectWithAnEncodedPassword(t *testing.T) {
	u := testkit.Postgres(t)
	u = strings.Replace(u, "@", ":Zq7%2FWx9Lm%40Ab3@", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	pool, err := pg.Connect(ctx, u, 1)
	if err != nil {
		t.Fatalf("%v", err)
	}
	pool.Close()
}

// TestUnavailable: what a dead connection, a terminated backend and a
// server that does not answer return is Unavailable; a statement the
// server refuses is not.
func TestUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	url := testkit.Postgres(t)
	pool, err := pg.Connect(ctx, url, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "select * from no_such_table"); err == nil || pg.Unavailable(err) {
		t.Errorf("a refused statement: %v, Unavailable = true", err)
	}
	if _, err := pool.Exec(ctx, "select 1/0"); err == nil || pg.Unavailable(err) {
		t.Errorf("division by zero: %v, Unavailable = true", err)
	}

	// A backend terminated while it holds a session: the statements that
	// use it next fail, and say so.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pid uint32
	if err := conn.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "select pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		_, err = conn.Exec(ctx, "select 1")
		if err == nil || !pg.Unavailable(err) {
			t.Errorf("statement %d on a terminated backend: %v, Unavailable = false", i, err)
		}
	}
	conn.Release()
	if _, err := pool.Exec(ctx, "select 1"); err != nil {
		t.Errorf("the pool after a terminated backend: %v", err)
	}

	// A server nothing listens for.
	_, err = pg.Connect(ctx, "postgres://postgres@127.0.0.1:"+testkit.ClosedPort(t)+"/postgres?sslmode=disable", 1)
	if err == nil || !pg.Unavailable(err) {
		t.Errorf("a closed port: %v, Unavailable = false", err)
	}
}
