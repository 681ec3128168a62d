// Package stream creates or updates the JetStream stream that holds the
// connection lifecycle events (messages.StreamEvents).
package stream

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nexus-broker/nexus/messages"
)

// Config is the stream's retention.
type Config struct {
	Prefix   string        // subject prefix
	MaxAge   time.Duration // how long events are kept (0: forever)
	Replicas int           // 1, or 3 on a cluster
	// Duplicates is the de-duplication window for Nats-Msg-Id. It must be
	// longer than the outbox lease: an event re-published by a relay that
	// took over after a crash is dropped only inside this window.
	Duplicates time.Duration
}

// StreamConfig is the JetStream configuration for c.
func (c Config) StreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        messages.StreamEvents,
		Description: "Nexus Broker connection lifecycle events and provider events",
		Subjects:    []string{messages.EventsWildcard(c.Prefix), messages.ProviderEventsWildcard(c.Prefix)},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.MaxAge,
		Replicas:    c.Replicas,
		Duplicates:  c.Duplicates,
	}
}

// Ensure creates the stream, or updates it to c when it exists.
func Ensure(ctx context.Context, js jetstream.JetStream, c Config) (jetstream.Stream, error) {
	s, err := js.CreateOrUpdateStream(ctx, c.StreamConfig())
	if err != nil {
		return nil, fmt.Errorf("jetstream stream %s: %w", messages.StreamEvents, err)
	}
	return s, nil
}
