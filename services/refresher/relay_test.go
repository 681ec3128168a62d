package refresher

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/refresher/internal/relay"
)

// crashPoint stops a relay at one of its hooks and holds it there, as a
// process that died at that point would be: nothing after it happens.
type crashPoint struct {
	once    sync.Once
	reached chan struct{}
	mu      sync.Mutex
	ids     []string
}

func newCrashPoint() *crashPoint { return &crashPoint{reached: make(chan struct{})} }

func (c *crashPoint) hold(ctx context.Context, ids []string) error {
	c.mu.Lock()
	c.ids = slices.Clone(ids)
	c.mu.Unlock()
	c.once.Do(func() { close(c.reached) })
	<-ctx.Done() // until the replica is stopped
	return ctx.Err()
}

func eventIDs(evs []messages.Event) []string {
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	return ids
}

func TestRelayCrashLeavesEventsToAnotherReplicaExactlyOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		hook func(*crashPoint) relay.Hooks
		// duplicates: the second replica's re-publish lands on events
		// JetStream already has.
		duplicates bool
	}{
		{"after claim, before publish", func(c *crashPoint) relay.Hooks {
			return relay.Hooks{BeforePublish: func(ctx context.Context, evs []messages.Event) error { return c.hold(ctx, eventIDs(evs)) }}
		}, false},
		{"after publish, before ack", func(c *crashPoint) relay.Hooks {
			return relay.Hooks{BeforeAck: c.hold}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{})
			// The consent writes "created" and "active" to the outbox
			// before any relay runs, so the first replica claims both at once.
			c := e.connect()

			crash := newCrashPoint()
			cfgA := e.testConfig(nil)
			cfgA.relayHooks = tc.hook(crash)
			a := e.startRefresher(cfgA)
			cons := e.consumer("downstream", messages.EventsWildcard(messages.DefaultPrefix))
			select {
			case <-crash.reached:
			case <-time.After(10 * time.Second):
				t.Fatal("the first replica never reached its crash point")
			}
			a.Close(context.Background())
			crash.mu.Lock()
			held := crash.ids
			crash.mu.Unlock()
			if len(held) != 2 {
				t.Fatalf("the first replica held %d events, want 2 (created, active)", len(held))
			}
			if got := counter(t, a, "nexus_refresher_events_published_total", nil); tc.duplicates != (got == 2) {
				t.Fatalf("first replica published %v events", got)
			}

			// Another replica takes over once the outbox lease (1s) runs out.
			b := e.startRefresher(e.testConfig(nil))
			got := fetch(t, cons, 4*time.Second)
			var types, ids []string
			for _, r := range got {
				types = append(types, string(r.event.Type))
				ids = append(ids, r.msgID)
				if r.msgID != r.event.ID || r.event.ConnectionID != c.ConnectionID {
					t.Fatalf("message %+v", r)
				}
			}
			wantTypes := []string{messages.EventCreated.FullType(), messages.EventActive.FullType()}
			if !slices.Equal(types, wantTypes) || !slices.Equal(ids, held) {
				t.Fatalf("delivered %v %v, want each of %v %v exactly once", types, ids, wantTypes, held)
			}
			if got := counter(t, b, "nexus_refresher_events_published_total", nil); got != 2 {
				t.Fatalf("second replica published %v events, want 2", got)
			}
			wantDup := 0.0
			if tc.duplicates {
				wantDup = 2
			}
			if got := counter(t, b, "nexus_refresher_events_duplicate_total", nil); got != wantDup {
				t.Fatalf("second replica saw %v duplicates, want %v", got, wantDup)
			}
			// Acknowledged now: nothing is published again.
			time.Sleep(1500 * time.Millisecond)
			if got := counter(t, b, "nexus_refresher_events_published_total", nil); got != 2 {
				t.Fatalf("second replica published %v events after the ack, want 2", got)
			}
			if more := fetch(t, cons, 200*time.Millisecond); len(more) != 0 {
				t.Fatalf("delivered again: %+v", more)
			}
		})
	}
}
