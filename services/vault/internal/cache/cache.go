// Package cache keeps the credentials tokens.get served in memory, sealed,
// for as long as they stay valid (at most MaxAge), so that a Gateway reading
// many connections is answered without the database.
//
// Keeping entries that long is safe only because the cache knows when it is
// up to date. Every transaction that changes what is served also notifies
// PostgreSQL's change channel, and every replica's listener drops what it
// names (the vault's changes.go). Notifications arrive in commit order, so
// when the listener receives a probe this replica sent at time T, every change
// committed before T has been applied: Confirm(T). Get serves only while the
// latest confirmation is younger than Window (under a second): a replica
// whose listener is slow, cut off or silent serves from the database until it
// is confirmed again, and one that reconnects Flushes first, because it may
// have missed notifications. A connection revoked or needing attention thus
// stops being served within Window on every replica (docs/ARCHITECTURE.md,
// invariant 7), and at once on the replica that changed it.
//
// A Put made by a reader that started before an invalidation (or a flush) is
// ignored, so a stale read cannot re-populate an entry that was just dropped.
package cache

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Defaults for Options.
const (
	DefaultMaxEntries = 1 << 18
	DefaultMaxAge     = 5 * time.Minute
	DefaultWindow     = 800 * time.Millisecond
	// tombAge is how long an invalidation is remembered, so that reads begun
	// before it cannot Put; a read older than this is not cached at all.
	tombAge = 10 * time.Second
)

// Entry is what tokens.get needs to answer without the database: where the
// connection belongs, when its token expires, and the encoded Credential,
// made once when the entry is cached. Reply holds a secret: the cache keeps
// it sealed, and Get returns a copy opened for the caller.
type Entry struct {
	ConnectionID string
	ProviderID   string
	WorkspaceID  string
	// Static credentials do not expire; for others ExpiresAt and
	// LastRefreshedAt decide whether the token meets min_valid_seconds.
	Static          bool
	ExpiresAt       *time.Time
	LastRefreshedAt *time.Time
	Reply           []byte
}

// LogValue keeps the reply, and its secret, out of logs.
func (e Entry) LogValue() slog.Value {
	return slog.GroupValue(slog.String("connection_id", e.ConnectionID), slog.String("reply", "[redacted]"))
}

type item struct {
	e       Entry // Reply sealed
	expires time.Time
	// tomb > 0 marks an invalidation (at that generation), kept for tombAge
	// so that reads begun before it cannot Put.
	tomb uint64
}

type providerTomb struct {
	gen uint64
	at  time.Time
}

// Options tune a Cache; the zero value gives the defaults.
type Options struct {
	// MaxEntries bounds memory: a Put beyond it evicts an arbitrary entry.
	MaxEntries int
	// MaxAge is the longest an entry lives, whatever its token's expiry.
	MaxAge time.Duration
	// Window is how recent the latest Confirm must be for Get to serve.
	Window time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Cache is safe for concurrent use.
type Cache struct {
	max    int
	maxAge time.Duration
	window time.Duration
	now    func() time.Time
	aead   cipher.AEAD
	nonce  atomic.Uint64
	// confirmed is the UnixNano of the latest Confirm (0: never, or flushed).
	confirmed atomic.Int64

	mu       sync.RWMutex
	items    map[string]item
	gen      uint64 // invalidation counter
	flushGen uint64 // the generation of the last Flush
	// providerTombs: each provider's last invalidation.
	providerTombs map[string]providerTomb
}

// New returns an empty cache, not yet confirmed: Get serves nothing until
// the first Confirm. Entries are sealed under a key made here and never
// stored, so a dump of the process's memory is not a list of tokens.
func New(o Options) *Cache {
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic("cache: no randomness for the sealing key: " + err.Error())
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &Cache{max: o.MaxEntries, maxAge: o.MaxAge, window: o.Window, now: o.Now, aead: aead,
		items: map[string]item{}, providerTombs: map[string]providerTomb{}}
}

// Now reads the cache's clock (Options.Now). The times given to Confirm
// and Lookup are read from it.
func (c *Cache) Now() time.Time { return c.now() }

// Fresh reports whether the cache has been confirmed within Window.
func (c *Cache) Fresh() bool { return c.freshAt(c.now()) }

func (c *Cache) freshAt(now time.Time) bool {
	at := c.confirmed.Load()
	return at != 0 && now.UnixNano()-at < int64(c.window)
}

// Confirmed is the sending time of the latest probe heard (zero: none
// since New or the last Flush).
func (c *Cache) Confirmed() time.Time {
	at := c.confirmed.Load()
	if at == 0 {
		return time.Time{}
	}
	return time.Unix(0, at)
}

// Confirm records that every change committed before sent has been applied
// (the listener received a probe sent then).
func (c *Cache) Confirm(sent time.Time) {
	at := sent.UnixNano()
	for {
		old := c.confirmed.Load()
		if at <= old || c.confirmed.CompareAndSwap(old, at) {
			return
		}
	}
}

// Get returns the live entry for id, with its reply opened, while the cache
// is fresh.
func (c *Cache) Get(id string) (Entry, bool) { return c.Lookup(id, c.now(), nil) }

// Lookup is Get at now, read from the cache's clock (Now, Options.Now),
// with the reply opened into buf (appended to buf[:0], which it outgrows
// only for a reply longer than its capacity): the hot path reads the clock
// once for the lookup and its own checks, and opens into a buffer it reuses
// once the reply is sent.
func (c *Cache) Lookup(id string, now time.Time, buf []byte) (Entry, bool) {
	if !c.freshAt(now) {
		return Entry{}, false
	}
	c.mu.RLock()
	it, ok := c.items[id]
	c.mu.RUnlock()
	if !ok || it.tomb != 0 || !now.Before(it.expires) {
		return Entry{}, false
	}
	reply, err := c.open(buf[:0], it.e.Reply, id)
	if err != nil {
		return Entry{}, false
	}
	it.e.Reply = reply
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

// Put stores e, read after s was taken. It lives until its token expires, at
// most MaxAge after s, and is dropped if e's connection (or its provider) was
// invalidated, or the cache flushed, since s.
func (c *Cache) Put(s Snapshot, e Entry) {
	expires := s.at.Add(c.maxAge)
	if !e.Static && e.ExpiresAt != nil && e.ExpiresAt.Before(expires) {
		expires = *e.ExpiresAt
	}
	e.Reply = c.seal(e.Reply, e.ConnectionID)
	c.mu.Lock()
	defer c.mu.Unlock()
	// A read older than the invalidations the cache remembers (checked
	// under the lock, so Sweep cannot forget one in between) is not cached.
	if s.gen < c.flushGen || c.now().Sub(s.at) >= tombAge {
		return
	}
	it, ok := c.items[e.ConnectionID]
	if ok && it.tomb > s.gen {
		return
	}
	if c.providerTombs[e.ProviderID].gen > s.gen {
		return
	}
	if !ok && len(c.items) >= c.max {
		c.evictOne()
	}
	c.items[e.ConnectionID] = item{e: e, expires: expires}
}

// evictOne drops an arbitrary live entry (map order is random); tombs stay,
// since dropping one would let a stale read Put.
func (c *Cache) evictOne() {
	n := 0
	for id, it := range c.items {
		if it.tomb == 0 {
			delete(c.items, id)
			return
		}
		if n++; n > 16 {
			return
		}
	}
}

// Invalidate drops id's entry.
func (c *Cache) Invalidate(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.items[id] = item{tomb: c.gen, expires: c.now().Add(tombAge)}
}

// InvalidateProvider drops the entries of every connection of a provider
// (its registration changed: strategy, name). It is rare and walks the cache.
func (c *Cache) InvalidateProvider(providerID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	tomb := item{tomb: c.gen, expires: c.now().Add(tombAge)}
	for id, it := range c.items {
		if it.tomb == 0 && it.e.ProviderID == providerID {
			c.items[id] = tomb
		}
	}
	// A read begun before this (Begin) and Put after it must not bring a
	// connection of the provider back: Put checks this generation too.
	c.providerTombs[providerID] = providerTomb{gen: c.gen, at: c.now()}
}

// Flush drops every entry and the confirmation: the listener reconnected
// and may have missed changes. Reads begun before it cannot Put, and Get
// serves nothing until the next Confirm.
func (c *Cache) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.confirmed.Store(0)
	c.gen++
	c.flushGen = c.gen
	clear(c.items)
	clear(c.providerTombs)
}

// sweepBatch is how many expired entries Sweep drops per hold of the
// write lock.
const sweepBatch = 1024

// Sweep drops expired entries and invalidations older than any read that
// may still Put; run it periodically to bound memory. It finds them under
// the read lock, which tokens.get's reads share, and takes the write lock
// only to drop them a batch at a time: a sweep of a full cache does not
// stall the hot path for the length of the walk.
func (c *Cache) Sweep() {
	now := c.now()
	var expired []string
	c.mu.RLock()
	for id, it := range c.items {
		if !now.Before(it.expires) {
			expired = append(expired, id)
		}
	}
	c.mu.RUnlock()
	for len(expired) > 0 {
		batch := expired[:min(sweepBatch, len(expired))]
		expired = expired[len(batch):]
		c.mu.Lock()
		for _, id := range batch {
			// Put or Invalidate may have replaced it since the walk.
			if it, ok := c.items[id]; ok && !now.Before(it.expires) {
				delete(c.items, id)
			}
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, t := range c.providerTombs {
		if now.Sub(t.at) >= tombAge {
			delete(c.providerTombs, id)
		}
	}
}

// Len is the number of entries, expired ones and invalidations included.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.items)
}

// seal encrypts a reply bound to its connection id. Nonces count up under a
// key used by this cache only, so none repeats.
func (c *Cache) seal(reply []byte, id string) []byte {
	nonce := make([]byte, c.aead.NonceSize(), c.aead.NonceSize()+len(reply)+c.aead.Overhead())
	binary.BigEndian.PutUint64(nonce[len(nonce)-8:], c.nonce.Add(1))
	return c.aead.Seal(nonce, nonce, reply, bound(id))
}

func (c *Cache) open(dst, sealed []byte, id string) ([]byte, error) {
	n := c.aead.NonceSize()
	return c.aead.Open(dst, sealed[:n], sealed[n:], bound(id))
}

// bound is id's bytes as the additional data an entry is sealed with,
// without a copy: the AEAD only reads its additional data, and a string's
// bytes are never written.
func bound(id string) []byte { return unsafe.Slice(unsafe.StringData(id), len(id)) }
