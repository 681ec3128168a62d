// Command nexus runs every Nexus Broker service in one process with an
// embedded NATS server (JetStream on a local data dir): `make run`.
// PostgreSQL and Redis come from DATABASE_URL and REDIS_URL or the local
// defaults; development keys are generated once and kept in the data dir.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nexus-broker/nexus/shared/logging"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/system"
)

func main() {
	dataDir := flag.String("data", ".nexus-dev", "directory for development keys and JetStream data")
	natsPort := flag.Int("nats-port", 4322, "port of the embedded NATS server (4222 is left to a system NATS)")
	flag.Parse()
	if err := run(*dataDir, *natsPort); err != nil {
		fmt.Fprintln(os.Stderr, "nexus:", err)
		os.Exit(1)
	}
}

func run(dataDir string, natsPort int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	env := map[string]string{}
	for k, v := range system.DevDefaults {
		if os.Getenv(k) == "" {
			env[k] = v
		}
	}
	keysFile := filepath.Join(dataDir, "keys.env")
	if os.Getenv("ENCRYPTION_KEY") == "" || os.Getenv("STATE_KEY") == "" || os.Getenv("API_KEY") == "" {
		keys, created, err := system.DevKeys(keysFile)
		if err != nil {
			return err
		}
		for k, v := range keys {
			if os.Getenv(k) == "" {
				env[k] = v
			}
		}
		if created {
			fmt.Printf("\nDevelopment mode: new keys generated and kept in %s (mode 0600).\n"+
				"Losing ENCRYPTION_KEY makes every stored connection unrecoverable. Do not use these keys in production.\n\n"+
				"    API_KEY=%s\n\n", keysFile, keys["API_KEY"])
		}
	}
	lookup := system.Overlay(os.LookupEnv, env)
	log := logging.New(os.Stderr, envOr(lookup, "LOG_FORMAT"), envOr(lookup, "LOG_LEVEL"))

	if url, _ := lookup("DATABASE_URL"); url != "" {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := system.EnsureDatabase(cctx, url)
		cancel()
		if err != nil {
			return err
		}
	}

	ns, err := natsx.StartEmbedded(natsx.EmbeddedOptions{Port: natsPort, StoreDir: filepath.Join(dataDir, "jetstream")})
	if err != nil {
		return fmt.Errorf("%w (is port %d free? choose another with -nats-port)", err, natsPort)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	env["NATS_URL"] = ns.ClientURL()

	sys, err := system.Start(ctx, lookup, nil, log)
	if err != nil {
		return err
	}
	public, _ := lookup("PUBLIC_URL")
	fmt.Printf("Nexus Broker is running.\n  NATS (embedded)     %s\n  handshake (public)  %s  (listening on %s; metrics on %s)\n  admin API           http://%s/v1/providers\n  vault               http://%s/healthz\n  refresher           http://%s/healthz\nPress Ctrl-C to stop.\n",
		ns.ClientURL(), public, sys.Listeners["handshake"].Addr(), sys.Listeners["handshake-internal"].Addr(), sys.Listeners["admin"].Addr(), sys.Listeners["vault"].Addr(), sys.Listeners["refresher"].Addr())
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return sys.Close(sctx)
}

func envOr(l system.Lookup, k string) string {
	v, _ := l(k)
	return v
}
