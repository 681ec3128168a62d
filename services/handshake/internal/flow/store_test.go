package flow

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/redisx"
	"github.com/nexus-broker/nexus/shared/testkit"
)

func newStore(t *testing.T) (*Store, redis.UniversalClient) {
	t.Helper()
	rdb, err := redisx.Connect(context.Background(), testkit.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	k := make([]byte, 32)
	rand.Read(k)
	s, err := NewStore(rdb, k, "")
	if err != nil {
		t.Fatal(err)
	}
	return s, rdb
}

func sample() Flow {
	return Flow{
		ConnectionID: "conn-1", WorkspaceID: "ws-1", ProviderID: "p-1", ProviderType: messages.ProviderOIDC,
		AuthorizationEndpoint: "https://idp.example.com/authorize", ClientID: "client",
		Scopes: []string{"openid", "email"}, RedirectURI: "https://hs.example.com/v1/callback",
		Verifier: "verifier-SECRET-0123456789-abcdefghijklmnopqrstuvwxyz", Nonce: "nonce-SECRET",
		ExpectedIssuer: "https://idp.example.com", IssRequired: true,
		ReturnURL: "https://app.example.com/cb", ExpiresAt: time.Now().Add(10 * time.Minute).UTC().Truncate(time.Second),
	}
}

func TestPutGetConsume(t *testing.T) {
	s, rdb := newStore(t)
	ctx := context.Background()
	id, f := NewID(), sample()
	if !ValidID(id) || !ValidRef(Ref(id)) {
		t.Fatal("fresh id or ref is not valid")
	}
	if err := s.Put(ctx, id, f, time.Minute); err != nil {
		t.Fatal(err)
	}
	key := s.Key(Ref(id))
	raw, err := rdb.Get(ctx, key).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{f.Verifier, f.Nonce, f.ConnectionID, id} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatalf("%q readable in Redis", secret)
		}
	}
	ttl, err := rdb.TTL(ctx, key).Result()
	if err != nil || ttl <= 50*time.Second || ttl > time.Minute {
		t.Fatalf("TTL = %v, %v; want about 1m", ttl, err)
	}

	got, err := s.Get(ctx, Ref(id))
	if err != nil {
		t.Fatal(err)
	}
	if got.Verifier != f.Verifier || got.Nonce != f.Nonce || !got.ExpiresAt.Equal(f.ExpiresAt) || got.ReturnURL != f.ReturnURL || !got.IssRequired {
		t.Fatalf("Get = %+v, want %+v", got, f)
	}
	if _, err := s.Get(ctx, Ref(id)); err != nil {
		t.Fatalf("Get consumed the flow: %v", err)
	}
	if _, err := s.Consume(ctx, Ref(id)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Consume(ctx, Ref(id)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Consume = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, Ref(NewID())); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown flow = %v, want ErrNotFound", err)
	}
}

func TestSealedValueIsBoundToKeyAndStateKey(t *testing.T) {
	s, rdb := newStore(t)
	ctx := context.Background()
	a, b := NewID(), NewID()
	if err := s.Put(ctx, a, sample(), time.Minute); err != nil {
		t.Fatal(err)
	}
	raw, _ := rdb.Get(ctx, s.Key(Ref(a))).Bytes()
	// Moved to another flow's key, the value does not open.
	rdb.Set(ctx, s.Key(Ref(b)), raw, time.Minute)
	t.Cleanup(func() { rdb.Del(context.Background(), s.Key(Ref(a)), s.Key(Ref(b))) })
	if _, err := s.Get(ctx, Ref(b)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("swapped value opened: %v", err)
	}
	// Under another STATE_KEY it does not open either.
	other, _ := NewStore(rdb, bytes.Repeat([]byte{7}, 32), "")
	if _, err := other.Get(ctx, Ref(a)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("opened under another key: %v", err)
	}
	// Tampered.
	raw[len(raw)-1] ^= 1
	rdb.Set(ctx, s.Key(Ref(a)), raw, time.Minute)
	if _, err := s.Get(ctx, Ref(a)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("tampered value opened: %v", err)
	}
}

func TestConsumeIsSingleUseUnderConcurrency(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	id := NewID()
	if err := s.Put(ctx, id, sample(), time.Minute); err != nil {
		t.Fatal(err)
	}
	var wins, misses atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.Consume(ctx, Ref(id))
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, ErrNotFound):
				misses.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 || misses.Load() != 19 {
		t.Fatalf("wins = %d, misses = %d; want 1 and 19", wins.Load(), misses.Load())
	}
}

func TestPutRefusesBadTTLAndCollision(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.Put(ctx, NewID(), sample(), 0); err == nil {
		t.Fatal("Put accepted ttl 0")
	}
	id := NewID()
	if err := s.Put(ctx, id, sample(), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, id, sample(), time.Minute); err == nil {
		t.Fatal("Put overwrote an existing flow")
	}
	s.Consume(ctx, Ref(id))
}

// TestKept: only the callback parameters the flow names reach the vault;
// a flow naming none passes nothing on.
func TestKept(t *testing.T) {
	params := map[string]string{"realmId": "9130", "id_token": "eyJ...", "session_state": "s"}
	got := Flow{CallbackParams: []string{"realmId", "shop"}}.Kept(params)
	if len(got) != 1 || got["realmId"] != "9130" {
		t.Fatalf("kept %v, want only realmId", got)
	}
	if got := (Flow{}).Kept(params); got != nil {
		t.Fatalf("a flow naming no parameter kept %v", got)
	}
}
