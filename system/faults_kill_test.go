package system_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/refresher"
	"github.com/nexus-broker/nexus/shared/natsauth"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/system"
	"github.com/nexus-broker/nexus/system/systemtest"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// TestKillVaultAndRefresher runs every service as a process of its own (two
// vault replicas, admin, handshake, one refresher) on an embedded NATS
// server, with a provider whose access tokens live a few seconds and whose
// refresh tokens rotate at every use, so that the refresher and the
// Gateway's reads keep a refresh storm going over many connections. Under
// that storm and the Gateway's load it kills one vault with SIGKILL at a
// random moment and starts it again, then does the same to the refresher.
//
// Two vault replicas, because that is how the broker is deployed to keep
// serving (docker-compose's cluster profile): the kill proves that the
// survivor keeps serving while the dead replica's refreshes are stranded,
// and that the restarted replica takes those refreshes back at its boot
// (services/vault/recovery.go). One refresher, so that its kill really
// stops background refresh and the relay of events until its restart.
//
// Afterwards nothing is lost: every connection is active with a token that
// is unexpired and that the provider accepts, or attention_required with a
// reason, and only one whose refresh the vault's kill caught; no refresh
// token was presented twice but those the kill caught, each at most once
// more; every change of every connection reached a durable consumer of
// NEXUS_EVENTS as exactly one event; and requests failed only inside a fault
// window, with unavailable, never past their deadline.
//
// The kills' delays and the vault killed come from a seed the test prints;
// NEXUS_KILL_SEED=<seed> replays them (each kill then waits for work in
// flight, which depends on the machine's timing).
func TestKillVaultAndRefresher(t *testing.T) {
	began := time.Now()
	rng := killRand(t)
	k := newKillBroker(t)
	passwords := natsPasswords(t)
	n := &natsNode{name: "single", client: freePorts(t, 1)[0], store: t.TempDir(), passwords: passwords}
	n.start(t)
	t.Cleanup(n.stop)
	b := startFaultBrokerWith(t, systemtest.Infra{NATSURL: n.url(), NATSPasswords: passwords, Run: k.run}, oidcprovider.Options{
		AccessTokenLifespan:     killTokenLife,
		RefreshTokenReuseWindow: killReuseWindow,
	})
	t.Cleanup(func() {
		if t.Failed() {
			k.logOutputs(t)
		}
	})
	t.Logf("binaries built and every process ready in %s", time.Since(began).Round(time.Millisecond))
	start := time.Now()
	ids := connectN(t, b, killConnections)
	t.Logf("%d connections consented in %s", len(ids), time.Since(start).Round(time.Millisecond))
	cons := eventsConsumer(t, b)
	db := pgConn(t, b.Infra.DatabaseURL)

	l, fault := serveLoad(t, b, ids)
	vk := k.killVault(t, rng, db, b.Provider, b.Gateway, ids)
	*fault = vk.at
	if !vk.survivorServed {
		t.Errorf("no tokens.get sent while %s was down was answered: the other replica did not serve", vk.replica)
	}
	l.servedAgain(t, vk.restarted, vk.replica+"'s restart")
	windows := []faultWindow{{what: "vault " + vk.replica + " killed", from: vk.at, to: time.Now()}}
	// The Gateway's requests do not go through the refresher: its window
	// ends when the new one refreshes and relays.
	rk := k.killRefresher(t, rng, db)
	windows = append(windows, faultWindow{what: "refresher killed", from: rk.at, to: time.Now()})

	l.report(t, vk.at)
	failedOnlyInside(t, l, windows)
	l.toldFailedAreFailed(t)
	connectionsConsistent(t, b, db, ids, vk)
	refreshTokensOnce(t, b.Provider.RefreshTokenUses(), vk)
	// A relay killed between its publish and its ack leaves the events it
	// had claimed to the next one once their lease has run out.
	eventsMatchChanges(t, db, cons, time.Until(rk.at.Add(refresher.OutboxLease+10*time.Second)))
	t.Logf("all events delivered %s after the refresher's kill; the new relay's re-publishes JetStream dropped as duplicates: %v",
		time.Since(rk.at).Round(time.Millisecond), k.refresherMetric("nexus_refresher_events_duplicate_total"))
}

// The storm: connections whose access tokens live killTokenLife, so the
// refresher renews each every half of it (services/vault/internal/store
// RefreshDue), and the provider's reuse window: how long a rotated refresh
// token is still accepted, within which a vault killed before it stored a
// rotation must be back to save the grant.
const (
	killConnections = 200
	killTokenLife   = 5 * time.Second
	killReuseWindow = 20 * time.Second
)

// killRand is the seeded source of the kills' moments and victim:
// NEXUS_KILL_SEED, or a fresh seed, printed so a failure can be replayed.
func killRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("NEXUS_KILL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("NEXUS_KILL_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with NEXUS_KILL_SEED=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed))
}

// killDelay is a random moment into the storm: between half a second and
// two and a half.
func killDelay(rng *rand.Rand) time.Duration {
	return 500*time.Millisecond + time.Duration(rng.Int64N(int64(2*time.Second)))
}

// killBroker runs every service as a process of the binaries
// TestServiceBinaries builds: two vault replicas, admin, handshake and one
// refresher. It keeps its test: run is called by systemtest.Start, which
// has none to give it.
type killBroker struct {
	t         *testing.T
	dir       string
	bins      map[string]string // service -> binary
	vaults    []*process
	refresher *process
	procs     []*process
	ready     map[*process]string // its /readyz
}

// killVaults are the vault replicas' VAULT_REPLICA_ID.
var killVaults = []string{"vault-a", "vault-b"}

func newKillBroker(t *testing.T) *killBroker {
	k := &killBroker{t: t, dir: t.TempDir(), bins: map[string]string{}, ready: map[*process]string{}}
	services := []string{"vault", "admin", "handshake", "refresher"}
	pkgs := make([]string, len(services))
	for i, svc := range services {
		pkgs[i] = "./services/" + svc + "/cmd/" + svc
	}
	built := binaries(t, pkgs...)
	for i, svc := range services {
		k.bins[svc] = built[pkgs[i]]
	}
	return k
}

// run is systemtest's Infra.Run: it starts the processes one after the
// other (the vault first: it migrates the database), each with the
// configuration systemtest made, its own NATS user and the address of the
// listener reserved for it, and waits until each is ready.
func (k *killBroker) run(_ context.Context, env map[string]string, listeners map[string]net.Listener) (func(), error) {
	addr := map[string]string{}
	for name, ln := range listeners {
		addr[name] = ln.Addr().String()
		ln.Close()
	}
	vaultAddrs := []string{addr["vault"], freeAddr(k.t)}
	for i, id := range killVaults {
		p, err := k.start("vault", id, serviceEnv(env, natsauth.Vault, vaultAddrs[i], "VAULT_REPLICA_ID="+id), vaultAddrs[i])
		if err != nil {
			return nil, err
		}
		k.vaults = append(k.vaults, p)
	}
	if _, err := k.start("admin", "admin", serviceEnv(env, natsauth.Admin, addr["admin"]), addr["admin"]); err != nil {
		return nil, err
	}
	if _, err := k.start("handshake", "handshake", serviceEnv(env, natsauth.Handshake, addr["handshake"], "INTERNAL_HTTP_ADDR="+addr["handshake-internal"]), addr["handshake-internal"]); err != nil {
		return nil, err
	}
	p, err := k.start("refresher", "refresher", serviceEnv(env, natsauth.Refresher, addr["refresher"]), addr["refresher"])
	if err != nil {
		return nil, err
	}
	k.refresher = p
	return func() {
		for _, p := range slices.Backward(k.procs) {
			p.kill()
		}
	}, nil
}

// start runs service's binary as name and waits until it is ready on
// readyAddr.
func (k *killBroker) start(service, name string, env []string, readyAddr string) (*process, error) {
	p, err := startProcess(name, k.bins[service], env, k.dir)
	if err != nil {
		return nil, err
	}
	k.t.Cleanup(p.kill)
	k.procs = append(k.procs, p)
	k.ready[p] = "http://" + readyAddr + "/readyz"
	waitOK(k.t, k.ready[p], p.output)
	return p, nil
}

// restart starts p again after its kill and waits until it is ready.
func (k *killBroker) restart(p *process) {
	k.t.Helper()
	if err := p.start(); err != nil {
		k.t.Fatal(err)
	}
	waitOK(k.t, k.ready[p], p.output)
}

// serviceEnv is the environment of one service's process: env without the
// other users' NATS passwords, NATS_URL with the service's own user, and
// its HTTP_ADDR.
func serviceEnv(env map[string]string, user, httpAddr string, extra ...string) []string {
	out := []string{"PATH=/usr/bin:/bin"}
	for k, v := range env {
		if strings.HasPrefix(k, "NATS_") && strings.HasSuffix(k, "_PASSWORD") || k == "NATS_URL" {
			continue
		}
		out = append(out, k+"="+v)
	}
	url := env["NATS_URL"]
	if pw := env[system.NATSPasswordVar(user)]; pw != "" {
		url = system.WithNATSUser(url, user, pw)
	}
	return append(append(out, "NATS_URL="+url, "HTTP_ADDR="+httpAddr), extra...)
}

// logOutputs logs the end of every process's output.
func (k *killBroker) logOutputs(t *testing.T) {
	for _, p := range k.procs {
		lines := strings.Split(strings.TrimSpace(p.output()), "\n")
		t.Logf("%s, last %d lines of output:\n%s", p.name, min(len(lines), 40), strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
}

// vaultKill is what a vault's kill left: the refreshes it had in flight
// (connection id -> token version), the refresh-token uses at the provider
// when the replica came back and once it had taken those refreshes back.
type vaultKill struct {
	replica               string
	at, restarted         time.Time
	inFlight              map[string]int64
	usesBefore, usesAfter map[string]int
	// survivorServed: a tokens.get sent after the kill, before the
	// restart, was answered (by the other replica). The load's own
	// requests cannot show it: its few workers tend to be waiting on the
	// busy replica when it is killed, until their deadline.
	survivorServed bool
}

// killVault kills one vault replica at a random moment of the storm when
// it has refreshes in flight, reads the refreshes it left, starts it again
// and waits until each of those refreshes is done (the connection
// refreshed since, or no longer active). Before the restart it asks for
// some of ids' tokens through gw, to see the other replica answer.
func (k *killBroker) killVault(t *testing.T, rng *rand.Rand, db *pgx.Conn, op *oidcprovider.Server, gw *natsx.Client, ids []string) vaultKill {
	t.Helper()
	i := rng.IntN(len(k.vaults))
	vk := vaultKill{replica: killVaults[i]}
	delay := killDelay(rng)
	time.Sleep(delay)
	busy := whenBusy(t, db, "select exists (select from vault.connections where refresh_inflight_owner like $1)", vk.replica+"/%")
	vk.at = time.Now()
	k.vaults[i].kill()
	vk.inFlight = refreshesInFlight(t, db, vk.replica)
	t.Logf("killed %s (SIGKILL) %s into the storm (%s), at %s, with %d refreshes in flight", vk.replica, delay.Round(time.Millisecond), busy, vk.at.Format("15:04:05.000"), len(vk.inFlight))
	vk.usesBefore = op.RefreshTokenUses()
	for try := 0; try < 5 && !vk.survivorServed; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		var cred messages.Credential
		err := gw.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: ids[rng.IntN(len(ids))], WorkspaceID: "ws-1"}, &cred)
		cancel()
		vk.survivorServed = err == nil && cred.AccessToken != ""
	}
	k.restart(k.vaults[i])
	vk.restarted = time.Now()
	t.Logf("%s ready again %s after its kill", vk.replica, vk.restarted.Sub(vk.at).Round(time.Millisecond))
	waitFor(t, "the refreshes the killed vault left to be done", 30*time.Second, func() bool {
		return refreshesDone(t, db, vk.inFlight)
	})
	vk.usesAfter = op.RefreshTokenUses()
	t.Logf("the %d refreshes it left done %s after its kill", len(vk.inFlight), time.Since(vk.at).Round(time.Millisecond))
	return vk
}

// whenBusy waits, up to a few seconds, until the query (a boolean) answers
// true: a process has work in flight that its kill would catch. It says
// how long it waited, or that it gave up.
func whenBusy(t *testing.T, db *pgx.Conn, query string, args ...any) string {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 5*time.Second {
		var busy bool
		if err := db.QueryRow(t.Context(), query, args...).Scan(&busy); err != nil {
			t.Fatal(err)
		}
		if busy {
			return "busy after " + time.Since(start).Round(time.Millisecond).String() + " more"
		}
		time.Sleep(2 * time.Millisecond)
	}
	return "never busy within 5s"
}

// refreshesInFlight are the connections (id -> token version) whose refresh
// the vault replica holds: the marks a dead replica left.
func refreshesInFlight(t *testing.T, db *pgx.Conn, replica string) map[string]int64 {
	t.Helper()
	rows, err := db.Query(t.Context(), "select id::text, token_version from vault.connections where refresh_inflight_owner like $1", replica+"/%")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	var (
		id string
		v  int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &v}, func() error { out[id] = v; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// refreshesDone: every connection of inFlight was refreshed since (a token
// version past the one it had) or is no longer active.
func refreshesDone(t *testing.T, db *pgx.Conn, inFlight map[string]int64) bool {
	t.Helper()
	var pending int
	err := db.QueryRow(t.Context(), `select count(*) from vault.connections c join jsonb_each_text($1::jsonb) f on c.id = f.key::uuid
		where c.status = 'active' and c.token_version <= f.value::bigint`, inFlight).Scan(&pending)
	return err == nil && pending == 0
}

// refresherKill is what the refresher's kill left: when, the connections
// it had claimed and not yet run, and the events its relay had claimed and
// not yet acknowledged.
type refresherKill struct {
	at             time.Time
	claims, events int
}

// killRefresher kills the refresher at a random moment of the storm when
// its relay has events claimed (published, maybe, and not acknowledged:
// invariant 8's case), reads what it left claimed (those events, and
// connections claimed for a refresh), starts it again and waits until the
// new one refreshes in the background and relays events.
func (k *killBroker) killRefresher(t *testing.T, rng *rand.Rand, db *pgx.Conn) refresherKill {
	t.Helper()
	delay := killDelay(rng)
	time.Sleep(delay)
	busy := whenBusy(t, db, "select exists (select from vault.outbox where published_at is null and lease_until > now())")
	rk := refresherKill{at: time.Now()}
	k.refresher.kill()
	err := db.QueryRow(t.Context(), `select (select count(*) from vault.connections where refresh_lease_owner is not null),
		(select count(*) from vault.outbox where published_at is null and lease_until > now())`).Scan(&rk.claims, &rk.events)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the refresher (SIGKILL) %s later (%s), at %s, with %d connections and %d events claimed",
		delay.Round(time.Millisecond), busy, rk.at.Format("15:04:05.000"), rk.claims, rk.events)
	k.restart(k.refresher)
	restarted := time.Now()
	waitFor(t, "the new refresher to refresh and to relay", 20*time.Second, func() bool {
		var relayed bool
		err := db.QueryRow(t.Context(), "select exists (select from vault.outbox where created_at > $1 and published_at is not null)", restarted).Scan(&relayed)
		return err == nil && relayed && k.refresherMetric(`nexus_refresher_refresh_outcomes_total{outcome="refreshed"}`) > 0
	})
	t.Logf("the refresher ready again %s after its kill, refreshing and relaying %s after it", restarted.Sub(rk.at).Round(time.Millisecond), time.Since(rk.at).Round(time.Millisecond))
	return rk
}

// refresherMetric reads one sample of the refresher's /metrics.
func (k *killBroker) refresherMetric(sample string) float64 {
	return metricValue(strings.TrimSuffix(k.ready[k.refresher], "/readyz")+"/metrics", sample)
}

// metricValue reads one sample of a Prometheus text page (0 when absent
// or unreadable: the callers wait for it to move).
func metricValue(url, sample string) float64 {
	v, _, _ := systemtest.MetricSample(url, sample)
	return v
}

// faultWindow is a fault, from its kill until the broker worked again: the
// load served again after a vault's restart, the new refresher refreshing
// and relaying.
type faultWindow struct {
	what     string
	from, to time.Time
}

// failedOnlyInside checks that every request of l that failed (unavailable:
// report checked that every other outcome is a success) failed inside a
// window, up to a request's deadline after its end, and logs each window.
func failedOnlyInside(t *testing.T, l *faultLoad, windows []faultWindow) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	in := make([][]time.Time, len(windows))
	for _, f := range append(slices.Clone(l.fails), l.lifecycleErrs...) {
		i := slices.IndexFunc(windows, func(w faultWindow) bool {
			return !f.Before(w.from) && !f.After(w.to.Add(reqTimeout+time.Second))
		})
		if i < 0 {
			t.Errorf("a request failed at %s, outside every fault window", f.Format("15:04:05.000"))
			continue
		}
		in[i] = append(in[i], f)
	}
	for i, w := range windows {
		fs := in[i]
		slices.SortFunc(fs, func(a, b time.Time) int { return a.Compare(b) })
		if len(fs) == 0 {
			t.Logf("%s: no request failed; window closed %s after", w.what, w.to.Sub(w.from).Round(time.Millisecond))
			continue
		}
		t.Logf("%s: %d requests answered unavailable, the first %s and the last %s after the kill; window closed %s after",
			w.what, len(fs), fs[0].Sub(w.from).Round(time.Millisecond), fs[len(fs)-1].Sub(w.from).Round(time.Millisecond), w.to.Sub(w.from).Round(time.Millisecond))
	}
}

// connectionsConsistent: every connection is active, serving a token that
// has not expired and that the provider accepts, or attention_required with
// a reason; only a connection whose refresh the vault's kill caught may
// need attention (its rotation lost past the reuse window).
func connectionsConsistent(t *testing.T, b *systemtest.Broker, db *pgx.Conn, ids []string, vk vaultKill) {
	t.Helper()
	attention, refused := 0, 0
	for _, id := range ids {
		c, n, err := connectionServes(b, db, id)
		refused += n
		switch {
		case err != nil:
			t.Errorf("connection %s: %v", id, err)
		case c.Status == messages.StatusAttentionRequired:
			attention++
			if _, caught := vk.inFlight[id]; !caught {
				t.Errorf("connection %s needs attention (%s), but the kill caught no refresh of it", id, c.Attention.Code)
			}
		}
	}
	t.Logf("connections: %d active and serving, %d attention_required (%d tokens refused as the check ran, each replaced, in a refresh or expired)", len(ids)-attention, attention, refused)
}

// connectionServes reads connection id and, when it is active, checks that
// tokens.get serves an unexpired token the provider accepts (serveOnce).
// The storm goes on meanwhile: a token refused for a reason that is not a
// failure is asked for again a moment later, a few times. It returns how
// many refused tokens it passed over.
func connectionServes(b *systemtest.Broker, db *pgx.Conn, id string) (messages.Connection, int, error) {
	var excused []string
	for try := range 10 {
		if try > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		c, excuse, err := serveOnce(b, db, id)
		if err != nil || excuse == "" {
			return c, len(excused), err
		}
		excused = append(excused, excuse)
	}
	return messages.Connection{}, len(excused), fmt.Errorf("every token served was refused, and replaced, in a refresh or expired by then: %v", excused)
}

// serveOnce reads connection id and, when it is active, asks tokens.get for
// its token and the provider whether it accepts it. The provider revokes a
// grant's access token when it rotates the grant, before the vault has
// stored the new one and before every replica's cache has dropped the old
// one: a refused token is a failure only when the connection still holds
// it (its expiry), it has not expired and no refresh of the connection is
// in flight. Otherwise it returns why the refusal is none.
func serveOnce(b *systemtest.Broker, db *pgx.Conn, id string) (messages.Connection, string, error) {
	ref := messages.ConnectionRef{ConnectionID: id, WorkspaceID: "ws-1"}
	c, err := getConnection(b, ref)
	if err != nil {
		return c, "", err
	}
	switch c.Status {
	case messages.StatusAttentionRequired:
		if c.Attention == nil || c.Attention.Code == "" {
			return c, "", errors.New("attention_required without a reason")
		}
		return c, "", nil
	case messages.StatusActive:
	default:
		return c, "", fmt.Errorf("status %s", c.Status)
	}
	asked := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
	var cred messages.Credential
	err = b.Gateway.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: id, WorkspaceID: "ws-1"}, &cred)
	cancel()
	if err != nil {
		return c, "", fmt.Errorf("active, but tokens.get: %w", err)
	}
	if cred.ExpiresAt == nil || !cred.ExpiresAt.After(asked) {
		return c, "", fmt.Errorf("active, but tokens.get served a token that expired at %v", cred.ExpiresAt)
	}
	status, err := userinfo(b.Provider, cred.AccessToken)
	if err != nil || status == http.StatusOK {
		return c, "", err
	}
	var (
		holds    time.Time
		inFlight bool
	)
	if err := db.QueryRow(context.Background(), "select expires_at, refresh_inflight_owner is not null from vault.connections where id = $1", id).Scan(&holds, &inFlight); err != nil {
		return c, "", err
	}
	switch {
	case !holds.Equal(*cred.ExpiresAt):
		return c, fmt.Sprintf("%d: replaced (expiry %s, now %s)", status, cred.ExpiresAt.Format("15:04:05.000"), holds.Format("15:04:05.000")), nil
	case inFlight:
		return c, fmt.Sprintf("%d: a refresh in flight", status), nil
	case !cred.ExpiresAt.After(time.Now()):
		return c, fmt.Sprintf("%d: expired at %s", status, cred.ExpiresAt.Format("15:04:05.000")), nil
	}
	return c, "", fmt.Errorf("the provider answers %d to the unexpired token the connection holds, with no refresh in flight", status)
}

func getConnection(b *systemtest.Broker, ref messages.ConnectionRef) (messages.Connection, error) {
	ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
	defer cancel()
	var c messages.Connection
	err := b.Gateway.Request(ctx, messages.SubjectConnectionsGet, ref, &c)
	return c, err
}

// userinfo is the status the provider's userinfo endpoint answers with the
// access token: 200 when the provider accepts it.
func userinfo(op *oidcprovider.Server, accessToken string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, op.Issuer()+"/userinfo", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("userinfo: %w", err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// refreshTokensOnce checks the provider's count of presentations of each
// refresh token (uses, at the end). A refresh token is presented once: its
// answer rotates it. The one exception is a refresh the vault's kill caught
// between the provider's answer and the vault's store of the rotated token:
// only the old token is stored, and the replica's recovery at its restart
// presents it once more, inside the provider's reuse window (invariant 5,
// services/vault/recovery.go). So: no token was presented twice before the
// killed replica came back; the tokens presented twice were presented so
// by the time the refreshes it left were done, no more of them than it
// left in flight; none was presented more than twice.
func refreshTokensOnce(t *testing.T, uses map[string]int, vk vaultKill) {
	t.Helper()
	twice := func(m map[string]int) []string {
		var out []string
		for h, n := range m {
			if n > 1 {
				out = append(out, h)
			}
		}
		slices.Sort(out)
		return out
	}
	if early := twice(vk.usesBefore); len(early) > 0 {
		t.Errorf("%d refresh tokens were presented twice before the killed vault came back", len(early))
	}
	recovered := twice(vk.usesAfter)
	if len(recovered) > len(vk.inFlight) {
		t.Errorf("%d refresh tokens were presented again at the recovery, more than the %d refreshes the kill caught", len(recovered), len(vk.inFlight))
	}
	if all := twice(uses); !slices.Equal(all, recovered) {
		t.Errorf("%d refresh tokens were presented more than once, %d of them at the recovery: the others after it", len(all), len(recovered))
	}
	for h, n := range uses {
		if n > 2 {
			t.Errorf("a refresh token was presented %d times (hash %.12s)", n, h)
		}
	}
	total := 0
	for _, n := range uses {
		total += n
	}
	t.Logf("refresh tokens: %d presented, %d grants; %d presented once more at the recovery (%d refreshes caught by the kill)", len(uses), total, len(recovered), len(vk.inFlight))
}

// eventsMatchChanges checks every connection's events against its changes
// in the vault's database, in one snapshot of both: the events of the
// outbox all reach cons within wait, de-duplicated by id, and each
// connection has one created event, one active, refreshed or recovered
// event per token version stored (every consent and every refresh bumps
// it), and one event of the status it ended in (revoked, failed, expired,
// attention_required), which it never leaves in this test.
func eventsMatchChanges(t *testing.T, db *pgx.Conn, cons jetstream.Consumer, wait time.Duration) {
	t.Helper()
	ctx := t.Context()
	want, conns := changesSnapshot(t, ctx, db)
	got, delivered := deliveredEvents(t, cons, want, max(wait, 10*time.Second))
	var known int
	if err := db.QueryRow(ctx, "select count(*) from vault.outbox where id::text = any($1)", slices.Collect(maps.Keys(got))).Scan(&known); err != nil {
		t.Fatal(err)
	}
	if known != len(got) {
		t.Errorf("%d of the %d events delivered are not in the outbox", len(got)-known, len(got))
	}
	events := map[string]map[messages.EventType]int{}
	for id, typ := range want {
		cid := got[id].ConnectionID
		if events[cid] == nil {
			events[cid] = map[messages.EventType]int{}
		}
		events[cid][messages.EventType(typ)]++
	}
	for id, c := range conns {
		ev := events[id]
		if ev[messages.EventCreated] != 1 {
			t.Errorf("connection %s (%s): %d created events", id, c.status, ev[messages.EventCreated])
		}
		if n := ev[messages.EventActive] + ev[messages.EventRefreshed] + ev[messages.EventRecovered]; int64(n) != c.version {
			t.Errorf("connection %s (%s): token version %d, but %d active, refreshed and recovered events", id, c.status, c.version, n)
		}
		for _, end := range []messages.EventType{messages.EventRevoked, messages.EventFailed, messages.EventExpired, messages.EventAttentionRequired} {
			want := 0
			if c.status == string(end) {
				want = 1
			}
			if ev[end] != want {
				t.Errorf("connection %s (%s): %d %s events, want %d", id, c.status, ev[end], end, want)
			}
		}
	}
	t.Logf("events: each change of the %d connections one event, %d in all; %d deliveries of %d events read", len(conns), len(want), delivered, len(got))
}

// change is a connection as the snapshot found it.
type change struct {
	status  string
	version int64
}

// changesSnapshot reads, in one snapshot, the outbox's connection events
// (id -> type) and every connection's status and token version.
func changesSnapshot(t *testing.T, ctx context.Context, db *pgx.Conn) (map[string]string, map[string]change) {
	t.Helper()
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	want := map[string]string{}
	var id, typ string
	rows, err := tx.Query(ctx, "select id::text, type from vault.outbox where connection_id is not null")
	if err == nil {
		_, err = pgx.ForEachRow(rows, []any{&id, &typ}, func() error { want[id] = typ; return nil })
	}
	if err != nil {
		t.Fatal(err)
	}
	conns := map[string]change{}
	var c change
	rows, err = tx.Query(ctx, "select id::text, status, token_version from vault.connections")
	if err == nil {
		_, err = pgx.ForEachRow(rows, []any{&id, &c.status, &c.version}, func() error { conns[id] = c; return nil })
	}
	if err != nil {
		t.Fatal(err)
	}
	return want, conns
}
