// Command refresher runs the Nexus Broker refresher: background refresh and
// the lifecycle-event relay to JetStream.
package main

import (
	"context"
	"log/slog"

	"github.com/nexus-broker/nexus/services/refresher"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/run"
)

// about is the first line of -h.
const about = "the Nexus Broker refresher: refreshes tokens before they expire and relays lifecycle events to the JetStream stream NEXUS_EVENTS"

func main() {
	run.Main("refresher", about, func(l *config.Loader) run.Spec {
		cfg := refresher.LoadConfig(l)
		return run.Spec{Common: cfg.Common, Start: func(ctx context.Context, log *slog.Logger) (run.Running, error) {
			svc, err := refresher.Start(ctx, cfg, log)
			if err != nil {
				return run.Running{}, err
			}
			return run.Running{Close: svc.Close, Listeners: []run.Listener{{Name: "http", Addr: cfg.HTTPAddr, Handler: svc.Handler()}}}, nil
		}}
	})
}
