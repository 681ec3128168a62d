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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/run/buildinfo"
	"github.com/nexus-broker/nexus/system/systemtest"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

func main() {
	var pl plan
	flag.IntVar(&pl.rounds, "rounds", 15, "how many times the phases alternate; the figures are over all rounds")
	flag.DurationVar(&pl.duration, "duration", time.Second, "how long each throughput phase runs in each round")
	flag.IntVar(&pl.latencyN, "n", 24000, "requests in each path's one-in-flight latency phases, over all rounds")
	flag.IntVar(&pl.inflight, "inflight", 64, "requests in flight for the throughput phase")
	pgBase := flag.String("postgres", envOr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL server for a temporary database")
	redisURL := flag.String("redis", envOr("REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis URL")
	stored := flag.Int("stored", 1_000_000, "connections seeded (sealed, with COPY) for the working-set phases; 0 skips them")
	readSet := flag.Int("working-set", 100_000, "connections of the stored ones the working-set phases read")
	profileDir := flag.String("profiles", "", "write a CPU profile of each throughput phase (its rounds merged) to DIR/<phase>.prof")
	version := flag.Bool("version", false, "print the version and Go build information, then exit")
	flag.Parse()
	if *version {
		fmt.Print(buildinfo.Text("nexus-bench"))
		return
	}
	if *stored > 0 && (*readSet <= 0 || *readSet > *stored) {
		fmt.Fprintln(os.Stderr, "nexus-bench: -working-set must be between 1 and -stored")
		os.Exit(2)
	}
	ws := workingSet{stored: *stored, read: *readSet}
	if pl.rounds < 1 || pl.latencyN < pl.rounds || pl.inflight < 1 {
		fmt.Fprintln(os.Stderr, "nexus-bench: -rounds, -inflight must be at least 1, and -n at least -rounds")
		os.Exit(2)
	}
	pl.profiles = &profiles{dir: *profileDir}
	err := run(pl, *pgBase, *redisURL, ws)
	if err == nil {
		err = pl.profiles.write()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nexus-bench:", err)
		os.Exit(1)
	}
}

func run(pl plan, pgBase, redisURL string, ws workingSet) error {
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
	phases := []*phase{{name: "floor", mk: floor}, {name: "same-size", mk: sizedFloor}, {name: "tokens", mk: tokens}}
	for _, p := range phases {
		if _, err := latency(client, p.mk, 2000); err != nil {
			return err
		}
	}
	missedBefore := cacheMisses(b.VaultURL)
	if err := measure(client, phases, pl); err != nil {
		return err
	}
	missed := "unknown" // the vault's /metrics did not answer
	if before, after := missedBefore, cacheMisses(b.VaultURL); before >= 0 && after >= 0 {
		missed = strconv.FormatInt(after-before, 10)
	}
	fl, fs, tk := phases[0], phases[1], phases[2]

	fmt.Printf("nexus-bench: tokens.get vs its floors (do-nothing NATS responders replying empty and with %d bytes, the Credential's size), same server and client, GOMAXPROCS=%d\n\n", len(sized), runtimeProcs())
	fmt.Printf("%-28s %12s %12s %12s %8s %10s %8s %10s\n", "", "floor", "same-size", "tokens.get", "ratio", "target", "ratio", "target")
	tr, trs := tk.thr/fl.thr, tk.thr/fs.thr
	fmt.Printf("%-28s %12.0f %12.0f %12.0f %8.2f %10s %8.2f %10s %s\n", fmt.Sprintf("throughput @%d (req/s)", pl.inflight),
		fl.thr, fs.thr, tk.thr, tr, ">= 0.80", trs, ">= 0.90", verdict(tr >= 0.8 && trs >= 0.9))
	cf, cs, ct := fl.cpuPerRequest(), fs.cpuPerRequest(), tk.cpuPerRequest()
	fmt.Printf("%-28s %12s %12s %12s %8.2f %10s %8.2f %10s\n", fmt.Sprintf("CPU per request @%d", pl.inflight), us1(cf), us1(cs), us1(ct),
		float64(cf)/float64(ct), "-", float64(cs)/float64(ct), "-")
	if fs.syscalls > 0 {
		fmt.Printf("%-28s %12.2f %12.2f %12.2f\n", "syscalls per request", fl.syscallsPerRequest(), fs.syscallsPerRequest(), tk.syscallsPerRequest())
	}
	fmt.Printf("%-28s %12.1f %12.1f %12.1f\n", "heap allocations per request", fl.allocsPerRequest(), fs.allocsPerRequest(), tk.allocsPerRequest())
	fmt.Printf("%-28s %12s %12s %12s\n", "cache misses", "", "", missed)
	p50, p50s := float64(tk.lat.p50)/float64(fl.lat.p50), float64(tk.lat.p50)/float64(fs.lat.p50)
	fmt.Printf("%-28s %12s %12s %12s %8.2f %10s %8.2f %10s %s\n", "p50 @1 in flight", us(fl.lat.p50), us(fs.lat.p50), us(tk.lat.p50),
		p50, "<= 1.50", p50s, "<= 1.30", verdict(p50 <= 1.5 && p50s <= 1.3))
	p99, p99s := float64(tk.lat.p99)/float64(fl.lat.p99), float64(tk.lat.p99)/float64(fs.lat.p99)
	fmt.Printf("%-28s %12s %12s %12s %8.2f %10s %8.2f %10s\n", "p99 @1 in flight", us(fl.lat.p99), us(fs.lat.p99), us(tk.lat.p99), p99, "-", p99s, "-")
	if ws.stored == 0 {
		return nil
	}
	return ws.measure(client, messages.Subject(messages.DefaultPrefix, messages.SubjectTokensGet), set, fs, pl)
}

// plan is how long and how often the phases run.
type plan struct {
	rounds   int           // how many times the phases alternate
	duration time.Duration // each throughput phase, per round
	latencyN int           // each path's one-in-flight requests, over all rounds
	inflight int           // requests in flight for throughput
	profiles *profiles     // CPU profiles of the throughput phases
}

// measure runs each phase's latency and throughput measurements. The
// phases alternate, in short rounds, so drift in the machine (GC, a
// neighbour's load) falls on all alike, and each round starts with the
// next phase, so none always runs first or last; the figures are the means
// over the rounds.
func measure(client *nats.Conn, phases []*phase, pl plan) error {
	n := pl.latencyN / pl.rounds
	for round := range pl.rounds {
		for i := range phases {
			p := phases[(round+i)%len(phases)]
			l, err := latency(client, p.mk, n)
			if err != nil {
				return err
			}
			if err := pl.profiles.start(); err != nil {
				return err
			}
			cpu, calls, allocs := processCPU(), ioSyscalls(), mallocs()
			thr, done, err := throughput(client, p.mk, pl.inflight, pl.duration, 0)
			if err != nil {
				return err
			}
			if err := pl.profiles.stop(p.name); err != nil {
				return err
			}
			p.cpu += processCPU() - cpu
			p.syscalls += ioSyscalls() - calls
			p.allocs += mallocs() - allocs
			p.requests += done
			p.lat.p50 += l.p50 / time.Duration(pl.rounds)
			p.lat.p99 += l.p99 / time.Duration(pl.rounds)
			p.thr += thr / float64(pl.rounds)
		}
	}
	return nil
}

// phase is one path measured: how to make its request, and its figures.
type phase struct {
	name string // of its profile (plan.profiles)
	mk   func() *nats.Msg
	lat  lat
	thr  float64
	// cpu is the process's CPU time (user and system, every goroutine:
	// client, NATS server and broker) over the throughput phases, and
	// requests how many they answered: their quotient is the CPU a request
	// costs, which with the cores full is what throughput is made of.
	cpu      time.Duration
	requests int64
	// syscalls is how many read and write system calls the process made
	// over the throughput phases (Linux; 0 elsewhere): per request, it
	// says how well messages were batched into reads and writes.
	syscalls int64
	// allocs is how many heap objects the process allocated over the
	// throughput phases: per request, the garbage each one leaves the
	// collector.
	allocs uint64
}

type lat struct{ p50, p99 time.Duration }

// cpuPerRequest is the CPU time one request of the throughput phases cost
// the whole process.
func (p *phase) cpuPerRequest() time.Duration {
	if p.requests == 0 {
		return 0
	}
	return p.cpu / time.Duration(p.requests)
}

// syscallsPerRequest is syscalls over requests (see phase.syscalls).
func (p *phase) syscallsPerRequest() float64 {
	if p.requests == 0 {
		return 0
	}
	return float64(p.syscalls) / float64(p.requests)
}

// allocsPerRequest is allocs over requests (see phase.allocs).
func (p *phase) allocsPerRequest() float64 {
	if p.requests == 0 {
		return 0
	}
	return float64(p.allocs) / float64(p.requests)
}

// mallocs is how many heap objects the process has allocated so far.
func mallocs() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.Mallocs
}

// ioSyscalls is the process's count of read and write system calls so far,
// from /proc/self/io; 0 where there is none.
func ioSyscalls() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	var n int64
	for _, line := range strings.Split(string(b), "\n") {
		if name, v, ok := strings.Cut(line, ": "); ok && (name == "syscr" || name == "syscw") {
			c, _ := strconv.ParseInt(v, 10, 64)
			n += c
		}
	}
	return n
}

// cacheMisses is the vault's count of tokens.get reads that missed its
// cache (nexus_vault_token_cache_total{result="miss"}), from its /metrics;
// -1 when it cannot be read.
func cacheMisses(vaultURL string) int64 {
	v, found, err := systemtest.MetricSample(vaultURL+"/metrics", `nexus_vault_token_cache_total{result="miss"}`)
	if err != nil || !found {
		return -1
	}
	return int64(v)
}

// processCPU is the CPU time the process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

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
// requests have been made, returning the rate and how many were answered.
func throughput(nc *nats.Conn, mk func() *nats.Msg, inflight int, dur time.Duration, n int64) (float64, int64, error) {
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
		return 0, 0, err
	}
	return float64(done.Load()) / time.Since(start).Seconds(), done.Load(), nil
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISSED"
}

func us(d time.Duration) string  { return fmt.Sprintf("%.0fµs", float64(d.Nanoseconds())/1e3) }
func us1(d time.Duration) string { return fmt.Sprintf("%.1fµs", float64(d.Nanoseconds())/1e3) }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
