package relay

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/refresher/internal/stream"
	"github.com/nexus-broker/nexus/shared/testkit"
)

// fakeOutbox hands out its events in claims of at most Limit and records
// acks. The real vault is exercised by the refresher package's tests.
type fakeOutbox struct {
	mu     sync.Mutex
	events []messages.Event
	acked  []string
	claims int
}

func (f *fakeOutbox) ClaimOutbox(_ context.Context, r messages.OutboxClaim) (messages.OutboxClaimReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.claims++
	var out []messages.Event
	for _, ev := range f.events {
		if len(out) == r.Limit {
			break
		}
		if !slices.Contains(f.acked, ev.ID) {
			out = append(out, ev)
		}
	}
	return messages.OutboxClaimReply{Events: out}, nil
}

func (f *fakeOutbox) AckOutbox(_ context.Context, ids []string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acked = append(f.acked, ids...)
	return len(ids), nil
}

func event(id string, t messages.EventType) messages.Event {
	return messages.Event{ID: id, Type: t.FullType(), ConnectionID: "c-" + id, OccurredAt: time.Now().UTC()}
}

func newJetStream(t *testing.T, withStream bool) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(testkit.Conn(t, testkit.NATS(t)))
	if err != nil {
		t.Fatal(err)
	}
	if withStream {
		if _, err := stream.Ensure(context.Background(), js, stream.Config{Prefix: "nexus", Replicas: 1, Duplicates: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	return js
}

func TestRunOnceDrainsInBatchesAndAcksWhatLanded(t *testing.T) {
	js := newJetStream(t, true)
	ob := &fakeOutbox{}
	for i := range 7 {
		ob.events = append(ob.events, event(string(rune('a'+i)), messages.EventRefreshed))
	}
	// A vault bug: an event the relay cannot route. It is skipped, never acked.
	ob.events = append(ob.events, messages.Event{ID: "bad", Type: "something.else"})
	r := New(ob, js, Config{Owner: "o", Limit: 3})
	n, err := r.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != 7 || len(ob.acked) != 7 || slices.Contains(ob.acked, "bad") {
		t.Fatalf("acked %d: %v", n, ob.acked)
	}
	if got := testutil.ToFloat64(r.cfg.Metrics.Errors.WithLabelValues("invalid")); got < 1 {
		t.Fatalf("invalid errors = %v", got)
	}
	s, _ := js.Stream(context.Background(), messages.StreamEvents)
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 7 {
		t.Fatalf("stream holds %d messages, want 7", info.State.Msgs)
	}
	m, err := s.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "nexus.events.connection.refreshed" || m.Header.Get(messages.HeaderMsgID) != "a" {
		t.Fatalf("first message: %s %v", m.Subject, m.Header)
	}

	// Publishing the same events again (a relay that died before its ack)
	// stores nothing new.
	ob.acked = nil
	if _, err := r.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if info, _ = s.Info(context.Background()); info.State.Msgs != 7 {
		t.Fatalf("stream holds %d messages after a re-publish, want 7", info.State.Msgs)
	}
	if got := testutil.ToFloat64(r.cfg.Metrics.Duplicates); got != 7 {
		t.Fatalf("duplicates = %v, want 7", got)
	}
}

func TestPublishFailureIsNotAcked(t *testing.T) {
	js := newJetStream(t, false) // no stream: JetStream cannot store the events
	ob := &fakeOutbox{events: []messages.Event{event("a", messages.EventActive)}}
	r := New(ob, js, Config{Owner: "o", PublishTimeout: 2 * time.Second})
	if _, err := r.RunOnce(context.Background()); err == nil {
		t.Fatal("no error")
	}
	if len(ob.acked) != 0 {
		t.Fatalf("acked %v although nothing was stored", ob.acked)
	}
	if got := testutil.ToFloat64(r.cfg.Metrics.Errors.WithLabelValues("publish")); got < 1 {
		t.Fatalf("publish errors = %v", got)
	}
}

func TestHookErrorAbandonsTheBatch(t *testing.T) {
	js := newJetStream(t, true)
	ob := &fakeOutbox{events: []messages.Event{event("a", messages.EventActive)}}
	crash := errors.New("crash")
	r := New(ob, js, Config{Owner: "o", Hooks: Hooks{BeforeAck: func(context.Context, []string) error { return crash }}})
	if _, err := r.RunOnce(context.Background()); !errors.Is(err, crash) {
		t.Fatalf("err = %v", err)
	}
	if len(ob.acked) != 0 {
		t.Fatalf("acked %v", ob.acked)
	}
	if got := testutil.ToFloat64(r.cfg.Metrics.Published.WithLabelValues("active")); got != 1 {
		t.Fatalf("published = %v", got)
	}
}

func TestEventType(t *testing.T) {
	tests := []struct {
		in   string
		want messages.EventType
		ok   bool
	}{
		{"nexus.connection.attention_required.v1", messages.EventAttentionRequired, true},
		{"nexus.connection.created.v1", messages.EventCreated, true},
		{"nexus.connection.created.v2", "", false},
		{"nexus.connection.exploded.v1", "exploded", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := eventType(tt.in)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("eventType(%q) = %q, %v", tt.in, got, ok)
		}
	}
}
