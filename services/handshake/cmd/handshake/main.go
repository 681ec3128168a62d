// Command handshake runs the Nexus Broker handshake: the public browser edge and handshake.begin.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nexus-broker/nexus/services/handshake"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/httpserver"
	"github.com/nexus-broker/nexus/shared/logging"
)

func main() {
	l := config.New()
	cfg := handshake.LoadConfig(l)
	if err := l.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "handshake:", err)
		os.Exit(2)
	}
	log := logging.New(os.Stderr, cfg.LogFormat, cfg.LogLevel)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	svc, err := handshake.Start(ctx, cfg, log)
	if err != nil {
		log.Error("handshake failed to start", "err", err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		log.Error("listen", "addr", cfg.HTTPAddr, "err", err)
		_ = svc.Close(context.Background())
		os.Exit(1)
	}
	internal, err := net.Listen("tcp", cfg.InternalHTTPAddr)
	if err != nil {
		log.Error("listen", "addr", cfg.InternalHTTPAddr, "err", err)
		_ = svc.Close(context.Background())
		os.Exit(1)
	}
	log.Info("handshake listening", "http_addr", ln.Addr().String(), "internal_http_addr", internal.Addr().String())
	go func() {
		if err := httpserver.Serve(ctx, internal, svc.InternalHandler(), log); err != nil {
			log.Error("internal http server", "err", err)
		}
	}()
	serveErr := httpserver.Serve(ctx, ln, svc.Handler(), log)
	cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := svc.Close(cctx); err != nil {
		log.Error("close", "err", err)
	}
	if serveErr != nil {
		log.Error("http server", "err", serveErr)
		os.Exit(1)
	}
}
