// Command nexus-bench measures nexus.v1.tokens.get against its floors
// (docs/ARCHITECTURE.md, section 5): NATS request/replies to responders that
// do nothing, one replying empty and one replying as many bytes as the real
// Credential, measured in the same run on the same server and client. It
// prints throughput at 64 requests in flight and p50/p99 latency at one in
// flight, with the ratios to each floor and the targets.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/run/buildinfo"
	"github.com/nexus-broker/nexus/system/systemtest"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long each throughput phase runs")
	latencyN := flag.Int("n", 20000, "requests in each one-in-flight latency phase")
	inflight := flag.Int("inflight", 64, "requests in flight for the throughput phase")
	pgBase := flag.String("postgres", envOr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL server for a temporary database")
	redisURL := flag.String("redis", envOr("REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis URL")
	stored := flag.Int("stored", 1_000_000, "connections seeded (sealed, with COPY) for the working-set phases; 0 skips them")
	readSet := flag.Int("working-set", 100_000, "connections of the stored ones the working-set phases read")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the measured phases to this file")
	version := flag.Bool("version", false, "print the version and Go build information, then exit")
	flag.Parse()
	if *version {
		fmt.Print(buildinfo.Text("nexus-bench"))
		return
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "nexus-bench:", err)
			os.Exit(1)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "nexus-bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if *stored > 0 && (*readSet <= 0 || *readSet > *stored) {
		fmt.Fprintln(os.Stderr, "nexus-bench: -working-set must be between 1 and -stored")
		os.Exit(2)
	}
	ws := workingSet{stored: *stored, read: *readSet}
	if err := run(*duration, *latencyN, *inflight, *pgBase, *redisURL, ws); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "nexus-bench:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, latencyN, inflight int, pgBase, redisURL string, ws workingSet) error {
	ctx := context.Background()
	in, closeInfra, err := systemtest.Local(ctx, "nexus-bench", pgBase, redisURL)
	if err != nil {
		return err
	}
	defer closeInfra()
	apiKey := in.APIKeys[0]
	ws.dbURL, ws.key, ws.apiKey, ws.workspace = in.DatabaseURL, in.EncryptionKey, apiKey, "ws-bench"
	b, err := systemtest.Start(ctx, in, oidcprovider.Options{})
	if err != nil {
		return err
	}
	defer b.Close()
	registered, err := b.RegisterOIDC(ctx, "bench")
	if err != nil {
		return fmt.Errorf("register provider: %w", err)
	}
	ws.providerID = registered.ID
	q, err := b.Connect(ctx, "bench", "ws-bench")
	if err != nil || q.Get("status") != "active" {
		return fmt.Errorf("consent: %v %v", q, err)
	}
	connID := q.Get("connection_id")

	// The floor: a responder that does nothing, on its own connection as a service has.
	floorNC, err := nats.Connect(in.NATSURL, nats.Name("floor"))
	if err != nil {
		return err
	}
	defer floorNC.Close()
	if _, err := floorNC.QueueSubscribe("bench.floor", "floor", func(m *nats.Msg) { _ = m.Respond(nil) }); err != nil {
		return err
	}
	if err := floorNC.Flush(); err != nil {
		return err
	}

	client, err := nats.Connect(in.NATSURL, nats.Name("bench-gateway"))
	if err != nil {
		return err
	}
	defer client.Close()
	body, _ := json.Marshal(messages.TokenRequest{ConnectionID: connID, WorkspaceID: "ws-bench"})
	mk := func(subject string) func() *nats.Msg {
		return func() *nats.Msg {
			m := nats.NewMsg(subject)
			m.Data = body
			m.Header.Set(messages.HeaderAPIKey, apiKey)
			return m
		}
	}
	floor := mk("bench.floor")
	tokens := mk(messages.Subject(messages.DefaultPrefix, messages.SubjectTokensGet))

	// Check the real thing answers with a token before measuring it.
	resp, err := client.RequestMsg(tokens(), 5*time.Second)
	if err != nil {
		return err
	}
	var cred messages.Credential
	if err := natsx.DecodeReply(resp, &cred); err != nil || cred.AccessToken == "" {
		return fmt.Errorf("tokens.get does not answer with a token: %v", err)
	}
	ws.tokenLen = len(cred.AccessToken)
	var set []string
	if ws.stored > 0 {
		// Seeded before anything is measured: COPY's load on the machine
		// is over by then.
		if set, err = ws.seed(ctx); err != nil {
			return err
		}
	}
	// The same-size floor: a do-nothing responder whose reply has as many
	// bytes as the real Credential, so that the ratio to it is the
	// broker's own cost, not the bytes on the wire.
	sized := make([]byte, len(resp.Data))
	if _, err := floorNC.QueueSubscribe("bench.floor.sized", "floor", func(m *nats.Msg) { _ = m.Respond(sized) }); err != nil {
		return err
	}
	if err := floorNC.Flush(); err != nil {
		return err
	}
	sizedFloor := mk("bench.floor.sized")

	// Warm up every path, then measure each phase, floors first.
	phases := []*phase{{mk: floor}, {mk: sizedFloor}, {mk: tokens}}
	for _, p := range phases {
		if _, err := latency(client, p.mk, 2000); err != nil {
			return err
		}
	}
	if err := measure(client, phases, latencyN, inflight, duration); err != nil {
		return err
	}
	fl, fs, tk := phases[0], phases[1], phases[2]

	fmt.Printf("nexus-bench: tokens.get vs its floors (do-nothing NATS responders replying empty and with %d bytes, the Credential's size), same server and client, GOMAXPROCS=%d\n\n", len(sized), runtimeProcs())
	fmt.Printf("%-28s %12s %12s %12s %8s %10s %8s %10s\n", "", "floor", "same-size", "tokens.get", "ratio", "target", "ratio", "target")
	tr, trs := tk.thr/fl.thr, tk.thr/fs.thr
	fmt.Printf("%-28s %12.0f %12.0f %12.0f %8.2f %10s %8.2f %10s %s\n", fmt.Sprintf("throughput @%d (req/s)", inflight),
		fl.thr, fs.thr, tk.thr, tr, ">= 0.80", trs, ">= 0.90", verdict(tr >= 0.8 && trs >= 0.9))
	p50, p50s := float64(tk.lat.p50)/float64(fl.lat.p50), float64(tk.lat.p50)/float64(fs.lat.p50)
	fmt.Printf("%-28s %12s %12s %12s %8.2f %10s %8.2f %10s %s\n", "p50 @1 in flight", us(fl.lat.p50), us(fs.lat.p50), us(tk.lat.p50),
		p50, "<= 1.50", p50s, "<= 1.30", verdict(p50 <= 1.5 && p50s <= 1.3))
	p99, p99s := float64(tk.lat.p99)/float64(fl.lat.p99), float64(tk.lat.p99)/float64(fs.lat.p99)
	fmt.Printf("%-28s %12s %12s %12s %8.2f %10s %8.2f %10s\n", "p99 @1 in flight", us(fl.lat.p99), us(fs.lat.p99), us(tk.lat.p99), p99, "-", p99s, "-")
	if ws.stored == 0 {
		return nil
	}
	return ws.measure(client, messages.Subject(messages.DefaultPrefix, messages.SubjectTokensGet), set, fs, latencyN, inflight, duration)
}

// measure runs each phase's latency and throughput measurements. The
// phases alternate, twice each, so drift in the machine (GC, other load)
// falls on all; the figures are the means.
func measure(client *nats.Conn, phases []*phase, latencyN, inflight int, duration time.Duration) error {
	const rounds = 2
	for range rounds {
		for _, p := range phases {
			l, err := latency(client, p.mk, latencyN)
			if err != nil {
				return err
			}
			thr, err := throughput(client, p.mk, inflight, duration, 0)
			if err != nil {
				return err
			}
			p.lat.p50 += l.p50 / rounds
			p.lat.p99 += l.p99 / rounds
			p.thr += thr / rounds
		}
	}
	return nil
}

// phase is one path measured: how to make its request, and its figures.
type phase struct {
	mk  func() *nats.Msg
	lat lat
	thr float64
}

type lat struct{ p50, p99 time.Duration }

func latency(nc *nats.Conn, mk func() *nats.Msg, n int) (lat, error) {
	d := make([]time.Duration, n)
	for i := range d {
		start := time.Now()
		resp, err := nc.RequestMsg(mk(), 5*time.Second)
		if err != nil {
			return lat{}, err
		}
		if resp.Header.Get(messages.HeaderErrorCode) != "" {
			return lat{}, fmt.Errorf("error reply: %s", resp.Data)
		}
		d[i] = time.Since(start)
	}
	slices.Sort(d)
	return lat{p50: d[n/2], p99: d[n*99/100]}, nil
}

// throughput runs inflight requests at a time for dur, or (n > 0) until n
// requests have been made.
func throughput(nc *nats.Conn, mk func() *nats.Msg, inflight int, dur time.Duration, n int64) (float64, error) {
	var done, started atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(dur)
	more := func() bool {
		if n > 0 {
			return started.Add(1) <= n
		}
		return time.Now().Before(deadline)
	}
	var wg sync.WaitGroup
	start := time.Now()
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for more() {
				resp, err := nc.RequestMsg(mk(), 5*time.Second)
				if err == nil && resp.Header.Get(messages.HeaderErrorCode) != "" {
					err = fmt.Errorf("error reply: %s", resp.Data)
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return 0, err
	}
	return float64(done.Load()) / time.Since(start).Seconds(), nil
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISSED"
}

func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d.Nanoseconds())/1e3) }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
