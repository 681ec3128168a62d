package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPrefix is the handshake's Redis key prefix (REDIS_KEY_PREFIX);
// flows live at prefix + "flow:" + Ref(id).
const DefaultPrefix = "nexus:hs:"

// ErrNotFound: no such flow, it expired, or it was already consumed.
var ErrNotFound = errors.New("flow: not found")

// Store keeps flows in Redis.
type Store struct {
	rdb    redis.UniversalClient
	sealer *sealer
	prefix string
}

// NewStore returns a Store sealing with key (derived with keys.InfoFlow)
// and opening with it and previous, keeping flows under prefix ("" means
// DefaultPrefix).
func NewStore(rdb redis.UniversalClient, key []byte, prefix string, previous ...[]byte) (*Store, error) {
	s, err := newSealer(key, previous...)
	if err != nil {
		return nil, err
	}
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Store{rdb: rdb, sealer: s, prefix: prefix + "flow:"}, nil
}

// Key is the Redis key of the flow with reference ref.
func (s *Store) Key(ref string) string { return s.prefix + ref }

// Put stores f under id for ttl. An existing flow with the same id (which a
// 256-bit random id makes impossible in practice) is not overwritten.
func (s *Store) Put(ctx context.Context, id string, f Flow, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("flow: ttl must be positive")
	}
	body, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("flow: encode: %w", err)
	}
	key := s.Key(Ref(id))
	ok, err := s.rdb.SetNX(ctx, key, s.sealer.seal(body, key), ttl).Result()
	if err != nil {
		return fmt.Errorf("flow: store: %w", err)
	}
	if !ok {
		return fmt.Errorf("flow: id collision")
	}
	return nil
}

// Get returns the flow with reference ref without consuming it.
func (s *Store) Get(ctx context.Context, ref string) (Flow, error) {
	key := s.Key(ref)
	raw, err := s.rdb.Get(ctx, key).Bytes()
	return s.decode(key, raw, err)
}

// Consume atomically reads and deletes the flow with reference ref (GETDEL):
// of any number of concurrent callers, exactly one gets it.
func (s *Store) Consume(ctx context.Context, ref string) (Flow, error) {
	key := s.Key(ref)
	raw, err := s.rdb.GetDel(ctx, key).Bytes()
	return s.decode(key, raw, err)
}

func (s *Store) decode(key string, raw []byte, err error) (Flow, error) {
	if errors.Is(err, redis.Nil) {
		return Flow{}, ErrNotFound
	}
	if err != nil {
		return Flow{}, fmt.Errorf("flow: read: %w", err)
	}
	body, err := s.sealer.open(raw, key)
	if err != nil {
		// A value we cannot open (another STATE_KEY, or tampered) is as good as absent.
		return Flow{}, fmt.Errorf("%w (%v)", ErrNotFound, err)
	}
	var f Flow
	if err := json.Unmarshal(body, &f); err != nil {
		return Flow{}, fmt.Errorf("%w (undecodable)", ErrNotFound)
	}
	return f, nil
}

// Ping checks Redis answers, for readiness.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }
