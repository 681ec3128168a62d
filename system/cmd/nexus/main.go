// Command nexus runs every Nexus Broker service in one process with an
// embedded NATS server (JetStream on a local data dir): `make run`.
// Everything is configured by the environment (nexus -h lists it): unset
// values get development defaults, development keys are generated once and
// kept in the data dir, and every port is checked free before anything
// starts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/logging"
	"github.com/nexus-broker/nexus/shared/natsauth"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/run/buildinfo"
	"github.com/nexus-broker/nexus/system"
)

const usage = `nexus: every Nexus Broker service (vault, handshake, admin, refresher) in one process,
with an embedded NATS server (JetStream); what make run starts. Not for production.

usage: nexus [-version | -h]
  -version  print the version and Go build information
  -h        print this help

configuration, from the environment; unset values get the defaults shown:
  NEXUS_DATA_DIR                development keys (keys.env) and JetStream data (.nexus-dev)
  NEXUS_NATS_PORT               the embedded NATS server, on 127.0.0.1 (4322; 4222 is left to a system NATS)
  HANDSHAKE_HTTP_ADDR           the handshake's browser routes (127.0.0.1:8080)
  HANDSHAKE_INTERNAL_HTTP_ADDR  the handshake's /readyz and /metrics (127.0.0.1:9080)
  ADMIN_HTTP_ADDR               the admin API, /v1/providers (127.0.0.1:8081)
  VAULT_HTTP_ADDR               the vault's /healthz, /readyz, /metrics (127.0.0.1:8082)
  REFRESHER_HTTP_ADDR           the refresher's /healthz, /readyz, /metrics (127.0.0.1:8083)
  PUBLIC_URL                    where browsers reach the handshake (http://HANDSHAKE_HTTP_ADDR)
  DATABASE_URL                  PostgreSQL (postgres://postgres@127.0.0.1:5432/nexus?sslmode=disable,
                                created when missing; a database set here must exist)
  REDIS_URL                     Redis (redis://127.0.0.1:6379/0)
  ALLOWED_RETURN_URLS           (http://127.0.0.1:3000,http://localhost:3000)
  PROVIDER_PRIVATE_NETWORKS     networks providers may be reached at, plain http included
                                (127.0.0.0/8,::1/128: providers on this machine; empty in production)
  NEXUS_DEV_PROVIDER            also run a development OpenID Connect provider at this loopback
                                address, e.g. 127.0.0.1:18090 (off); client nexus-dev, its secret
                                NEXUS_DEV_PROVIDER_CLIENT_SECRET generated into keys.env
  NEXUS_DEV_PROVIDER_TOKEN_TTL  the lifetime of its access tokens (1h; at least 10s)
  ENCRYPTION_KEY, STATE_KEY, API_KEY (the Gateway's), ADMIN_API_KEY (operators'),
  HANDSHAKE_SERVICE_KEY, ADMIN_SERVICE_KEY, REFRESHER_SERVICE_KEY (the services'),
  NATS_<USER>_PASSWORD (each user of the embedded NATS server: vault, handshake, admin,
  refresher, gateway, operator, billing)
                                generated once into NEXUS_DATA_DIR/keys.env
  and every service's own variables (README.md, Configuration), except HTTP_ADDR and
  INTERNAL_HTTP_ADDR, which are refused: each service has its own address variable above.
`

func main() {
	fs := flag.NewFlagSet("nexus", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	version := fs.Bool("version", false, "")
	err := fs.Parse(os.Args[1:])
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q; the configuration comes from the environment", fs.Arg(0))
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Print(usage)
		return
	case err != nil:
		fmt.Fprintf(os.Stderr, "nexus: %v\nusage: nexus [-version | -h]\n", err)
		os.Exit(2)
	case *version:
		fmt.Print(buildinfo.Text("nexus"))
		return
	}
	if err := launch(os.LookupEnv); err != nil {
		fmt.Fprintln(os.Stderr, "nexus:", err)
		os.Exit(1)
	}
}

func launch(getenv system.Lookup) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Everything that can be checked is checked before anything starts.
	listeners, natsPort, err := system.Preflight(getenv)
	if err != nil {
		return err
	}
	env := map[string]string{}
	lookup := system.Overlay(getenv, env)
	for k, v := range system.DevDefaults {
		if envOr(getenv, k, "") == "" {
			env[k] = v
		}
	}
	if envOr(getenv, "PUBLIC_URL", "") == "" {
		env["PUBLIC_URL"] = system.PublicURL(getenv, listeners["handshake"])
	}
	dataDir := envOr(getenv, "NEXUS_DATA_DIR", ".nexus-dev")
	release, err := lockDataDir(dataDir)
	if err != nil {
		return err
	}
	defer release()
	keysFile := filepath.Join(dataDir, "keys.env")
	devProvider := listeners[system.DevProviderListener]
	delete(listeners, system.DevProviderListener)
	keys, created, err := system.DevKeys(keysFile, devProvider != nil)
	if err != nil {
		return err
	}
	for k, v := range keys {
		if envOr(getenv, k, "") == "" {
			env[k] = v
		}
	}
	// The keys are printed once, when made; a development provider turned
	// on later makes only its own secret, and reprints nothing else.
	if slices.ContainsFunc(created, func(k string) bool { return k != system.DevProviderSecretVar }) {
		fmt.Printf("\nDevelopment mode: new keys and NATS passwords (%s) generated and kept in %s (mode 0600).\n"+
			"Losing ENCRYPTION_KEY makes every stored connection unrecoverable. Do not use these in production.\n\n"+
			"    the Gateway:   API_KEY=%s  (NATS user gateway, password %s, inbox prefix %s)\n"+
			"    an operator:   ADMIN_API_KEY=%s  (NATS user operator, password %s, inbox prefix %s)\n\n",
			strings.Join(created, ", "), keysFile,
			envOr(lookup, config.GatewayKeys, ""), envOr(lookup, system.NATSPasswordVar(natsauth.Gateway), ""), natsauth.InboxPrefix(natsauth.Gateway),
			envOr(lookup, config.OperatorKeys, ""), envOr(lookup, system.NATSPasswordVar(natsauth.Operator), ""), natsauth.InboxPrefix(natsauth.Operator))
	}
	if slices.Contains(created, system.DevProviderSecretVar) {
		fmt.Printf("Development provider: the broker's client there is client_id %s, client_secret %s=%s (kept in %s too).\n\n",
			system.DevProviderClientID, system.DevProviderSecretVar, envOr(lookup, system.DevProviderSecretVar, ""), keysFile)
	}
	log := logging.New(os.Stderr, envOr(lookup, "LOG_FORMAT", ""), envOr(lookup, "LOG_LEVEL", ""))

	// Only the development default database is created when missing; one
	// named in DATABASE_URL must exist (a typo must not make an empty one).
	devDB := envOr(getenv, "DATABASE_URL", "") == ""
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = system.EnsureDatabase(cctx, envOr(lookup, "DATABASE_URL", ""), devDB)
	cancel()
	if err != nil {
		return err
	}

	// The embedded server has the production's users and permissions
	// (shared/natsauth, deploy/nats/users.conf): no anonymous client, each
	// service as its own user, replies only to their requester.
	passwords := map[string]string{}
	for _, u := range natsauth.Names {
		passwords[u] = envOr(lookup, system.NATSPasswordVar(u), "")
	}
	users, err := natsauth.ServerUsers(envOr(lookup, "NEXUS_SUBJECT_PREFIX", "nexus"), passwords)
	if err != nil {
		return err
	}
	ns, err := natsx.StartEmbedded(natsx.EmbeddedOptions{Port: natsPort, StoreDir: filepath.Join(dataDir, "jetstream"), Users: users})
	if err != nil {
		return fmt.Errorf("%w (%s=%d)", err, system.NATSPortVar, natsPort)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	env["NATS_URL"] = ns.ClientURL()

	devBanner := ""
	if devProvider != nil {
		p, err := system.StartDevProvider(lookup, devProvider)
		if err != nil {
			return err
		}
		defer p.Close() // after the broker: a revocation on the way out still reaches it
		devBanner = fmt.Sprintf("  dev provider        %s  (OpenID Connect; client_id %s, client_secret %s in %s; access tokens live %s)\n",
			p.Issuer(), system.DevProviderClientID, system.DevProviderSecretVar, keysFile, p.AccessTokenLifespan())
	}

	sys, err := system.Start(ctx, lookup, listeners, log)
	if err != nil {
		return err
	}
	public, _ := lookup("PUBLIC_URL")
	fmt.Printf("Nexus Broker is running.\n"+
		"  NATS (embedded)     %s\n"+
		"  handshake (public)  %s  (listening on %s; metrics on %s)\n"+
		"  admin API           http://%s/v1/providers\n"+
		"  vault               http://%s/healthz\n"+
		"  refresher           http://%s/healthz\n"+
		"%s"+
		"The development keys, for another shell: set -a; . %s; set +a\n"+
		"Press Ctrl-C to stop.\n",
		ns.ClientURL(), public, sys.Listeners["handshake"].Addr(), sys.Listeners["handshake-internal"].Addr(),
		sys.Listeners["admin"].Addr(), sys.Listeners["vault"].Addr(), sys.Listeners["refresher"].Addr(), devBanner, keysFile)
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return sys.Close(sctx)
}

func envOr(l system.Lookup, k, def string) string {
	if v, ok := l(k); ok && v != "" {
		return v
	}
	return def
}
