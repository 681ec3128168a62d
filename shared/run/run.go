// Package run is the main() every service binary shares: configuration
// checked once with every problem reported together, a logger, start-up,
// the HTTP listeners, and a graceful stop on SIGINT or SIGTERM.
package run

import (
	"context"
	"errors"
	"fmt"
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
}

// Main loads the configuration with load, and exits 2 listing every problem
// if there are any; otherwise it starts the service, serves its listeners
// until a signal, stops it within 15 seconds, and exits 0 (or 1 on failure).
func Main(name string, load func(*config.Loader) Spec) {
	l := config.New()
	spec := load(l)
	if err := l.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	log := logging.New(os.Stderr, spec.Common.LogFormat, spec.Common.LogLevel)
	if err := serve(name, spec, log); err != nil {
		log.Error(name+" stopped", "err", err)
		os.Exit(1)
	}
}

func serve(name string, spec Spec, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
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
