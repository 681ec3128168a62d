// Package run is the main() every service binary shares: the command line
// (-h, -version, -healthcheck), configuration checked once with every
// problem reported together, a logger, start-up, the HTTP listeners, and a
// graceful stop on SIGINT or SIGTERM.
package run

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/httpserver"
	"github.com/nexus-broker/nexus/shared/logging"
	"github.com/nexus-broker/nexus/shared/run/buildinfo"
	"github.com/nexus-broker/nexus/shared/telemetry"
)

// Listener is an HTTP address and what is served there.
type Listener struct {
	Name    string // for logs: "http", "internal"
	Addr    string
	Handler http.Handler
}

// Running is a started service: what to serve and how to stop it.
type Running struct {
	Listeners []Listener
	Close     func(context.Context) error
}

// Spec is a service as its binary sees it: the common configuration (for
// the logger) and how to start it with the rest.
type Spec struct {
	Common config.Common
	Start  func(ctx context.Context, log *slog.Logger) (Running, error)
	// Probe is the address of the listener serving /readyz, for
	// -healthcheck; Common.HTTPAddr when empty.
	Probe string
}

// Main is a service binary's main(). It reads the command line first: -h
// prints what the binary is (about) and the environment variables it
// reads, -version its version and Go build information, and -healthcheck
// probes an instance already running (for container health checks, where
// there is no shell or curl); each exits at once. Otherwise Main loads the
// configuration with load and exits 2 listing every problem if there are
// any, else starts the service, serves its listeners until a signal, stops
// it within 15 seconds, and exits 0 (or 1 on failure).
func Main(name, about string, load func(*config.Loader) Spec) {
	os.Exit(mainArgs(name, about, load, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

func mainArgs(name, about string, load func(*config.Loader) Spec, args []string, env func(string) (string, bool), stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	version := fs.Bool("version", false, "print the version and Go build information, then exit")
	health := fs.Bool("healthcheck", false, "GET /readyz of the instance running with this environment (on 127.0.0.1 when\n"+
		"its address has no host or 0.0.0.0): exit 0 when it answers 200, 1 otherwise")
	err := fs.Parse(args)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage(stdout, fs, name, about, load)
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\nusage: %s [-healthcheck | -version | -h]\n", name, err, name)
		return 2
	case *version:
		fmt.Fprint(stdout, buildinfo.Text(name))
		return 0
	}

	l := config.FromFunc(env)
	spec := load(l)
	if *health {
		// Only the address matters here: a probe needs no secrets.
		addr := spec.Probe
		if addr == "" {
			addr = spec.Common.HTTPAddr
		}
		if err := healthcheck(addr, 3*time.Second); err != nil {
			fmt.Fprintf(stderr, "%s: healthcheck: %v\n", name, err)
			return 1
		}
		return 0
	}
	if err := l.Err(); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	log := logging.New(stderr, spec.Common.LogFormat, spec.Common.LogLevel)
	if err := serve(name, spec, log); err != nil {
		log.Error(name+" stopped", "err", err)
		return 1
	}
	return 0
}

// usage prints what the binary is, its flags, and the environment variables
// its configuration reads (found by loading it from an empty environment).
func usage(w io.Writer, fs *flag.FlagSet, name, about string, load func(*config.Loader) Spec) {
	fmt.Fprintf(w, "%s: %s\n\nusage: %s [-healthcheck | -version | -h]\n", name, about, name)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	fmt.Fprintf(w, "\nconfiguration, from the environment (checked at start-up, every problem reported at once;\n"+
		"meanings and defaults in README.md, Configuration):\n")
	for _, v := range Variables(load) {
		fmt.Fprintf(w, "  %s\n", v)
	}
}

// Variables lists the environment variables load reads, in the order it
// reads them.
func Variables(load func(*config.Loader) Spec) []string {
	var names []string
	seen := map[string]bool{}
	load(config.FromFunc(func(k string) (string, bool) {
		if !seen[k] {
			seen[k] = true
			names = append(names, k)
		}
		return "", false
	}))
	return names
}

// healthcheck GETs /readyz on addr (a listen address such as ":8082").
func healthcheck(addr string, timeout time.Duration) error {
	u, err := LocalURL(addr, "/readyz")
	if err != nil {
		return err
	}
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	return nil
}

// LocalURL is the http URL of path on a listener at addr (a listen address
// such as ":8082"), as seen from the same machine: an address without a
// host, or with 0.0.0.0 or ::, is reached on 127.0.0.1.
func LocalURL(addr, path string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + path, nil
}

func serve(name string, spec Spec, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Tracing, when OTEL_* asks for it, before the service and after it:
	// the spans of its shutdown are sent too.
	endTracing, err := telemetry.Setup(ctx, spec.Common.Telemetry, "nexus-"+name)
	if err != nil {
		return err
	}
	defer func() {
		tctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := endTracing(tctx); err != nil {
			log.Warn("tracing", "err", err)
		}
	}()
	svc, err := spec.Start(ctx, log)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := svc.Close(cctx); err != nil {
			log.Error("close", "err", err)
		}
	}()
	lns := make([]net.Listener, 0, len(svc.Listeners))
	for _, l := range svc.Listeners {
		ln, err := net.Listen("tcp", l.Addr)
		if err != nil {
			for _, o := range lns {
				o.Close()
			}
			return fmt.Errorf("listen for %s on %s: %w", l.Name, l.Addr, err)
		}
		lns = append(lns, ln)
		log.Info(name+" listening", l.Name, ln.Addr().String())
	}
	// Serve every listener until the signal; the first to fail stops all.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i, l := range svc.Listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := httpserver.Serve(ctx, lns[i], l.Handler, log); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s server: %w", l.Name, err))
				mu.Unlock()
				cancel()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
