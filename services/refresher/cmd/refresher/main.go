// Command refresher runs the Nexus Broker refresher.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nexus-broker/nexus/services/refresher"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/httpserver"
	"github.com/nexus-broker/nexus/shared/logging"
)

func main() {
	l := config.New()
	cfg := refresher.LoadConfig(l)
	if err := l.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "refresher:", err)
		os.Exit(2)
	}
	log := logging.New(os.Stderr, cfg.LogFormat, cfg.LogLevel)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	svc, err := refresher.Start(ctx, cfg, log)
	if err != nil {
		log.Error("refresher failed to start", "err", err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		log.Error("listen", "addr", cfg.HTTPAddr, "err", err)
		_ = svc.Close(context.Background())
		os.Exit(1)
	}
	log.Info("refresher listening", "http_addr", ln.Addr().String())
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
