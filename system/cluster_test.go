package system_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsauth"
	"github.com/nexus-broker/nexus/shared/testkit"
	"github.com/nexus-broker/nexus/system"
	"github.com/nexus-broker/nexus/system/systemtest"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// These tests break the NATS the broker runs on, with real servers: a node
// of a three-node JetStream cluster killed under load (TestNATSCluster), and
// a single server restarted under load (TestNATSRestartUnderLoad). Both hold
// the same promises: a request fails only while the bus is failing over,
// only with `unavailable`, and never later than its caller's deadline; once
// the bus is back every request succeeds, with no help from outside; and no
// lifecycle event written in the vault's outbox is lost.

// reqTimeout is the deadline of every Gateway request of the load.
const reqTimeout = 2 * time.Second

// natsNode is one embedded nats-server that can be killed and started again
// on the same ports with the same JetStream store.
type natsNode struct {
	name          string
	client, route int
	routes        []int // every node's route port; nil: not clustered
	store         string
	passwords     map[string]string
	srv           *server.Server
}

func (n *natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.client) }

func (n *natsNode) options(t *testing.T) *server.Options {
	users, err := natsauth.ServerUsers(messages.DefaultPrefix, n.passwords)
	if err != nil {
		t.Fatal(err)
	}
	o := &server.Options{
		ServerName: n.name, Host: "127.0.0.1", Port: n.client,
		JetStream: true, StoreDir: n.store, JetStreamMaxMemory: 256 << 20, JetStreamMaxStore: 1 << 30,
		MaxPayload: 1 << 20, NoSigs: true, NoLog: true, Users: users,
	}
	if n.routes != nil {
		o.Cluster = server.ClusterOpts{Name: "nexus-test", Host: "127.0.0.1", Port: n.route}
		var urls []string
		for _, p := range n.routes {
			if p != n.route {
				urls = append(urls, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
			}
		}
		o.Routes = server.RoutesFromStr(strings.Join(urls, ","))
	}
	return o
}

func (n *natsNode) start(t *testing.T) {
	t.Helper()
	s, err := server.NewServer(n.options(t))
	if err != nil {
		t.Fatalf("nats %s: %v", n.name, err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatalf("nats %s not ready on %s", n.name, n.url())
	}
	n.srv = s
}

func (n *natsNode) stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

// natsPasswords are a fresh password for every user of shared/natsauth.
func natsPasswords(t *testing.T) map[string]string {
	pw := map[string]string{}
	for _, u := range natsauth.Names {
		pw[u] = "pw-" + u + "-" + testkit.RandomHex(t, 8)
	}
	return pw
}

// startNATSCluster runs three clustered nodes with JetStream, each with its
// own store, and waits for a JetStream meta leader that every node follows.
func startNATSCluster(t *testing.T, passwords map[string]string) []*natsNode {
	t.Helper()
	ports := freePorts(t, 6)
	routes := ports[3:]
	var nodes []*natsNode
	for i := range 3 {
		n := &natsNode{name: fmt.Sprintf("n%d", i+1), client: ports[i], route: routes[i], routes: routes, store: t.TempDir(), passwords: passwords}
		nodes = append(nodes, n)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop()
		}
	})
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := server.NewServer(n.options(t))
			if err != nil {
				errs[i] = err
				return
			}
			go s.Start()
			if !s.ReadyForConnections(15 * time.Second) {
				s.Shutdown()
				errs[i] = fmt.Errorf("nats %s not ready", n.name)
				return
			}
			n.srv = s
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a JetStream meta leader that every node follows", 20*time.Second, func() bool {
		leader := false
		for _, n := range nodes {
			if !n.srv.JetStreamIsCurrent() {
				return false
			}
			leader = leader || n.srv.JetStreamIsLeader()
		}
		return leader
	})
	return nodes
}

// waitFor polls cond every 50ms and fails the test when it does not hold
// within d.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startFaultBroker runs the broker (one instance of every service) on in's
// NATS servers, PostgreSQL and Redis (a fresh database of the test server
// and the test Redis when in names none), with fresh keys, in.Env on top of
// the fault tests' own, and registers the test provider as "acme".
func startFaultBroker(t *testing.T, in systemtest.Infra) *systemtest.Broker {
	t.Helper()
	return startFaultBrokerWith(t, in, oidcprovider.Options{})
}

// startFaultBrokerWith is startFaultBroker with a provider of popts.
func startFaultBrokerWith(t *testing.T, in systemtest.Infra, popts oidcprovider.Options) *systemtest.Broker {
	t.Helper()
	// The lifecycle goroutine begins consents all the time.
	env := map[string]string{"BEGIN_RATE_PER_KEY": "0", "BEGIN_RATE_PER_WORKSPACE": "0"}
	maps.Copy(env, in.Env)
	in.Env = env
	if in.DatabaseURL == "" {
		in.DatabaseURL = testkit.Postgres(t)
	}
	if in.RedisURL == "" {
		in.RedisURL = testkit.Redis(t)
	}
	in.EncryptionKey, in.StateKey = testkit.Key32(t), testkit.Key32(t)
	in.APIKeys = []string{gatewayKey}
	in.Log = testLog()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := systemtest.Start(ctx, in, popts)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(b.Close)
	if _, err := b.RegisterOIDC(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	return b
}

// startSecondInstance runs a second instance of every service beside b's,
// with the same configuration but its own listeners and vault replica id,
// as a second process would.
func startSecondInstance(t *testing.T, b *systemtest.Broker) {
	t.Helper()
	listeners := map[string]net.Listener{}
	for _, name := range []string{"vault", "admin", "handshake", "handshake-internal", "refresher"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listeners[name] = ln
	}
	env := maps.Clone(b.Env)
	env["VAULT_REPLICA_ID"] = "vault-b"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sys, err := system.Start(ctx, system.Overlay(nil, env), listeners, testLog())
	if err != nil {
		t.Fatalf("second instance: %v", err)
	}
	t.Cleanup(func() { _ = sys.Close(context.Background()) })
}

// testLog is where the services log: nowhere, unless NEXUS_TEST_LOG is set
// (to stderr, at warn and above).
func testLog() *slog.Logger {
	if os.Getenv("NEXUS_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// connectN runs n consents, a few at a time, and returns the connections'
// ids.
func connectN(t *testing.T, b *systemtest.Broker, n int) []string {
	t.Helper()
	ctx := ctxT(t)
	ids := make([]string, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			q, err := b.Connect(ctx, "acme", "ws-1")
			if err == nil && q.Get("status") != "active" {
				err = fmt.Errorf("returned with %v", q)
			}
			ids[i], errs[i] = q.Get("connection_id"), err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("consent: %v", err)
	}
	return ids
}

// eventsConsumer is the Gateway's durable consumer on NEXUS_EVENTS.
func eventsConsumer(t *testing.T, b *systemtest.Broker) jetstream.Consumer {
	t.Helper()
	js, err := jetstream.New(b.NC)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	cons, err := js.CreateOrUpdateConsumer(ctx, messages.StreamEvents, jetstream.ConsumerConfig{
		Durable: natsauth.Gateway, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: messages.EventsWildcard(messages.DefaultPrefix),
	})
	if err != nil {
		t.Fatalf("durable consumer on %s: %v", messages.StreamEvents, err)
	}
	return cons
}

// faultLoad is the Gateway's light load: workers reading tokens of active
// connections, and one goroutine making lifecycle changes (a consent, then
// its revocation) that write events.
type faultLoad struct {
	b      *systemtest.Broker
	ids    []string
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	ok     int         // successful tokens.get
	streak int         // successes since the last failure
	fails  []time.Time // tokens.get answered unavailable (at the answer)
	wrong  []string    // any other error, or an answer past the deadline
	// Lifecycle: cycles completed, and when; consents that did not finish,
	// and the connections of those the app was told failed.
	cycles        []time.Time
	consentFailed []string
	toldFailed    []string
	lifecycleErrs []time.Time // begin or revoke answered unavailable
	reported      bool
}

func startLoad(t *testing.T, b *systemtest.Broker, ids []string, workers int) *faultLoad {
	l := &faultLoad{b: b, ids: ids, stop: make(chan struct{})}
	for w := range workers {
		l.wg.Add(1)
		go l.tokens(w)
	}
	l.wg.Add(1)
	go l.lifecycle()
	t.Cleanup(l.halt)
	return l
}

func (l *faultLoad) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

func (l *faultLoad) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// call makes one Gateway request under reqTimeout and classifies its
// outcome: nil, unavailable (returned), or anything else (recorded as wrong).
func (l *faultLoad) call(what, subject string, req, reply any) (err error, unavailable bool) {
	ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
	defer cancel()
	start := time.Now()
	err = l.b.Gateway.Request(ctx, subject, req, reply)
	took := time.Since(start)
	if took > reqTimeout+time.Second {
		l.mu.Lock()
		l.wrong = append(l.wrong, fmt.Sprintf("%s answered after %s, past its %s deadline (%v)", what, took, reqTimeout, err))
		l.mu.Unlock()
	}
	if err == nil {
		return nil, false
	}
	if errors.Is(err, messages.ErrUnavailable) {
		return err, true
	}
	l.mu.Lock()
	l.wrong = append(l.wrong, fmt.Sprintf("%s at %s: %v (%T)", what, start.Format("15:04:05.000"), err, err))
	l.mu.Unlock()
	return err, false
}

func (l *faultLoad) tokens(w int) {
	defer l.wg.Done()
	for i := w; !l.stopped(); i++ {
		id := l.ids[i%len(l.ids)]
		var cred messages.Credential
		err, unavailable := l.call("tokens.get", messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: id, WorkspaceID: "ws-1"}, &cred)
		l.mu.Lock()
		switch {
		case err == nil && cred.AccessToken == "":
			l.wrong = append(l.wrong, "tokens.get answered without an access token")
		case err == nil:
			l.ok++
			l.streak++
		case unavailable:
			l.fails = append(l.fails, time.Now())
			l.streak = 0
		}
		l.mu.Unlock()
		time.Sleep(20 * time.Millisecond) // a light load
	}
}

func (l *faultLoad) lifecycle() {
	defer l.wg.Done()
	for !l.stopped() {
		var begin messages.BeginReply
		err, unavailable := l.call("handshake.begin", messages.SubjectHandshakeBegin, messages.BeginRequest{
			Provider: "acme", WorkspaceID: "ws-1", ReturnURL: l.b.Agent.URL + "/return",
		}, &begin)
		if err != nil {
			l.lifecycleFailed(unavailable)
			continue
		}
		// Longer than the handshake waits for the vault's code exchange
		// (20s), so a consent caught by the fault ends as the broker ends it.
		br := systemtest.NewBrowser()
		br.Timeout = 30 * time.Second
		resp, err := br.Get(begin.AuthURL)
		if err != nil {
			l.consent(fmt.Sprintf("browser: %v", err))
			continue
		}
		resp.Body.Close()
		q := resp.Request.URL.Query()
		if resp.Request.URL.Path == "/return" && q.Get("status") == string(messages.StatusFailed) {
			l.mu.Lock()
			l.toldFailed = append(l.toldFailed, q.Get("connection_id"))
			l.mu.Unlock()
		}
		if resp.Request.URL.Path != "/return" || q.Get("status") != "active" {
			l.consent(fmt.Sprintf("ended at %s with %d", resp.Request.URL.Redacted(), resp.StatusCode))
			continue
		}
		var c messages.Connection
		if err, unavailable := l.call("connections.revoke", messages.SubjectConnectionsRevoke, messages.ConnectionRef{ConnectionID: q.Get("connection_id"), WorkspaceID: "ws-1"}, &c); err != nil {
			l.lifecycleFailed(unavailable)
			continue
		}
		l.mu.Lock()
		l.cycles = append(l.cycles, time.Now())
		l.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
}

func (l *faultLoad) lifecycleFailed(unavailable bool) {
	if unavailable {
		l.mu.Lock()
		l.lifecycleErrs = append(l.lifecycleErrs, time.Now())
		l.mu.Unlock()
	}
	time.Sleep(50 * time.Millisecond)
}

func (l *faultLoad) consent(why string) {
	l.mu.Lock()
	l.consentFailed = append(l.consentFailed, time.Now().Format("15:04:05.000")+" "+why)
	l.mu.Unlock()
	time.Sleep(50 * time.Millisecond)
}

// snapshot returns successes, the current streak and lifecycle cycles
// completed after since.
func (l *faultLoad) snapshot(since time.Time) (ok, streak, cycles int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.cycles {
		if c.After(since) {
			cycles++
		}
	}
	return l.ok, l.streak, cycles
}

// report stops the load, checks that no request failed but with
// unavailable within its deadline and none before fault, and logs the
// failover window relative to fault.
func (l *faultLoad) report(t *testing.T, fault time.Time) {
	t.Helper()
	l.halt()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.reported {
		return
	}
	l.reported = true
	for _, w := range l.wrong {
		t.Errorf("outside the contract: %s", w)
	}
	for _, f := range append(slices.Clone(l.fails), l.lifecycleErrs...) {
		if f.Before(fault) {
			t.Errorf("a request failed at %s, before the fault at %s", f.Format("15:04:05.000"), fault.Format("15:04:05.000"))
		}
	}
	if len(l.fails) == 0 {
		t.Logf("failover window: no tokens.get failed (%d succeeded)", l.ok)
	} else {
		first, last := l.fails[0], l.fails[len(l.fails)-1] // appended in time order
		t.Logf("failover window: %d tokens.get answered unavailable, the first %s and the last %s after the fault (window %s); %d succeeded",
			len(l.fails), first.Sub(fault).Round(time.Millisecond), last.Sub(fault).Round(time.Millisecond), last.Sub(first).Round(time.Millisecond), l.ok)
	}
	t.Logf("lifecycle: %d cycles (consent + revoke), %d begin/revoke answered unavailable, %d consents not finished", len(l.cycles), len(l.lifecycleErrs), len(l.consentFailed))
	for _, c := range l.consentFailed {
		t.Logf("  consent not finished: %s", c)
	}
}

// allSucceed: every connection's tokens.get succeeds, n times over.
func allSucceed(t *testing.T, b *systemtest.Broker, ids []string, n int) {
	t.Helper()
	for i := range n {
		for _, id := range ids {
			ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
			var cred messages.Credential
			err := b.Gateway.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: id, WorkspaceID: "ws-1"}, &cred)
			cancel()
			if err != nil || cred.AccessToken == "" {
				t.Fatalf("after the failover, tokens.get #%d of %s: %v", i, id, err)
			}
		}
	}
}

// noEventLost waits until the vault's outbox holds no unpublished event,
// then reads cons until it has every event of the outbox, de-duplicated by
// id, and checks each against its outbox row.
func noEventLost(t *testing.T, b *systemtest.Broker, cons jetstream.Consumer) {
	t.Helper()
	ctx := ctxT(t)
	db, err := pgx.Connect(ctx, b.Infra.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	waitFor(t, "the relay to publish every event of the outbox", 50*time.Second, func() bool {
		var n int
		err := db.QueryRow(ctx, "select count(*) from vault.outbox where published_at is null").Scan(&n)
		return err == nil && n == 0
	})
	rows, err := db.Query(ctx, "select id::text, type from vault.outbox where connection_id is not null")
	if err != nil {
		t.Fatal(err)
	}
	want, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var v [2]string
		return v, r.Scan(&v[0], &v[1])
	})
	if err != nil {
		t.Fatal(err)
	}
	wantType := map[string]string{}
	for _, w := range want {
		wantType[w[0]] = w[1]
	}
	got, delivered := deliveredEvents(t, cons, wantType, 20*time.Second)
	for id, e := range got {
		if _, ok := wantType[id]; !ok {
			t.Errorf("event %s (%s) is not in the outbox", id, e.Type)
		}
	}
	t.Logf("events: all %d of the outbox delivered (%d deliveries)", len(wantType), delivered)
}

// deliveredEvents reads cons, acknowledging each message, until it has
// every event of want (id -> outbox type) or wait has passed, and returns
// the connection events it read, by id, and how many deliveries that took.
// Each event read must carry its id as Nats-Msg-Id and, when want has it,
// be of want's type; any of want not read fails the test.
func deliveredEvents(t *testing.T, cons jetstream.Consumer, want map[string]string, wait time.Duration) (map[string]messages.Event, int) {
	t.Helper()
	got := map[string]messages.Event{}
	found, delivered := 0, 0
	deadline := time.Now().Add(wait)
	for found < len(want) && time.Now().Before(deadline) {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			continue // the consumer's leader may still be moving; fetch again
		}
		for m := range batch.Messages() {
			var e messages.Event
			if err := json.Unmarshal(m.Data(), &e); err != nil {
				t.Fatalf("event body: %v", err)
			}
			_ = m.Ack()
			delivered++
			if m.Headers().Get(messages.HeaderMsgID) != e.ID {
				t.Errorf("event %s with Nats-Msg-Id %q", e.ID, m.Headers().Get(messages.HeaderMsgID))
			}
			if e.ConnectionID == "" {
				continue // a provider event
			}
			if typ, ok := want[e.ID]; ok && e.Type != messages.EventType(typ).FullType() {
				t.Errorf("event %s is %s, the outbox says %s", e.ID, e.Type, typ)
			}
			if _, seen := got[e.ID]; !seen {
				got[e.ID] = e
				if _, ok := want[e.ID]; ok {
					found++
				}
			}
		}
	}
	var lost []string
	for id, typ := range want {
		if _, ok := got[id]; !ok {
			lost = append(lost, id+" ("+typ+")")
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d of %d events of the outbox never reached the consumer: %v", len(lost), len(want), lost)
	}
	return got, delivered
}

// TestNATSCluster kills the node of a three-node NATS cluster that leads
// NEXUS_EVENTS while two instances of every service serve a light load.
func TestNATSCluster(t *testing.T) {
	passwords := natsPasswords(t)
	nodes := startNATSCluster(t, passwords)
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.url())
	}
	b := startFaultBroker(t, systemtest.Infra{NATSURL: strings.Join(urls, ","), NATSPasswords: passwords, Env: map[string]string{
		"EVENTS_REPLICAS": "3", "VAULT_REPLICA_ID": "vault-a",
	}})
	startSecondInstance(t, b)
	ids := connectN(t, b, 3)
	cons := eventsConsumer(t, b)
	js, err := jetstream.New(b.NC)
	if err != nil {
		t.Fatal(err)
	}
	streamInfo := func() (*jetstream.StreamInfo, error) {
		ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
		defer cancel()
		s, err := js.Stream(ctx, messages.StreamEvents)
		if err != nil {
			return nil, err
		}
		return s.Info(ctx)
	}
	info, err := streamInfo()
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatalf("%s: %d replicas, cluster %+v; want 3 with a leader", messages.StreamEvents, info.Config.Replicas, info.Cluster)
	}

	l, faultAt := serveLoad(t, b, ids)

	// Kill the stream's leader.
	var victim *natsNode
	for _, n := range nodes {
		if n.name == info.Cluster.Leader {
			victim = n
		}
	}
	if victim == nil {
		t.Fatalf("the stream's leader %q is none of the nodes", info.Cluster.Leader)
	}
	*faultAt = time.Now()
	fault := *faultAt
	victim.stop()
	t.Logf("killed %s, the leader of %s, at %s", victim.name, messages.StreamEvents, fault.Format("15:04:05.000"))

	// The broker serves again on the other two: every request begun before
	// the kill has ended and a run of successes since the last failure;
	// then lifecycle changes complete (a consent caught by the kill may
	// wait for its code exchange's whole budget).
	waitFor(t, "tokens.get to be served again on two nodes", 20*time.Second, func() bool {
		_, streak, _ := l.snapshot(fault)
		return time.Since(fault) > reqTimeout+time.Second && streak >= 200
	})
	t.Logf("tokens.get served again %s after the kill", time.Since(fault).Round(time.Millisecond))
	waitFor(t, "lifecycle changes on two nodes", 30*time.Second, func() bool {
		_, _, cycles := l.snapshot(fault)
		return cycles >= 2
	})
	recovered := time.Now()
	waitFor(t, "a new leader of the stream, still of 3 replicas", 20*time.Second, func() bool {
		info, err := streamInfo()
		return err == nil && info.Config.Replicas == 3 && info.Cluster != nil && info.Cluster.Leader != "" && info.Cluster.Leader != victim.name
	})
	t.Logf("lifecycle changes served again %s after the kill", recovered.Sub(fault).Round(time.Millisecond))

	// The node comes back with its store and catches up.
	victim.start(t)
	waitFor(t, "every replica of the stream current after the restart", 30*time.Second, func() bool {
		info, err := streamInfo()
		if err != nil || info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			return false
		}
		for _, p := range info.Cluster.Replicas {
			if !p.Current || p.Offline {
				return false
			}
		}
		return true
	})
	restarted := time.Now()
	waitFor(t, "lifecycle changes after the node's return", 20*time.Second, func() bool {
		_, streak, cycles := l.snapshot(restarted)
		return streak >= 100 && cycles >= 1
	})
	l.report(t, fault)
	allSucceed(t, b, ids, 10)
	noEventLost(t, b, cons)
}

// TestNATSRestartUnderLoad stops the broker's only NATS server under load
// and starts it again on the same port with the same JetStream store: the
// services reconnect by themselves.
func TestNATSRestartUnderLoad(t *testing.T) {
	passwords := natsPasswords(t)
	n := &natsNode{name: "single", client: freePorts(t, 1)[0], store: t.TempDir(), passwords: passwords}
	n.start(t)
	t.Cleanup(n.stop)
	b := startFaultBroker(t, systemtest.Infra{NATSURL: n.url(), NATSPasswords: passwords})
	ids := connectN(t, b, 3)
	cons := eventsConsumer(t, b)

	l, faultAt := serveLoad(t, b, ids)
	*faultAt = time.Now()
	fault := *faultAt
	n.stop()
	t.Logf("stopped the NATS server at %s", fault.Format("15:04:05.000"))
	// Down long enough for requests to fail at their deadline.
	waitFor(t, "requests to fail while NATS is down", 10*time.Second, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.fails) >= 4
	})
	n.start(t)
	back := time.Now()
	t.Logf("started it again %s later", back.Sub(fault).Round(time.Millisecond))
	waitFor(t, "tokens.get to be served again", 20*time.Second, func() bool {
		_, streak, _ := l.snapshot(back)
		return time.Since(back) > reqTimeout+time.Second && streak >= 200
	})
	t.Logf("tokens.get served again %s after the restart", time.Since(back).Round(time.Millisecond))
	waitFor(t, "lifecycle changes after the restart", 30*time.Second, func() bool {
		_, _, cycles := l.snapshot(back)
		return cycles >= 2
	})
	t.Logf("lifecycle changes served again %s after the restart", time.Since(back).Round(time.Millisecond))
	l.report(t, fault)
	allSucceed(t, b, ids, 10)
	noEventLost(t, b, cons)
}
