// Package discocache keeps OpenID Provider configuration documents in Redis
// for an hour, so a consent does not fetch the provider's discovery document
// each time. Fetching and checking the document is shared/discovery's job.
//
// An entry is authenticated (HMAC-SHA256 with a key derived from STATE_KEY,
// over its Redis key and its value): whoever can write to Redis cannot
// choose a provider's authorization endpoint or switch its RFC 9207 check
// off. An entry that fails is fetched again.
package discocache

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nexus-broker/nexus/shared/discovery"
	"github.com/nexus-broker/nexus/shared/egress"
)

// CacheTTL is how long a document is kept.
const CacheTTL = time.Hour

// Cache fetches discovery documents and keeps them in Redis.
type Cache struct {
	rdb    redis.UniversalClient
	client *discovery.Client
	prefix string
	ttl    time.Duration
	log    *slog.Logger
	key    []byte
}

// New returns a Cache keeping documents under prefix + "disco:" (the
// handshake's REDIS_KEY_PREFIX), authenticated with key (derived for this
// purpose, keys.InfoDiscovery), fetched through hc, the egress guard (nil:
// discovery's default, a guard that opens no private network).
func New(rdb redis.UniversalClient, hc *egress.Client, log *slog.Logger, prefix string, key []byte) *Cache {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cache{rdb: rdb, client: discovery.New(hc), prefix: prefix + "disco:", ttl: CacheTTL, log: log, key: key}
}

func (c *Cache) mac(key string, value []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(key))
	m.Write([]byte{0})
	m.Write(value)
	return m.Sum(nil)
}

// open returns the document an entry holds if its MAC is right.
func (c *Cache) open(key string, raw []byte) ([]byte, bool) {
	if len(raw) < sha256.Size {
		return nil, false
	}
	sum, value := raw[:sha256.Size], raw[sha256.Size:]
	return value, hmac.Equal(sum, c.mac(key, value))
}

// Key is the Redis key of issuer's cached document.
func (c *Cache) Key(issuer string) string {
	sum := sha256.Sum256([]byte(issuer))
	return c.prefix + hex.EncodeToString(sum[:])
}

// Get returns issuer's document, from Redis when cached. Redis trouble only
// costs a fetch; every fetch failure is a *discovery.Error.
func (c *Cache) Get(ctx context.Context, issuer string) (discovery.Document, error) {
	key := c.Key(issuer)
	if raw, err := c.rdb.Get(ctx, key).Bytes(); err == nil {
		var d discovery.Document
		value, ok := c.open(key, raw)
		if !ok {
			c.log.Warn("a cached discovery document failed authentication; fetching it again", "issuer", issuer)
		} else if json.Unmarshal(value, &d) == nil && d.Issuer == issuer {
			return d, nil
		}
	} else if !errors.Is(err, redis.Nil) {
		c.log.Warn("discovery cache read failed", "err", err)
	}
	d, err := c.client.Discover(ctx, issuer)
	if err != nil {
		return discovery.Document{}, err
	}
	if raw, err := json.Marshal(d); err == nil {
		if err := c.rdb.Set(ctx, key, append(c.mac(key, raw), raw...), c.ttl).Err(); err != nil {
			c.log.Warn("discovery cache write failed", "err", err)
		}
	}
	return d, nil
}
