// Command admin runs the provider registry: NATS endpoints
// v1.admin.providers.* and the operator HTTP API on HTTP_ADDR (:8081).
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nexus-broker/nexus/services/admin"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/httpserver"
	"github.com/nexus-broker/nexus/shared/logging"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "admin:", err)
		os.Exit(1)
	}
}

func run() error {
	l := config.New()
	cfg := admin.LoadConfig(l)
	if err := l.Err(); err != nil {
		return err
	}
	log := logging.New(os.Stderr, cfg.LogFormat, cfg.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	svc, err := admin.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := svc.Close(cctx); err != nil {
			log.Error("close", "err", err)
		}
	}()
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s (HTTP_ADDR): %w", cfg.HTTPAddr, err)
	}
	log.Info("admin started", "http", ln.Addr().String(), "version", admin.Version)
	return httpserver.Serve(ctx, ln, svc.Handler(), log)
}
