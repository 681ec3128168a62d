package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nexus-broker/nexus/messages"
)

// Timings of the live stream.
const (
	// heartbeat keeps proxies from closing a quiet stream.
	heartbeat = 15 * time.Second
	// consumerIdle: the server deletes a console's consumer this long after
	// its page went away (admin may create consumers, not delete them).
	consumerIdle = 30 * time.Second
	// writeWindow is how long one write to the browser may take (the
	// server's WriteTimeout would otherwise end the stream).
	writeWindow = 10 * time.Second
)

// events is the live page; its script (static/events.js) opens the stream.
func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "events", nil, view{Title: "Live events", Nav: "events"})
}

// liveEvent is what the page shows of an event: its subject and body (ids,
// provider, workspace, time, reason code: never a secret).
type liveEvent struct {
	Subject string          `json:"subject"`
	Event   json.RawMessage `json:"event"`
}

// stream sends lifecycle and provider events as they arrive, from a
// consumer of NEXUS_EVENTS of this page's own (new events only, no
// acknowledgements, in memory).
func (c *Console) stream(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	cons, err := c.o.Events.CreateConsumer(ctx, messages.StreamEvents, jetstream.ConsumerConfig{
		Name:              "console_" + randomToken()[:22],
		DeliverPolicy:     jetstream.DeliverNewPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		FilterSubject:     messages.Subject(c.o.Prefix, "events.>"),
		InactiveThreshold: consumerIdle,
		MemoryStorage:     true,
		Replicas:          1,
	})
	if err != nil {
		c.o.Log.Warn("console: events consumer", "err", err)
		http.Error(w, "the event stream is unavailable", http.StatusServiceUnavailable)
		return
	}
	msgs, err := cons.Messages(jetstream.PullHeartbeat(5 * time.Second))
	if err != nil {
		c.o.Log.Warn("console: events consumer", "err", err)
		http.Error(w, "the event stream is unavailable", http.StatusServiceUnavailable)
		return
	}
	defer msgs.Stop()
	go func() { <-ctx.Done(); msgs.Stop() }()

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := c.send(rc, w, ": ready\n\n"); err != nil {
		return
	}
	arrived := make(chan jetstream.Msg)
	go func() {
		defer close(arrived)
		for {
			m, err := msgs.Next()
			if err != nil {
				if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					c.o.Log.Warn("console: events stream ended", "err", err)
				}
				return
			}
			select {
			case arrived <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			// A session that ended (logout, expiry, its key removed) ends
			// its stream too.
			if _, _, err := c.current(r); err != nil {
				return
			}
			if c.send(rc, w, ": heartbeat\n\n") != nil {
				return
			}
		case m, ok := <-arrived:
			if !ok {
				return
			}
			b, err := json.Marshal(liveEvent{Subject: m.Subject(), Event: json.RawMessage(m.Data())})
			if err != nil { // a body that is not JSON: not one of the broker's events
				continue
			}
			if c.send(rc, w, fmt.Sprintf("event: lifecycle\ndata: %s\n\n", b)) != nil {
				return
			}
		}
	}
}

// send writes one chunk of the stream and flushes it.
func (c *Console) send(rc *http.ResponseController, w http.ResponseWriter, chunk string) error {
	_ = rc.SetWriteDeadline(time.Now().Add(writeWindow))
	if _, err := fmt.Fprint(w, chunk); err != nil {
		return err
	}
	return rc.Flush()
}
