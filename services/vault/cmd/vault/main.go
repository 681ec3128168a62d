// Command vault runs the Nexus Broker vault: custody of every master secret.
package main

import (
	"context"
	"log/slog"

	"github.com/nexus-broker/nexus/services/vault"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/run"
)

// about is the first line of -h.
const about = "the Nexus Broker vault: custody of every master secret, sealed in PostgreSQL; answers tokens.* and connections.* on NATS"

func main() {
	run.Main("vault", about, func(l *config.Loader) run.Spec {
		cfg := vault.LoadConfig(l)
		return run.Spec{Common: cfg.Common, Start: func(ctx context.Context, log *slog.Logger) (run.Running, error) {
			svc, err := vault.Start(ctx, cfg, log)
			if err != nil {
				return run.Running{}, err
			}
			return run.Running{Close: svc.Close, Listeners: []run.Listener{{Name: "http", Addr: cfg.HTTPAddr, Handler: svc.Handler()}}}, nil
		}}
	})
}
