package cache

import (
	"bytes"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

const reply = `{"access_token":"tok-secret"}`

func entry(id string) Entry {
	return Entry{ConnectionID: id, Reply: []byte(reply)}
}

// confirmed returns a cache on clk, confirmed now.
func confirmed(clk *clock, o Options) *Cache {
	o.Now = clk.now
	c := New(o)
	c.Confirm(clk.t)
	return c
}

func TestServedOnlyWhileConfirmed(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	c := New(Options{Now: clk.now})
	c.Put(c.Begin(), entry("a"))
	if _, ok := c.Get("a"); ok {
		t.Fatal("served before any confirmation")
	}
	c.Confirm(clk.t)
	if e, ok := c.Get("a"); !ok || string(e.Reply) != reply {
		t.Fatalf("confirmed cache: %q, %v", e.Reply, ok)
	}
	clk.t = clk.t.Add(DefaultWindow - time.Millisecond)
	if _, ok := c.Get("a"); !ok {
		t.Fatal("not served inside the window")
	}
	clk.t = clk.t.Add(time.Millisecond)
	if _, ok := c.Get("a"); ok {
		t.Fatal("served a window after the last confirmation: changes since may be unapplied")
	}
	// An older probe arriving late does not move the confirmation back.
	c.Confirm(clk.t)
	c.Confirm(clk.t.Add(-time.Hour))
	if _, ok := c.Get("a"); !ok {
		t.Fatal("a late, older confirmation undid a newer one")
	}
}

func TestEntryLivesUntilItsTokenExpires(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	c := confirmed(clk, Options{MaxAge: time.Hour, Window: 100 * time.Hour})
	exp := clk.t.Add(90 * time.Second)
	e := entry("a")
	e.ExpiresAt = &exp
	s := c.Begin()
	clk.t = clk.t.Add(time.Second) // the read took a second
	c.Put(s, e)
	clk.t = exp.Add(-time.Millisecond)
	if _, ok := c.Get("a"); !ok {
		t.Fatal("entry gone before its token expired")
	}
	clk.t = exp
	if _, ok := c.Get("a"); ok {
		t.Fatal("entry served when its token expired")
	}
	c.Sweep()
	if c.Len() != 0 {
		t.Fatal("Sweep kept an expired entry")
	}
}

func TestMaxAgeCountsFromTheRead(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	c := confirmed(clk, Options{MaxAge: time.Minute, Window: 100 * time.Hour})
	e := entry("static")
	e.Static = true
	exp := clk.t.Add(-time.Hour) // ignored for static credentials
	e.ExpiresAt = &exp
	s := c.Begin()
	clk.t = clk.t.Add(5 * time.Second) // a slow read
	c.Put(s, e)
	clk.t = clk.t.Add(55*time.Second - time.Millisecond)
	if _, ok := c.Get("static"); !ok {
		t.Fatal("static entry gone before MaxAge")
	}
	clk.t = clk.t.Add(time.Millisecond)
	if _, ok := c.Get("static"); ok {
		t.Fatal("entry outlived MaxAge counted from the start of its read")
	}
}

func TestInvalidate(t *testing.T) {
	c := New(Options{Window: time.Hour})
	c.Confirm(time.Now())
	c.Put(c.Begin(), entry("a"))
	c.Invalidate("a")
	if _, ok := c.Get("a"); ok {
		t.Fatal("invalidated entry served")
	}
	// A read that began before an invalidation cannot re-populate.
	s := c.Begin()
	c.Invalidate("a")
	c.Put(s, entry("a"))
	if _, ok := c.Get("a"); ok {
		t.Fatal("stale read re-populated the cache")
	}
	c.Put(c.Begin(), entry("a"))
	if _, ok := c.Get("a"); !ok {
		t.Fatal("fresh read not cached")
	}
}

func TestInvalidateIsPerConnection(t *testing.T) {
	c := New(Options{Window: time.Hour})
	c.Confirm(time.Now())
	s := c.Begin()
	c.Invalidate("b")
	c.Put(s, entry("a"))
	if _, ok := c.Get("a"); !ok {
		t.Fatal("invalidating b dropped a read of a")
	}
}

func TestInvalidateProvider(t *testing.T) {
	c := New(Options{Window: time.Hour})
	c.Confirm(time.Now())
	of := func(id, provider string) Entry {
		e := entry(id)
		e.ProviderID = provider
		return e
	}
	c.Put(c.Begin(), of("a", "p1"))
	c.Put(c.Begin(), of("b", "p1"))
	c.Put(c.Begin(), of("c", "p2"))
	s := c.Begin() // a read of p1's connection d, under way
	c.InvalidateProvider("p1")
	for id, want := range map[string]bool{"a": false, "b": false, "c": true} {
		if _, ok := c.Get(id); ok != want {
			t.Errorf("%s cached = %v, want %v", id, ok, want)
		}
	}
	c.Put(s, of("d", "p1"))
	if _, ok := c.Get("d"); ok {
		t.Fatal("a read begun before the provider changed re-populated the cache")
	}
	c.Put(c.Begin(), of("d", "p1"))
	if _, ok := c.Get("d"); !ok {
		t.Fatal("a fresh read after the change is not cached")
	}
}

// TestFlush: after the listener reconnects the cache may have missed
// changes: nothing is served until the next confirmation, and a read begun
// before the flush cannot bring its entry back.
func TestFlush(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	c := confirmed(clk, Options{})
	c.Put(c.Begin(), entry("a"))
	s := c.Begin()
	c.Flush()
	if _, ok := c.Get("a"); ok {
		t.Fatal("served after a flush")
	}
	c.Put(s, entry("b"))
	c.Confirm(clk.t)
	if _, ok := c.Get("a"); ok {
		t.Fatal("a flushed entry came back with the next confirmation")
	}
	if _, ok := c.Get("b"); ok {
		t.Fatal("a read begun before the flush was cached")
	}
	c.Put(c.Begin(), entry("b"))
	if _, ok := c.Get("b"); !ok {
		t.Fatal("a read after the flush is not cached")
	}
}

// TestOldReadNotCached: a read older than the invalidations the cache
// remembers could be older than one it forgot.
func TestOldReadNotCached(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	c := confirmed(clk, Options{Window: 100 * time.Hour})
	s := c.Begin()
	c.Invalidate("a")
	clk.t = clk.t.Add(tombAge)
	c.Sweep() // the invalidation of a is forgotten
	c.Put(s, entry("a"))
	if _, ok := c.Get("a"); ok {
		t.Fatal("a read older than the remembered invalidations was cached")
	}
}

func TestMaxEntries(t *testing.T) {
	c := New(Options{MaxEntries: 3, Window: time.Hour})
	c.Confirm(time.Now())
	c.Invalidate("tomb")
	for _, id := range []string{"a", "b", "c", "d"} {
		c.Put(c.Begin(), entry(id))
	}
	if n := c.Len(); n != 3 {
		t.Fatalf("%d entries, want at most 3", n)
	}
	if _, ok := c.Get("d"); !ok {
		t.Fatal("the newest entry was not cached")
	}
	c.mu.RLock()
	it, ok := c.items["tomb"]
	c.mu.RUnlock()
	if !ok || it.tomb == 0 {
		t.Fatal("eviction dropped an invalidation: a stale read could Put")
	}
}

// TestSealed: the cache holds no plaintext reply, and a caller changing what
// Get returned does not change the entry.
func TestSealed(t *testing.T) {
	c := New(Options{Window: time.Hour})
	c.Confirm(time.Now())
	c.Put(c.Begin(), entry("a"))
	c.mu.RLock()
	held := c.items["a"].e.Reply
	c.mu.RUnlock()
	if bytes.Contains(held, []byte("tok-secret")) {
		t.Fatal("the cache holds the token in the clear")
	}
	e, _ := c.Get("a")
	e.Reply[0] = 'X'
	if e, _ := c.Get("a"); string(e.Reply) != reply {
		t.Fatalf("entry changed through a returned reply: %q", e.Reply)
	}
	// Entries are bound to their connection: one moved under another id
	// does not open.
	c.mu.Lock()
	c.items["b"] = c.items["a"]
	c.mu.Unlock()
	if _, ok := c.Get("b"); ok {
		t.Fatal("an entry opened under another connection's id")
	}
}

// TestLookupOpensIntoTheBuffer: Lookup opens the reply into the buffer it
// is given, from its start, whatever the buffer held; a buffer too small
// is outgrown, not overrun.
func TestLookupOpensIntoTheBuffer(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	c := confirmed(clk, Options{})
	c.Put(c.Begin(), entry("a"))
	buf := append(make([]byte, 0, 256), "left over from another reply"...)
	e, ok := c.Lookup("a", clk.t, buf)
	if !ok || string(e.Reply) != reply {
		t.Fatalf("Lookup: %q, %v", e.Reply, ok)
	}
	if &e.Reply[0] != &buf[:1][0] {
		t.Error("the reply was not opened into the buffer given")
	}
	small := make([]byte, 0, 4)
	if e, ok := c.Lookup("a", clk.t, small); !ok || string(e.Reply) != reply || string(small[:4]) != "\x00\x00\x00\x00" {
		t.Fatalf("Lookup into a small buffer: %q, %v, buffer %q", e.Reply, ok, small[:4])
	}
	clk.t = clk.t.Add(DefaultWindow)
	if _, ok := c.Lookup("a", clk.t, buf); ok {
		t.Fatal("Lookup served a window after the last confirmation")
	}
}
