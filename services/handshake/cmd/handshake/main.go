// Command handshake runs the public consent edge: handshake.begin on NATS,
// the browser routes on HTTP_ADDR, readiness and metrics on INTERNAL_HTTP_ADDR.
package main

import (
	"context"
	"log/slog"

	"github.com/nexus-broker/nexus/services/handshake"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/run"
)

// about is the first line of -h.
const about = "the Nexus Broker consent edge: handshake.begin on NATS, the browser routes (connect links, callback, hosted forms) on HTTP_ADDR, probes and metrics on INTERNAL_HTTP_ADDR"

func main() {
	run.Main("handshake", about, func(l *config.Loader) run.Spec {
		cfg := handshake.LoadConfig(l)
		return run.Spec{Common: cfg.Common, Probe: cfg.InternalHTTPAddr, Start: func(ctx context.Context, log *slog.Logger) (run.Running, error) {
			svc, err := handshake.Start(ctx, cfg, log)
			if err != nil {
				return run.Running{}, err
			}
			return run.Running{Close: svc.Close, Listeners: []run.Listener{
				{Name: "http", Addr: cfg.HTTPAddr, Handler: svc.Handler()},
				{Name: "internal", Addr: cfg.InternalHTTPAddr, Handler: svc.InternalHandler()},
			}}, nil
		}}
	})
}
