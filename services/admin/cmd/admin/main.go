// Command admin runs the provider registry: NATS endpoints
// v1.admin.providers.* and the operator HTTP API on HTTP_ADDR (:8081).
package main

import (
	"context"
	"log/slog"

	"github.com/nexus-broker/nexus/services/admin"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/run"
)

// about is the first line of -h.
const about = "the Nexus Broker provider registry: admin.providers.* on NATS and the operator HTTP API (/v1/providers) on HTTP_ADDR"

func main() {
	run.Main("admin", about, func(l *config.Loader) run.Spec {
		cfg := admin.LoadConfig(l)
		return run.Spec{Common: cfg.Common, Start: func(ctx context.Context, log *slog.Logger) (run.Running, error) {
			svc, err := admin.Start(ctx, cfg, log)
			if err != nil {
				return run.Running{}, err
			}
			return run.Running{Close: svc.Close, Listeners: []run.Listener{{Name: "http", Addr: cfg.HTTPAddr, Handler: svc.Handler()}}}, nil
		}}
	})
}
