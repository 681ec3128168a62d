package console

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexus-broker/nexus/services/admin/internal/store"
	"github.com/nexus-broker/nexus/shared/testkit"
)

// TestSessionUse: opening a page (get) marks a session used; the live
// stream's heartbeat (check) does not, so a page left open goes idle like
// any other; both refuse a session idle for SessionIdle, and one past
// SessionTTL. The clock is the sessions' own, moved by hand.
func TestSessionUse(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testkit.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	s := &sessions{pool: pool, now: func() time.Time { return now }, live: map[string]bool{"k1": true}}
	id, _, err := s.create(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}

	now = now.Add(SessionIdle - time.Minute)
	if _, err := s.check(ctx, id); err != nil {
		t.Fatalf("checked within the idle limit: %v", err)
	}
	now = now.Add(2 * time.Minute) // idle limit past the sign-in; the check did not count
	if _, err := s.check(ctx, id); !errors.Is(err, errNoSession) {
		t.Fatalf("a session only checked for %s: %v, want it ended", SessionIdle+time.Minute, err)
	}
	if _, err := s.get(ctx, id); !errors.Is(err, errNoSession) {
		t.Fatalf("a page opened on an idle session: %v, want it ended", err)
	}

	signedIn := now
	id, _, err = s.create(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	step := SessionIdle - time.Minute
	for now.Add(step).Before(signedIn.Add(SessionTTL)) {
		now = now.Add(step)
		if _, err := s.get(ctx, id); err != nil {
			t.Fatalf("a session used every %s, %s after its sign-in: %v", step, now.Sub(signedIn), err)
		}
	}
	now = signedIn.Add(SessionTTL + time.Second) // less than SessionIdle after its last use
	if _, err := s.get(ctx, id); !errors.Is(err, errNoSession) {
		t.Fatalf("a session in use past its %s: %v, want it ended", SessionTTL, err)
	}
}
