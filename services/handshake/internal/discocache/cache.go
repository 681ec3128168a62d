// Package discocache keeps OpenID Provider configuration documents in Redis
// for an hour, so a consent does not fetch the provider's discovery document
// each time. Fetching and checking the document is shared/discovery's job.
package discocache

import (
	"context"
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
}

// New returns a Cache keeping documents under prefix + "disco:" (the
// handshake's REDIS_KEY_PREFIX), fetched through hc, the egress guard (nil:
// discovery's default, a guard that opens no private network).
func New(rdb redis.UniversalClient, hc *egress.Client, log *slog.Logger, prefix string) *Cache {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cache{rdb: rdb, client: discovery.New(hc), prefix: prefix + "disco:", ttl: CacheTTL, log: log}
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
		if json.Unmarshal(raw, &d) == nil && d.Issuer == issuer {
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
		if err := c.rdb.Set(ctx, key, raw, c.ttl).Err(); err != nil {
			c.log.Warn("discovery cache write failed", "err", err)
		}
	}
	return d, nil
}
