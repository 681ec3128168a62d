// Package cache keeps recently served credentials in memory for tokens.get.
//
// Entries live at most TTL (900ms by default) and are dropped at once on an
// invalidation. A Put made by a reader that started before an invalidation is
// ignored, so a stale read cannot re-populate an entry that was just dropped.
// With the TTL below one second, a connection revoked or needing attention
// stops being served within one second on every replica even if the
// invalidation broadcast is lost (docs/ARCHITECTURE.md, invariants 7).
package cache

import (
	"log/slog"
	"sync"
	"time"

	"github.com/nexus-broker/nexus/services/vault/internal/store"
)

// DefaultTTL is the hard lifetime of an entry.
const DefaultTTL = 900 * time.Millisecond

// Entry is what tokens.get needs to answer without the database: the
// connection (for status, workspace and expiry checks) and the encoded
// Credential, made once when the entry is cached. Reply holds a secret.
type Entry struct {
	Conn  store.Connection
	Reply []byte
}

// LogValue keeps the reply, and its secret, out of logs.
func (e Entry) LogValue() slog.Value {
	return slog.GroupValue(slog.String("connection_id", e.Conn.ID), slog.String("reply", "[redacted]"))
}

type item struct {
	e       Entry
	expires time.Time
	// tomb > 0 marks an invalidation (at that generation), kept for one TTL
	// so that reads begun before it cannot Put.
	tomb uint64
}

// Cache is safe for concurrent use.
type Cache struct {
	ttl time.Duration
	now func() time.Time

	mu    sync.RWMutex
	items map[string]item
	gen   uint64 // invalidation counter
	// providerTombs: the generation of each provider's last invalidation.
	providerTombs map[string]uint64
}

// New returns a cache; ttl 0 means DefaultTTL, now nil means time.Now.
func New(ttl time.Duration, now func() time.Time) *Cache {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Cache{ttl: ttl, now: now, items: map[string]item{}, providerTombs: map[string]uint64{}}
}

// Get returns the live entry for id.
func (c *Cache) Get(id string) (Entry, bool) {
	c.mu.RLock()
	it, ok := c.items[id]
	c.mu.RUnlock()
	if !ok || it.tomb != 0 || !c.now().Before(it.expires) {
		return Entry{}, false
	}
	return it.e, true
}

// Snapshot marks the start of a read from the database; pass it to Put.
type Snapshot struct {
	gen uint64
	at  time.Time
}

// Begin returns a Snapshot to take before reading what will be Put.
func (c *Cache) Begin() Snapshot {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return Snapshot{gen: c.gen, at: c.now()}
}

// Put stores e, read after s was taken. It expires TTL after s, and is
// dropped if e's connection was invalidated since s.
func (c *Cache) Put(s Snapshot, e Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if it, ok := c.items[e.Conn.ID]; ok && it.tomb > s.gen {
		return
	}
	if c.providerTombs[e.Conn.ProviderID] > s.gen {
		return
	}
	c.items[e.Conn.ID] = item{e: e, expires: s.at.Add(c.ttl)}
}

// Invalidate drops id's entry.
func (c *Cache) Invalidate(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.items[id] = item{tomb: c.gen, expires: c.now().Add(c.ttl)}
}

// InvalidateProvider drops the entries of every connection of a provider
// (its registration changed: strategy, name). It is rare and walks the cache.
func (c *Cache) InvalidateProvider(providerID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	tomb := item{tomb: c.gen, expires: c.now().Add(c.ttl)}
	for id, it := range c.items {
		if it.tomb == 0 && it.e.Conn.ProviderID == providerID {
			c.items[id] = tomb
		}
	}
	// A read begun before this (Begin) and Put after it must not bring a
	// connection of the provider back: Put checks this generation too.
	c.providerTombs[providerID] = c.gen
}

// Sweep drops expired entries; run it periodically to bound memory.
func (c *Cache) Sweep() {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, it := range c.items {
		if !now.Before(it.expires) {
			delete(c.items, id)
		}
	}
}

// Len is the number of entries, expired ones included.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.items)
}
