package cache

import (
	"testing"
	"time"

	"github.com/nexus-broker/nexus/services/vault/internal/store"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func entry(id string) Entry {
	return Entry{Conn: store.Connection{ID: id}, Reply: []byte(`{"access_token":"tok"}`)}
}

func TestTTL(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	c := New(0, clk.now)
	c.Put(c.Begin(), entry("a"))
	if _, ok := c.Get("a"); !ok {
		t.Fatal("fresh entry missing")
	}
	clk.t = clk.t.Add(899 * time.Millisecond)
	if _, ok := c.Get("a"); !ok {
		t.Fatal("entry gone before its TTL")
	}
	clk.t = clk.t.Add(time.Millisecond)
	if _, ok := c.Get("a"); ok {
		t.Fatal("entry served at its TTL")
	}
	c.Sweep()
	if c.Len() != 0 {
		t.Fatal("Sweep kept an expired entry")
	}
}

func TestTTLCountsFromTheRead(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	c := New(0, clk.now)
	s := c.Begin()
	clk.t = clk.t.Add(500 * time.Millisecond) // a slow read
	c.Put(s, entry("a"))
	clk.t = clk.t.Add(400 * time.Millisecond)
	if _, ok := c.Get("a"); ok {
		t.Fatal("entry outlived TTL counted from the start of its read")
	}
}

func TestInvalidate(t *testing.T) {
	c := New(time.Hour, nil)
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
	c := New(time.Hour, nil)
	s := c.Begin()
	c.Invalidate("b")
	c.Put(s, entry("a"))
	if _, ok := c.Get("a"); !ok {
		t.Fatal("invalidating b dropped a read of a")
	}
}

func TestInvalidateProvider(t *testing.T) {
	c := New(time.Hour, nil)
	of := func(id, provider string) Entry {
		e := entry(id)
		e.Conn.ProviderID = provider
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
