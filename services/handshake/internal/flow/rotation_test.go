package flow

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/shared/redisx"
	"github.com/nexus-broker/nexus/shared/testkit"
)

// TestFlowSurvivesAStateKeyRotation: a flow sealed before STATE_KEY changes
// opens with the old key among the previous ones, and not without it; new
// flows are sealed with the new key only.
func TestFlowSurvivesAStateKeyRotation(t *testing.T) {
	ctx := context.Background()
	rdb, err := redisx.Connect(ctx, testkit.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	key := func() []byte { k := make([]byte, 32); rand.Read(k); return k }
	a, b := key(), key()
	prefix := "nexus:test:" + testkit.RandomHex(t, 6) + ":"
	store := func(active []byte, previous ...[]byte) *Store {
		s, err := NewStore(rdb, active, prefix, previous...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	before, rotated, dropped := store(a), store(b, a), store(b)

	id := NewID()
	if err := before.Put(ctx, id, sample(), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := dropped.Get(ctx, Ref(id)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a flow of the old key without it: %v", err)
	}
	if f, err := rotated.Consume(ctx, Ref(id)); err != nil || f.Verifier != sample().Verifier {
		t.Fatalf("a flow of the old key during the rotation: %v", err)
	}

	id = NewID()
	if err := rotated.Put(ctx, id, sample(), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := before.Get(ctx, Ref(id)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a new flow opens with the old key alone: sealed with the old key: %v", err)
	}
	if _, err := dropped.Get(ctx, Ref(id)); err != nil {
		t.Fatalf("a new flow with the new key alone: %v", err)
	}
}
