package system_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/natsauth"
	"github.com/nexus-broker/nexus/shared/testkit"
	"github.com/nexus-broker/nexus/system"
	"github.com/nexus-broker/nexus/system/systemtest"
)

// These tests break the data stores the broker runs on, with real servers,
// under the Gateway's light load (faultLoad): PostgreSQL's connections
// killed (TestPostgresConnectionsTerminated), a PostgreSQL server of the
// test's own restarted fast and as after a crash (TestPostgresRestart), and
// a Redis server of the test's own restarted with a consent in flight
// (TestRedisRestartDuringConsent). They hold the promises of the NATS fault
// tests (cluster_test.go): a request fails only while the store is failing,
// only with `unavailable` and never later than its caller's deadline; the
// services recover by themselves; no lifecycle event is lost.

// TestPostgresConnectionsTerminated kills every backend of the broker's
// database, several times, while the load runs: each service's pool meets
// connections that died under it, and reconnects.
func TestPostgresConnectionsTerminated(t *testing.T) {
	natsURL, passwords := testkit.NATSWithUsers(t)
	b := startFaultBroker(t, systemtest.Infra{NATSURL: natsURL, NATSPasswords: passwords})
	ids := connectN(t, b, 3)
	cons := eventsConsumer(t, b)
	db := pgConn(t, b.Infra.DatabaseURL)

	l, fault := serveLoad(t, b, ids)
	var last time.Time
	for round := range 3 {
		last = time.Now()
		if round == 0 {
			*fault = last
		}
		var n int
		if err := db.QueryRow(ctxT(t), `select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity
			where datname = current_database() and pid <> pg_backend_pid()) k`).Scan(&n); err != nil {
			t.Fatalf("pg_terminate_backend: %v", err)
		}
		if n == 0 {
			t.Fatalf("round %d: the broker had no connection to its database to terminate", round)
		}
		t.Logf("round %d: terminated the broker's %d backends at %s", round, n, last.Format("15:04:05.000"))
		// Long enough for the pools to have reconnected and been used.
		waitFor(t, "requests served after the termination", 10*time.Second, func() bool {
			_, streak, _ := l.snapshot(last)
			return time.Since(last) > 700*time.Millisecond && streak >= 20
		})
	}
	l.servedAgain(t, last, "the last termination")
	l.report(t, *fault)
	l.toldFailedAreFailed(t)
	allSucceed(t, b, ids, 10)
	noEventLost(t, b, cons)
}

// TestPostgresRestart runs the broker against a PostgreSQL server of its
// own and restarts it under load: once cleanly (`pg_ctl restart -m fast`:
// connections closed, the server down for a moment) and once as after a
// crash (`-m immediate`: no checkpoint, recovery from the WAL at start).
func TestPostgresRestart(t *testing.T) {
	pg := startPostgres(t)
	natsURL, passwords := testkit.NATSWithUsers(t)
	b := startFaultBroker(t, systemtest.Infra{NATSURL: natsURL, NATSPasswords: passwords, DatabaseURL: pg.url})
	ids := connectN(t, b, 3)
	cons := eventsConsumer(t, b)

	l, fault := serveLoad(t, b, ids)
	for i, mode := range []string{"fast", "immediate"} {
		at := time.Now()
		if i == 0 {
			*fault = at
		}
		pg.restart(t, mode)
		t.Logf("restarted PostgreSQL (-m %s) at %s: pg_ctl saw it accept connections %s later", mode, at.Format("15:04:05.000"), time.Since(at).Round(time.Millisecond))
		l.servedAgain(t, at, "the "+mode+" restart")
	}
	l.report(t, *fault)
	l.toldFailedAreFailed(t)
	allSucceed(t, b, ids, 10)
	noEventLost(t, b, cons)
}

// TestRedisRestartDuringConsent runs the broker against a Redis server of
// its own (no persistence, like the machine's) and restarts it while a
// consent waits at the provider. Redis holds only pending flows, so the
// consent is lost: its callback shows a page saying to start again, the
// connection expires with its link (ARCHITECTURE.md, section 3) and its
// event is published. While Redis is down, handshake.begin answers
// unavailable and the browser edge a 503 page; tokens are served
// throughout; once Redis is back, consents complete again with no restart.
func TestRedisRestartDuringConsent(t *testing.T) {
	rs := startRedis(t)
	natsURL, passwords := testkit.NATSWithUsers(t)
	b := startFaultBroker(t, systemtest.Infra{NATSURL: natsURL, NATSPasswords: passwords, RedisURL: rs.url()})
	ids := connectN(t, b, 3)
	cons := eventsConsumer(t, b)
	ctx := ctxT(t)

	// A consent whose browser is back from the provider with a code.
	begin, err := b.Begin(ctx, "acme", "ws-1")
	if err != nil {
		t.Fatal(err)
	}
	br, callback := toCallback(t, b, begin.AuthURL)
	secrets := []string{callback.Query().Get("code"), callback.Query().Get("state"), systemtest.ClientSecret, strings.TrimPrefix(begin.AuthURL, b.PublicURL+"/v1/connect/")}

	l, fault := serveLoad(t, b, ids)
	*fault = time.Now()
	rs.stop(t)
	t.Logf("stopped Redis at %s", fault.Format("15:04:05.000"))
	waitFor(t, "handshake.begin to fail while Redis is down", 10*time.Second, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.lifecycleErrs) >= 2
	})
	ctxB, cancel := context.WithTimeout(ctx, reqTimeout)
	asked := time.Now()
	_, err = b.Begin(ctxB, "acme", "ws-1")
	cancel()
	if !errors.Is(err, messages.ErrUnavailable) {
		t.Fatalf("handshake.begin while Redis is down: %v, want unavailable", err)
	}
	t.Logf("handshake.begin while Redis is down: %v, in %s", err, time.Since(asked).Round(time.Millisecond))
	unavailable := "The sign-in service is temporarily unavailable."
	showsPage(t, br, begin.AuthURL, http.StatusServiceUnavailable, unavailable, secrets)
	showsPage(t, br, callback.String(), http.StatusServiceUnavailable, unavailable, secrets)

	rs.start(t)
	back := time.Now()
	t.Logf("started Redis again, empty, %s later", back.Sub(*fault).Round(time.Millisecond))
	l.servedAgain(t, back, "Redis' restart")
	// The flow is gone with Redis' memory: the callback cannot finish it.
	showsPage(t, br, callback.String(), http.StatusBadRequest, "Go back to the app and start again.", secrets)
	l.report(t, *fault)
	l.toldFailedAreFailed(t)
	if l.ok == 0 || len(l.fails) > 0 {
		t.Errorf("tokens.get does not need Redis: %d answered unavailable, %d succeeded", len(l.fails), l.ok)
	}

	// A consent begun after the restart completes.
	if q, err := b.Connect(ctx, "acme", "ws-1"); err != nil || q.Get("status") != string(messages.StatusActive) {
		t.Fatalf("a consent after the restart: %v %v", q, err)
	}
	// The lost one stays pending until its link expires, then expires.
	if c := connection(t, b, begin.ConnectionID); c.Status != messages.StatusPending {
		t.Fatalf("the lost consent's connection is %s before its link expired, want pending", c.Status)
	}
	expireLostConsents(t, b, begin.ExpiresAt)
	c := connection(t, b, begin.ConnectionID)
	if c.Status != messages.StatusExpired || c.Failure == nil || c.Failure.Code != "consent_expired" {
		t.Fatalf("the lost consent's connection after its link expired: %s %+v, want expired (consent_expired)", c.Status, c.Failure)
	}
	noEventLost(t, b, cons)
	expiredEvent(t, b, begin.ConnectionID)
}

// serveLoad starts the fault tests' load on b and waits until it is served.
// The load is reported when the test fails; the test sets the time of the
// first fault in what it returns.
func serveLoad(t *testing.T, b *systemtest.Broker, ids []string) (*faultLoad, *time.Time) {
	t.Helper()
	l := startLoad(t, b, ids, 4)
	fault := time.Now()
	t.Cleanup(func() {
		if t.Failed() {
			l.report(t, fault)
		}
	})
	waitFor(t, "the load to be served", 20*time.Second, func() bool {
		ok, _, cycles := l.snapshot(time.Time{})
		return ok >= 50 && cycles >= 1
	})
	return l, &fault
}

// servedAgain waits until the load is served again after the fault at
// since: every request begun before it has ended, a run of tokens.get has
// succeeded since the last failure, and lifecycle changes complete.
func (l *faultLoad) servedAgain(t *testing.T, since time.Time, what string) {
	t.Helper()
	waitFor(t, "tokens.get to be served again after "+what, 20*time.Second, func() bool {
		_, streak, _ := l.snapshot(since)
		return time.Since(since) > reqTimeout+time.Second && streak >= 100
	})
	waitFor(t, "lifecycle changes after "+what, 30*time.Second, func() bool {
		_, _, cycles := l.snapshot(since)
		return cycles >= 2
	})
	t.Logf("served again %s after %s", time.Since(since).Round(time.Millisecond), what)
}

// toldFailedAreFailed checks that every connection whose consent the app
// was told failed ends failed, as connections.get says, once the vault
// answers again (the handshake retries the mark in the background).
func (l *faultLoad) toldFailedAreFailed(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	ids := slices.Clone(l.toldFailed)
	l.mu.Unlock()
	for _, id := range ids {
		var c messages.Connection
		waitFor(t, "connection "+id+", told failed, to be failed", 20*time.Second, func() bool {
			c = connection(t, l.b, id)
			return c.Status != messages.StatusPending
		})
		if c.Status != messages.StatusFailed {
			t.Errorf("connection %s, told failed, is %s", id, c.Status)
		}
	}
	t.Logf("the %d consents the app was told failed are failed", len(ids))
}

func pgConn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	db, err := pgx.Connect(ctxT(t), url)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return db
}

// pgServer is a PostgreSQL server of the test's own, in a temporary
// directory, on a free loopback port.
type pgServer struct {
	bin  string // the directory of initdb, pg_ctl and postgres
	dir  string // the temporary directory: data/, the socket, the log
	port int
	url  string
}

// startPostgres initialises a cluster with the newest server binaries under
// /usr/lib/postgresql and starts it. initdb and postgres refuse to run as
// root: as root, they run as the postgres OS user, who owns the directory.
func startPostgres(t *testing.T) *pgServer {
	t.Helper()
	initdbs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(initdbs) == 0 {
		t.Fatal("this test runs its own PostgreSQL server and needs its binaries at /usr/lib/postgresql/*/bin (initdb, pg_ctl, postgres): apt-get install postgresql")
	}
	slices.SortFunc(initdbs, func(a, b string) int { return pgVersion(a) - pgVersion(b) })
	dir, err := os.MkdirTemp("", "nexus-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &pgServer{bin: filepath.Dir(initdbs[len(initdbs)-1]), dir: dir, port: freePorts(t, 1)[0]}
	p.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
	if os.Geteuid() == 0 {
		u, err := osuser.Lookup("postgres")
		if err != nil {
			t.Fatalf("initdb and postgres refuse to run as root, and there is no postgres OS user to run them as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	p.run(t, "initdb", "-D", p.data(), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
	// fsync off: a crash of postgres, not of the machine, is what is tested.
	p.run(t, "pg_ctl", "start", "-w", "-t", "30", "-D", p.data(), "-l", p.log(), "-o",
		fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c max_connections=200", p.port, dir))
	t.Cleanup(func() { p.run(t, "pg_ctl", "stop", "-w", "-D", p.data(), "-m", "immediate") })
	return p
}

// pgVersion is the major version in a path /usr/lib/postgresql/<v>/bin/...
func pgVersion(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}

func (p *pgServer) data() string { return filepath.Join(p.dir, "data") }

// log is the server's log file: were it not given to every pg_ctl start
// and restart, the server would write to pg_ctl's output, which it outlives.
func (p *pgServer) log() string { return filepath.Join(p.dir, "log") }

// restart restarts the server with pg_ctl's shutdown mode (fast, immediate)
// and waits until it accepts connections.
func (p *pgServer) restart(t *testing.T, mode string) {
	t.Helper()
	p.run(t, "pg_ctl", "restart", "-w", "-t", "30", "-D", p.data(), "-l", p.log(), "-m", mode)
}

// run runs one of the server's programs, as the postgres OS user when the
// test runs as root, and fails the test with its output if it fails.
func (p *pgServer) run(t *testing.T, program string, args ...string) {
	t.Helper()
	name, full := filepath.Join(p.bin, program), args
	if os.Geteuid() == 0 {
		name, full = "runuser", append([]string{"-u", "postgres", "--", filepath.Join(p.bin, program)}, args...)
	}
	cmd := exec.Command(name, full...)
	cmd.Dir = p.dir
	cmd.WaitDelay = 5 * time.Second // should the server still hold the output open
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(p.log())
		t.Fatalf("%s %s: %v\n%s\nserver log:\n%s", program, strings.Join(args, " "), err, out, log)
	}
}

// redisServer is a redis-server of the test's own on a free loopback port,
// without persistence: a restart starts it empty.
type redisServer struct {
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

const redisBinary = "/usr/bin/redis-server"

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	if _, err := os.Stat(redisBinary); err != nil {
		t.Fatalf("this test runs its own Redis server and needs %s (apt-get install redis-server): %v", redisBinary, err)
	}
	r := &redisServer{port: freePorts(t, 1)[0]}
	r.start(t)
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// start runs the server and waits until it answers PING.
func (r *redisServer) start(t *testing.T) {
	t.Helper()
	r.cmd = exec.Command(redisBinary, "--bind", "127.0.0.1", "--port", strconv.Itoa(r.port),
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
	r.cmd.Dir = t.TempDir()
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", redisBinary, err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(r.cmd, r.done)
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port), MaxRetries: -1})
	defer c.Close()
	waitFor(t, "redis-server to answer on port "+strconv.Itoa(r.port), 10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Ping(ctx).Err() == nil
	})
}

// stop ends the server (SIGTERM: it saves nothing) and waits for it.
func (r *redisServer) stop(t *testing.T) {
	t.Helper()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	r.cmd = nil
}

// toCallback opens authURL in a new browser and follows it through the
// provider, stopping where the provider sends the browser back to the
// broker's callback. It returns the browser, with its cookies, and the
// callback URL, not yet opened.
func toCallback(t *testing.T, b *systemtest.Broker, authURL string) (*http.Client, *url.URL) {
	t.Helper()
	br := systemtest.NewBrowser()
	br.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), b.PublicURL+"/v1/callback") {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := br.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || resp.StatusCode/100 != 3 || !strings.HasPrefix(loc.String(), b.PublicURL+"/v1/callback") || loc.Query().Get("code") == "" {
		t.Fatalf("the provider did not send the browser back with a code: HTTP %d at %s (%v)", resp.StatusCode, resp.Request.URL.Redacted(), err)
	}
	br.CheckRedirect = nil
	return br, loc
}

// showsPage opens u in br and checks the answer is the broker's own HTML
// page with status and text, and shows none of secrets.
func showsPage(t *testing.T, br *http.Client, u string, status int, text string, secrets []string) {
	t.Helper()
	resp, err := br.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", redactedURL(u), err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != status || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(page, text) || !strings.Contains(page, "<h1>") {
		t.Fatalf("GET %s: HTTP %d %s, want %d with %q:\n%s", redactedURL(u), resp.StatusCode, resp.Header.Get("Content-Type"), status, text, page)
	}
	for _, bad := range []string{"goroutine", "panic", "redis", "dial tcp", "127.0.0.1"} {
		if strings.Contains(strings.ToLower(page), bad) {
			t.Errorf("GET %s: the page shows %q:\n%s", redactedURL(u), bad, page)
		}
	}
	for i, s := range secrets {
		if s == "" || strings.Contains(page, s) {
			t.Errorf("GET %s: the page shows secret #%d (or it is empty)", redactedURL(u), i)
		}
	}
}

func redactedURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	p.RawQuery = ""
	return p.String()
}

func connection(t *testing.T, b *systemtest.Broker, id string) messages.Connection {
	t.Helper()
	var c messages.Connection
	if err := b.Gateway.Request(ctxT(t), messages.SubjectConnectionsGet, messages.ConnectionRef{ConnectionID: id, WorkspaceID: "ws-1"}, &c); err != nil {
		t.Fatalf("connections.get %s: %v", id, err)
	}
	return c
}

// expiryGrace is the vault's store.ExpiryGrace: how long after its link a
// pending consent is kept, for a code exchange still under way.
const expiryGrace = time.Minute

// expireLostConsents lets the time pass until the vault expires consents
// whose link expired at expires: it starts a vault replica whose clock is
// past their deadline (a replica's housekeeping runs as it starts), waits
// until no connection of the database is pending past it, and stops the
// replica.
func expireLostConsents(t *testing.T, b *systemtest.Broker, expires time.Time) {
	t.Helper()
	ahead := time.Until(expires.Add(expiryGrace)) + time.Second
	l := config.FromFunc(system.Overlay(nil, b.Env))
	cfg := vault.LoadConfig(l)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	cfg.NATSURL = system.WithNATSUser(cfg.NATSURL, natsauth.Vault, b.Infra.NATSPasswords[natsauth.Vault])
	cfg.ReplicaID = "vault-ahead"
	cfg.Now = func() time.Time { return time.Now().Add(ahead) }
	ctx := ctxT(t)
	v, err := vault.Start(ctx, cfg, testLog())
	if err != nil {
		t.Fatalf("a vault replica %s ahead: %v", ahead.Round(time.Second), err)
	}
	defer func() {
		if err := v.Close(context.Background()); err != nil {
			t.Errorf("the vault replica ahead: close: %v", err)
		}
	}()
	db := pgConn(t, b.Infra.DatabaseURL)
	waitFor(t, "the consents whose link expired to expire", 20*time.Second, func() bool {
		var n int
		err := db.QueryRow(ctx, "select count(*) from vault.connections where status = 'pending' and pending_until < $1", expires.Add(expiryGrace+time.Second)).Scan(&n)
		return err == nil && n == 0
	})
}

// expiredEvent checks the outbox holds connection id's expired event, which
// noEventLost has seen delivered.
func expiredEvent(t *testing.T, b *systemtest.Broker, id string) {
	t.Helper()
	var n int
	if err := pgConn(t, b.Infra.DatabaseURL).QueryRow(ctxT(t), "select count(*) from vault.outbox where connection_id = $1 and type = $2",
		id, string(messages.EventExpired)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("connection %s has %d expired events, want 1", id, n)
	}
}
