package cache

import (
	"strings"
	"testing"
	"time"
)

// BenchmarkLookup is the hot path's read of a cached credential of the
// benchmark's size (378 bytes), opened into a reused buffer.
func BenchmarkLookup(b *testing.B) {
	c := New(Options{})
	now := time.Now()
	c.Confirm(now.Add(time.Hour))
	exp := now.Add(time.Hour)
	id := "0193a8b0-0000-7000-8000-000000000001"
	c.Put(c.Begin(), Entry{ConnectionID: id, ProviderID: "p", WorkspaceID: "w", ExpiresAt: &exp, Reply: []byte(strings.Repeat("x", 378))})
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Lookup(id, now, buf); !ok {
			b.Fatal("miss")
		}
	}
}
