// Command nexus-bench measures nexus.v1.tokens.get against its floor
// (docs/ARCHITECTURE.md, section 5): a NATS request/reply to a responder that does
// nothing, measured in the same run on the same server and client. It prints
// throughput at 64 requests in flight and p50/p99 latency at one in flight,
// with the ratios and the targets.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
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

	"github.com/jackc/pgx/v5"
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
	if err := run(*duration, *latencyN, *inflight, *pgBase, *redisURL); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "nexus-bench:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, latencyN, inflight int, pgBase, redisURL string) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "nexus-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ns, err := natsx.StartEmbedded(natsx.EmbeddedOptions{StoreDir: dir})
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	dbURL, drop, err := tempDatabase(ctx, pgBase)
	if err != nil {
		return err
	}
	defer drop()

	apiKey := "bench-key-" + randHex(12)
	b, err := systemtest.Start(ctx, systemtest.Infra{
		NATSURL: ns.ClientURL(), DatabaseURL: dbURL, RedisURL: redisURL,
		EncryptionKey: randKey(), StateKey: randKey(), APIKeys: []string{apiKey},
	}, oidcprovider.Options{})
	if err != nil {
		return err
	}
	defer b.Close()
	if _, err := b.RegisterOIDC(ctx, "bench"); err != nil {
		return fmt.Errorf("register provider: %w", err)
	}
	q, err := b.Connect(ctx, "bench", "ws-bench")
	if err != nil || q.Get("status") != "active" {
		return fmt.Errorf("consent: %v %v", q, err)
	}
	connID := q.Get("connection_id")

	// The floor: a responder that does nothing, on its own connection as a service has.
	floorNC, err := nats.Connect(ns.ClientURL(), nats.Name("floor"))
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

	client, err := nats.Connect(ns.ClientURL(), nats.Name("bench-gateway"))
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

	// Warm up both paths, then measure each phase floor first, real second.
	for _, f := range []func() *nats.Msg{floor, tokens} {
		if _, err := latency(client, f, 2000); err != nil {
			return err
		}
	}
	// Floor and real phases alternate, twice each, so drift in the machine
	// (GC, other load) falls on both; the figures are the means.
	var fl1, tk1 lat
	var flT, tkT float64
	const rounds = 2
	for range rounds {
		for _, phase := range []struct {
			mk func() *nats.Msg
			l  *lat
			t  *float64
		}{{floor, &fl1, &flT}, {tokens, &tk1, &tkT}} {
			l, err := latency(client, phase.mk, latencyN)
			if err != nil {
				return err
			}
			thr, err := throughput(client, phase.mk, inflight, duration)
			if err != nil {
				return err
			}
			phase.l.p50 += l.p50 / rounds
			phase.l.p99 += l.p99 / rounds
			*phase.t += thr / rounds
		}
	}

	fmt.Printf("nexus-bench: tokens.get vs the floor (a do-nothing NATS responder), same server and client, GOMAXPROCS=%d\n\n", runtimeProcs())
	fmt.Printf("%-28s %12s %12s %8s %10s\n", "", "floor", "tokens.get", "ratio", "target")
	tr := tkT / flT
	fmt.Printf("%-28s %12.0f %12.0f %8.2f %10s %s\n", fmt.Sprintf("throughput @%d (req/s)", inflight), flT, tkT, tr, ">= 0.80", verdict(tr >= 0.8))
	p50 := float64(tk1.p50) / float64(fl1.p50)
	fmt.Printf("%-28s %12s %12s %8.2f %10s %s\n", "p50 @1 in flight", us(fl1.p50), us(tk1.p50), p50, "<= 1.50", verdict(p50 <= 1.5))
	p99 := float64(tk1.p99) / float64(fl1.p99)
	fmt.Printf("%-28s %12s %12s %8.2f %10s\n", "p99 @1 in flight", us(fl1.p99), us(tk1.p99), p99, "-")
	return nil
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

func throughput(nc *nats.Conn, mk func() *nats.Msg, inflight int, dur time.Duration) (float64, error) {
	var done atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	start := time.Now()
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
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

func tempDatabase(ctx context.Context, base string) (string, func(), error) {
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		return "", nil, err
	}
	admin, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", nil, fmt.Errorf("PostgreSQL at %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	name := "nexus_bench_" + randHex(6)
	if _, err := admin.Exec(ctx, "create database "+name); err != nil {
		admin.Close(ctx)
		return "", nil, err
	}
	drop := func() {
		_, _ = admin.Exec(context.Background(), "drop database if exists "+name+" with (force)")
		admin.Close(context.Background())
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name), drop, nil
}

func randKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
