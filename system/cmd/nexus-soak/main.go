// Command nexus-soak runs the broker with many connections whose access
// tokens live briefly, two refreshers renewing them against the loopback
// fosite provider (refresh-token rotation on) and a tokens.get load
// sampling them, for a while (system/soak). It prints a progress line
// every few seconds and a report, and exits 1 when a promise broke: an
// expired token served, a token the provider refuses, a refresh token
// presented twice, a connection lost, an error answer.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"github.com/nexus-broker/nexus/shared/run/buildinfo"
	"github.com/nexus-broker/nexus/system/soak"
	"github.com/nexus-broker/nexus/system/systemtest"
)

func main() {
	var c soak.Config
	flag.IntVar(&c.Connections, "connections", 100_000, "connections seeded")
	flag.DurationVar(&c.Duration, "duration", 5*time.Minute, "how long the load runs once they are seeded")
	flag.DurationVar(&c.TokenTTL, "token-ttl", 20*time.Minute, "the provider's access token lifetime: each connection is renewed lead before it expires, or at half life")
	flag.DurationVar(&c.Lead, "lead", soak.DefaultLead, "the vault's REFRESH_LEAD_TIME")
	flag.IntVar(&c.Refreshers, "refreshers", soak.DefaultRefreshers, "refresher replicas")
	flag.IntVar(&c.Rate, "rate", soak.DefaultRate, "tokens.get a second")
	flag.IntVar(&c.Workers, "workers", soak.DefaultWorkers, "tokens.get in flight at most")
	flag.DurationVar(&c.MinValid, "min-valid", soak.DefaultMinValid, "min_valid_seconds of each tokens.get")
	flag.BoolVar(&c.IDTokens, "id-tokens", false, "grant openid: every renewal brings an id_token (the provider signs them one at a time)")
	flag.DurationVar(&c.Every, "every", soak.DefaultEvery, "how often lag is looked at and progress printed")
	pgBase := flag.String("postgres", envOr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL server for a temporary database")
	redisURL := flag.String("redis", envOr("REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis URL")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	verbose := flag.Bool("v", false, "log the services' warnings to stderr")
	version := flag.Bool("version", false, "print the version and Go build information, then exit")
	flag.Parse()
	if *version {
		fmt.Print(buildinfo.Text("nexus-soak"))
		return
	}
	c.Progress = os.Stdout
	if *verbose {
		c.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	stop, err := startProfile(*cpuProfile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nexus-soak:", err)
		os.Exit(2)
	}
	ok, err := run(c, *pgBase, *redisURL)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "nexus-soak:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

func run(c soak.Config, pgBase, redisURL string) (bool, error) {
	ctx := context.Background()
	in, closeInfra, err := systemtest.Local(ctx, "nexus-soak", pgBase, redisURL)
	if err != nil {
		return false, err
	}
	defer closeInfra()
	r, err := soak.Run(ctx, in, c)
	if err != nil {
		return false, err
	}
	r.Print(os.Stdout)
	return len(r.Problems()) == 0, nil
}

// startProfile starts a CPU profile to path, when one is asked for, and
// returns what stops it.
func startProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
