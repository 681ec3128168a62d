package system_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/shared/logging"
	"github.com/nexus-broker/nexus/shared/testkit"
	"github.com/nexus-broker/nexus/system"
)

// launcherAddrs are the variables of the launcher's listen addresses.
var launcherAddrs = []string{"HANDSHAKE_HTTP_ADDR", "HANDSHAKE_INTERNAL_HTTP_ADDR", "ADMIN_HTTP_ADDR", "VAULT_HTTP_ADDR", "REFRESHER_HTTP_ADDR"}

// launcherEnv is an environment for the launcher (`make run`) with every
// port free, its data in dir, and a fresh database.
func launcherEnv(t *testing.T, dir string) map[string]string {
	t.Helper()
	env := map[string]string{
		"PATH":             os.Getenv("PATH"),
		"HOME":             dir,
		"NEXUS_DATA_DIR":   filepath.Join(dir, ".nexus-dev"),
		"NEXUS_NATS_PORT":  freePort(t),
		"DATABASE_URL":     testkit.Postgres(t),
		"REDIS_URL":        testkit.Redis(t),
		"REDIS_KEY_PREFIX": "nexus:test:" + testkit.RandomHex(t, 6) + ":",
		"LOG_LEVEL":        "warn",
	}
	for _, v := range launcherAddrs {
		env[v] = freeAddr(t)
	}
	return env
}

func envList(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

func freePort(t *testing.T) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	return port
}

// hold keeps a port busy for the rest of the test, as another program would.
func hold(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// TestLauncherRefusesAtOnce runs the launcher with one thing wrong at a time:
// it must stop before anything starts (no data dir, no keys, no NATS), with
// a message naming the variable to change.
func TestLauncherRefusesAtOnce(t *testing.T) {
	bin := binary(t, "./system/cmd/nexus")
	type change func(t *testing.T, env map[string]string) (want []string)
	cases := []struct {
		name   string
		change change
	}{
		{"HTTP_ADDR", func(t *testing.T, env map[string]string) []string {
			env["HTTP_ADDR"] = ":8080"
			return append([]string{`HTTP_ADDR=":8080"`}, launcherAddrs...)
		}},
		{"INTERNAL_HTTP_ADDR", func(t *testing.T, env map[string]string) []string {
			env["INTERNAL_HTTP_ADDR"] = ":9080"
			return []string{"INTERNAL_HTTP_ADDR", "HANDSHAKE_INTERNAL_HTTP_ADDR"}
		}},
		{"NATS port busy", func(t *testing.T, env map[string]string) []string {
			_, port, _ := net.SplitHostPort(hold(t))
			env["NEXUS_NATS_PORT"] = port
			return []string{"port " + port + " is already in use", "NEXUS_NATS_PORT"}
		}},
		{"NATS port not a number", func(t *testing.T, env map[string]string) []string {
			env["NEXUS_NATS_PORT"] = "nats"
			return []string{`NEXUS_NATS_PORT="nats"`}
		}},
		{"two services on one address", func(t *testing.T, env map[string]string) []string {
			env["VAULT_HTTP_ADDR"] = env["ADMIN_HTTP_ADDR"]
			return []string{"ADMIN_HTTP_ADDR and VAULT_HTTP_ADDR"}
		}},
		{"every port busy", func(t *testing.T, env map[string]string) []string {
			var want []string
			for _, v := range launcherAddrs {
				env[v] = hold(t)
				_, port, _ := net.SplitHostPort(env[v])
				want = append(want, v, "port "+port+" is already in use")
			}
			return want
		}},
	}
	for _, v := range launcherAddrs {
		cases = append(cases, struct {
			name   string
			change change
		}{v + " busy", func(t *testing.T, env map[string]string) []string {
			env[v] = hold(t)
			_, port, _ := net.SplitHostPort(env[v])
			return []string{"port " + port + " is already in use", v + ", " + env[v]}
		}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := launcherEnv(t, t.TempDir())
			want := tc.change(t, env)
			refusedAtOnce(t, bin, env, want)
		})
	}
}

// refusedAtOnce runs the launcher with env: it must fail before anything
// starts (no data dir made), saying every one of want.
func refusedAtOnce(t *testing.T, bin string, env map[string]string, want []string) {
	t.Helper()
	code, stdout, stderr := runBinary(t, bin, envList(env))
	if code == 0 {
		t.Fatalf("the launcher ran:\n%s%s", stdout, stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("the message does not say %q:\n%s", w, stderr)
		}
	}
	if _, err := os.Stat(env["NEXUS_DATA_DIR"]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the data dir was made (%v): the launcher got further than its checks", err)
	}
}

// TestLauncherDatabaseTypo: a database named in DATABASE_URL that does not
// exist is refused, naming DATABASE_URL and never printing its password,
// and is not created.
func TestLauncherDatabaseTypo(t *testing.T) {
	bin := binary(t, "./system/cmd/nexus")
	env := launcherEnv(t, t.TempDir())
	name := "nexus_typo_" + testkit.RandomHex(t, 6)
	cfg, err := pgx.ParseConfig(env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	const password = "hunter2-never-printed"
	env["DATABASE_URL"] = "postgres://" + cfg.User + ":" + password + "@" + net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))) + "/" + name + "?sslmode=disable"
	code, stdout, stderr := runBinary(t, bin, envList(env))
	if code == 0 {
		t.Fatalf("the launcher ran:\n%s%s", stdout, stderr)
	}
	if !strings.Contains(stderr, "DATABASE_URL") || !strings.Contains(stderr, name) {
		t.Errorf("the message does not name DATABASE_URL and the database %s:\n%s", name, stderr)
	}
	if strings.Contains(stdout+stderr, password) {
		t.Errorf("the password is printed:\n%s%s", stdout, stderr)
	}
	if databaseExists(t, name) {
		t.Errorf("database %s was created", name)
	}
}

func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, postgresBase())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "select count(*) from pg_database where datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func postgresBase() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return testkit.DefaultPostgresURL
}

// TestEnsureDatabase: the development default is created when missing; a
// database set by hand must exist.
func TestEnsureDatabase(t *testing.T) {
	testkit.Postgres(t) // says what to do when PostgreSQL is not there
	cfg, err := pgx.ParseConfig(postgresBase())
	if err != nil {
		t.Fatal(err)
	}
	name := "nexus_ensure_" + testkit.RandomHex(t, 6)
	url := "postgres://" + cfg.User + ":secret-pw@" + net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))) + "/" + name + "?sslmode=disable"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, postgresBase()); err == nil {
			_, _ = c.Exec(ctx, "drop database if exists "+name+" with (force)")
			c.Close(ctx)
		}
	})
	ctx := ctxT(t)
	err = system.EnsureDatabase(ctx, url, false)
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "secret-pw") {
		t.Fatalf("missing database set by hand: %v", err)
	}
	if databaseExists(t, name) {
		t.Fatal("created without being asked to")
	}
	if err := system.EnsureDatabase(ctx, url, true); err != nil {
		t.Fatalf("create: %v", err)
	}
	if !databaseExists(t, name) {
		t.Fatal("not created")
	}
	if err := system.EnsureDatabase(ctx, url, false); err != nil {
		t.Fatalf("existing database: %v", err)
	}
	err = system.EnsureDatabase(ctx, "postgres://u:secret-pw@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", false)
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") || strings.Contains(err.Error(), "secret-pw") {
		t.Fatalf("server that does not answer: %v", err)
	}
}

// TestStartRefusesHTTPAddr: in one process HTTP_ADDR cannot apply to every
// service; Start says which variables to set instead, with the other
// configuration problems.
func TestStartRefusesHTTPAddr(t *testing.T) {
	_, err := system.Start(ctxT(t), system.Overlay(nil, map[string]string{"HTTP_ADDR": ":8080", "INTERNAL_HTTP_ADDR": ":9080"}), nil, logging.Discard())
	if err == nil {
		t.Fatal("started")
	}
	for _, v := range append(launcherAddrs, "HTTP_ADDR", "INTERNAL_HTTP_ADDR", "API_KEY") {
		if !strings.Contains(err.Error(), v) {
			t.Errorf("the error does not name %s: %v", v, err)
		}
	}
}

func TestPublicURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	for _, tc := range []struct{ addr, want string }{
		{"", "http://127.0.0.1:" + port},
		{":8080", "http://127.0.0.1:" + port},
		{"0.0.0.0:8080", "http://127.0.0.1:" + port},
		{"[::]:8080", "http://127.0.0.1:" + port},
		{"127.0.0.1:0", "http://127.0.0.1:" + port},
		{"localhost:8080", "http://localhost:" + port},
		{"[::1]:8080", "http://[::1]:" + port},
		{"192.0.2.7:8080", "http://192.0.2.7:" + port},
	} {
		env := system.Overlay(nil, map[string]string{"HANDSHAKE_HTTP_ADDR": tc.addr})
		if got := system.PublicURL(env, ln); got != tc.want {
			t.Errorf("HANDSHAKE_HTTP_ADDR=%q: PublicURL = %s, want %s", tc.addr, got, tc.want)
		}
	}
}

// TestLauncher starts the launcher as `make run` does, with every port
// moved by its variable, and checks what it prints and serves; a second
// launcher beside it fails at once, whether it wants the same ports or only
// the same data dir.
func TestLauncher(t *testing.T) {
	bin := binary(t, "./system/cmd/nexus")
	dir := t.TempDir()
	env := launcherEnv(t, dir)
	l := startLauncher(t, bin, env)
	out := l.output()
	for _, w := range []string{
		"API_KEY=nxk_gw_dev_",
		"ADMIN_API_KEY=nxk_op_dev_",
		"NATS user gateway, password nats_dev_",
		"nats://127.0.0.1:" + env["NEXUS_NATS_PORT"],
		"handshake (public)  http://" + env["HANDSHAKE_HTTP_ADDR"] + " ",
		"http://" + env["ADMIN_HTTP_ADDR"] + "/v1/providers",
		"set -a; . " + filepath.Join(env["NEXUS_DATA_DIR"], "keys.env") + "; set +a",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("the launcher does not print %q:\n%s", w, out)
		}
	}
	if fi, err := os.Stat(filepath.Join(env["NEXUS_DATA_DIR"], "keys.env")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("keys.env: %v %v", fi, err)
	}

	// Not an open door: NATS refuses an anonymous client, and the Gateway's
	// user, with the password from keys.env, may not read others' replies.
	natsURL := "nats://127.0.0.1:" + env["NEXUS_NATS_PORT"]
	if nc, err := nats.Connect(natsURL); err == nil {
		nc.Close()
		t.Error("the embedded NATS server accepts an anonymous client")
	}
	keys := readKeys(t, filepath.Join(env["NEXUS_DATA_DIR"], "keys.env"))
	denied := make(chan error, 4)
	gw, err := nats.Connect(natsURL, nats.UserInfo("gateway", keys["NATS_GATEWAY_PASSWORD"]), nats.CustomInboxPrefix("_INBOX.gateway"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { denied <- err }))
	if err != nil {
		t.Fatalf("the Gateway cannot connect with its password from keys.env: %v", err)
	}
	defer gw.Close()
	if _, err := gw.Subscribe("_INBOX.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	_ = gw.Flush()
	select {
	case err := <-denied:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("subscribing to _INBOX.>: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Error("the Gateway's user may subscribe to every inbox")
	}

	// The same again: every port is taken.
	code, _, stderr := runBinary(t, bin, envList(env))
	if code == 0 {
		t.Fatal("a second launcher on the same ports ran")
	}
	for _, v := range append(launcherAddrs, "NEXUS_NATS_PORT") {
		if !strings.Contains(stderr, v+", ") {
			t.Errorf("the second launcher does not name %s:\n%s", v, stderr)
		}
	}
	// Other ports, same data dir: refused too (one JetStream store, one server).
	other := launcherEnv(t, t.TempDir())
	other["NEXUS_DATA_DIR"] = env["NEXUS_DATA_DIR"]
	code, _, stderr = runBinary(t, bin, envList(other))
	if code == 0 || !strings.Contains(stderr, "NEXUS_DATA_DIR") {
		t.Fatalf("a second launcher on the same data dir: exit %d\n%s", code, stderr)
	}
	l.stop(t)
}

// launcher is a running `make run`.
type launcher struct {
	cmd  *exec.Cmd
	log  string
	done chan error
}

func (l *launcher) output() string {
	b, _ := os.ReadFile(l.log)
	return string(b)
}

// startLauncher runs bin with env and waits until every service is ready.
func startLauncher(t *testing.T, bin string, env map[string]string) *launcher {
	t.Helper()
	l := &launcher{cmd: exec.Command(bin), log: filepath.Join(t.TempDir(), "launcher.log"), done: make(chan error, 1)}
	f, err := os.Create(l.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l.cmd.Env = envList(env)
	l.cmd.Dir = env["HOME"]
	l.cmd.Stdout, l.cmd.Stderr = f, f
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { l.done <- l.cmd.Wait() }()
	t.Cleanup(func() { _ = l.cmd.Process.Kill() })
	for _, v := range []string{"ADMIN_HTTP_ADDR", "VAULT_HTTP_ADDR", "REFRESHER_HTTP_ADDR", "HANDSHAKE_INTERNAL_HTTP_ADDR"} {
		waitOK(t, "http://"+env[v]+"/readyz", l.output)
	}
	// The banner is printed once everything has started.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(l.output(), "Nexus Broker is running.") {
		if time.Now().After(deadline) {
			t.Fatalf("no banner:\n%s", l.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return l
}

// stop interrupts the launcher as Ctrl-C does: it must exit cleanly.
func (l *launcher) stop(t *testing.T) {
	t.Helper()
	if err := l.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-l.done:
		if err != nil {
			t.Fatalf("exit after Ctrl-C: %v\n%s", err, l.output())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit 20 s after Ctrl-C:\n%s", l.output())
	}
}

// readKeys reads an env file of KEY=value lines.
func readKeys(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "#") {
			out[k] = v
		}
	}
	return out
}
