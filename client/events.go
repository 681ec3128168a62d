package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nexus-broker/nexus/messages"
)

// EventHandler handles one lifecycle event. Returning nil acknowledges it:
// the durable consumer never delivers it again. An error leaves it
// unacknowledged, and it comes back after a delay that grows with each
// delivery.
type EventHandler func(ctx context.Context, e messages.Event) error

// EventsOption configures ConsumeEvents.
type EventsOption func(*eventsConfig)

type eventsConfig struct {
	retry     func(delivered uint64) time.Duration
	malformed func(subject string, err error)
}

// WithRedeliveryDelay sets how long an event the handler failed waits
// before it is delivered again: initial after the first failure, doubling
// up to max (defaults 1s and 1m).
func WithRedeliveryDelay(initial, max time.Duration) EventsOption {
	return func(c *eventsConfig) { c.retry = doubling(initial, max) }
}

// WithMalformedEvent calls f with each message on the lifecycle subjects
// that is not an event (it is terminated: no handler could ever take it).
func WithMalformedEvent(f func(subject string, err error)) EventsOption {
	return func(c *eventsConfig) { c.malformed = f }
}

func doubling(initial, max time.Duration) func(uint64) time.Duration {
	return func(delivered uint64) time.Duration {
		d := initial
		for i := uint64(1); i < delivered && d < max; i++ {
			d *= 2
		}
		return min(d, max)
	}
}

// ConsumeEvents hands every connection lifecycle event on stream
// NEXUS_EVENTS to h, one at a time in stream order, through the durable
// consumer named durable (created if missing; under the broker's NATS
// permissions the Gateway's is "gateway"). An event is acknowledged, and
// the acknowledgement confirmed by the server, only after h returns nil,
// so a consumer that stops (ctx cancelled, the process killed) resumes at
// the first event it had not acknowledged. It returns when ctx is done,
// with ctx's error, or when the consumer cannot be created or read.
func (c *Client) ConsumeEvents(ctx context.Context, durable string, h EventHandler, opts ...EventsOption) error {
	cfg := eventsConfig{retry: doubling(time.Second, time.Minute), malformed: func(string, error) {}}
	for _, o := range opts {
		o(&cfg)
	}
	if durable == "" {
		return errors.New("nexus events: a durable consumer needs a name")
	}
	js, err := jetstream.New(c.nc)
	if err != nil {
		return fmt.Errorf("nexus events: %w", err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, messages.StreamEvents, jetstream.ConsumerConfig{
		Durable:       durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: messages.EventsWildcard(c.prefix),
	})
	if err != nil {
		return fmt.Errorf("nexus events: durable consumer %s on %s: %w", durable, messages.StreamEvents, err)
	}
	it, err := cons.Messages(jetstream.WithMessagesErrOnMissingHeartbeat(false))
	if err != nil {
		return fmt.Errorf("nexus events: read %s: %w", durable, err)
	}
	// Once ctx is done, no new messages are pulled; the ones already
	// buffered are handed back (below) rather than left to their ack wait.
	stop := context.AfterFunc(ctx, it.Drain)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("nexus events: read %s: %w", durable, err)
		}
		if ctx.Err() != nil {
			_ = msg.Nak() // pulled but not handled: at once to the next reader
			continue
		}
		if err := c.handle(ctx, msg, h, cfg); err != nil {
			return fmt.Errorf("nexus events: %s: %w", durable, err)
		}
	}
}

// handle decodes one message, gives it to h, and acknowledges it when h
// returns nil, waiting for the server to confirm (even once ctx is done:
// the work is done and must not be repeated).
func (c *Client) handle(ctx context.Context, msg jetstream.Msg, h EventHandler, cfg eventsConfig) error {
	var e messages.Event
	if err := json.Unmarshal(msg.Data(), &e); err != nil {
		cfg.malformed(msg.Subject(), err)
		return msg.TermWithReason("not a lifecycle event")
	}
	if err := h(ctx, e); err != nil {
		var delivered uint64 = 1
		if md, mdErr := msg.Metadata(); mdErr == nil {
			delivered = md.NumDelivered
		}
		return msg.NakWithDelay(cfg.retry(delivered))
	}
	ackCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := msg.DoubleAck(ackCtx); err != nil {
		return fmt.Errorf("acknowledge event %s: %w", e.ID, err)
	}
	return nil
}
