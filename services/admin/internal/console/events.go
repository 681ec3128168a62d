package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/messages"
)

// Timings of the live stream.
const (
	// heartbeat keeps proxies from closing a quiet stream.
	heartbeat = 15 * time.Second
	// writeWindow is how long one write to the browser may take (the
	// server's WriteTimeout would otherwise end the stream).
	writeWindow = 10 * time.Second
	// backlog is how many events may wait for a slow browser; beyond it
	// the subscription drops them (NATS counts them as dropped), and the
	// page misses a few rather than holding admin's memory.
	backlog = 256
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

// stream sends lifecycle and provider events as the relay publishes them:
// a core NATS subscription to the events' subjects, so the console needs no
// consumer of NEXUS_EVENTS (admin's NATS user may not touch the stream's
// consumers, which belong to the Gateway and downstream readers). It shows
// what happens while the page is open, not what happened before.
func (c *Console) stream(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	arrived := make(chan *nats.Msg, backlog)
	subscription, err := c.o.Events.ChanSubscribe(messages.Subject(c.o.Prefix, "events.>"), arrived)
	if err != nil {
		c.o.Log.Warn("console: events subscription", "err", err)
		http.Error(w, "the event stream is unavailable", http.StatusServiceUnavailable)
		return
	}
	defer func() { _ = subscription.Unsubscribe() }()

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := c.send(rc, w, ": ready\n\n"); err != nil {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			// A session that ended (logout, expiry, idleness, its key
			// removed) ends its stream too; the stream itself is not a use
			// of the session, or a page left open would never go idle.
			if !c.signedIn(r) {
				return
			}
			if c.send(rc, w, ": heartbeat\n\n") != nil {
				return
			}
		case m := <-arrived:
			b, err := json.Marshal(liveEvent{Subject: m.Subject, Event: json.RawMessage(m.Data)})
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
