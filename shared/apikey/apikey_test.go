package apikey

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestIdentify(t *testing.T) {
	s := NewSet().
		Add(Gateway, []string{"gateway-key-current", "gateway-key-previous", ""}).
		AddCrossWorkspace([]string{"gateway-key-all-workspaces"}).
		Add(Operator, []string{"operator-key-0001"}).
		Add(Handshake, []string{"handshake-service-key"})
	for _, tc := range []struct {
		key, principal string
		cross, ok      bool
	}{
		{"gateway-key-current", Gateway, false, true},
		{"gateway-key-previous", Gateway, false, true},
		{"gateway-key-all-workspaces", Gateway, true, true},
		{"operator-key-0001", Operator, false, true},
		{"handshake-service-key", Handshake, false, true},
		{"", "", false, false},
		{"gateway-key-curren", "", false, false},
		{"GATEWAY-KEY-CURRENT", "", false, false},
	} {
		c, ok := s.Identify(tc.key)
		if ok != tc.ok || c.Principal != tc.principal || c.CrossWorkspace != tc.cross {
			t.Errorf("Identify(%q) = %+v, %v", tc.key, c, ok)
		}
		if ok && (len(c.KeyID) != 16 || strings.Contains(tc.key, c.KeyID)) {
			t.Errorf("key id %q", c.KeyID)
		}
	}
	a, _ := s.Identify("gateway-key-current")
	b, _ := s.Identify("gateway-key-previous")
	if a.KeyID == b.KeyID {
		t.Error("two keys share a key id")
	}
	if s.Len() != 5 {
		t.Errorf("Len = %d", s.Len())
	}
	var nilSet *Set
	if _, ok := nilSet.Identify("x"); ok {
		t.Error("an empty set accepted a key")
	}
	// What the zero padding of the comparison must not let through: a key
	// with NULs appended, or a prefix, of a short key or of one longer than
	// Identify's copy on the stack; each key is still found after a longer
	// one widens the set.
	long := strings.Repeat("k", 300)
	s.Add(Admin, []string{long})
	for _, k := range []string{"gateway-key-current", long} {
		if _, ok := s.Identify(k); !ok {
			t.Errorf("a key of %d bytes is not found", len(k))
		}
		for _, near := range []string{k + "\x00", k[:len(k)-1], k + "x", k + strings.Repeat("\x00", 400)} {
			if _, ok := s.Identify(near); ok {
				t.Errorf("a near miss of a %d-byte key (%d bytes) was accepted", len(k), len(near))
			}
		}
	}
	if c, _ := s.Identify(long); c.Principal != Admin {
		t.Errorf("the long key names %q", c.Principal)
	}
}

// TestCallerOf: the caller is found through every context derived from
// the one that carries it, values above and below it stay readable, and a
// context without one has the zero Caller.
func TestCallerOf(t *testing.T) {
	type other struct{}
	want := Caller{Principal: Gateway, KeyID: "0123456789abcdef", CrossWorkspace: true}
	ctx := WithCaller(context.WithValue(context.Background(), other{}, "below"), want)
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, other{}, "above"), time.Minute)
	defer cancel()
	if got := CallerOf(ctx); got != want {
		t.Errorf("CallerOf = %+v, want %+v", got, want)
	}
	if v := ctx.Value(other{}); v != "above" {
		t.Errorf("a value set above the caller: %v", v)
	}
	if v := WithCaller(context.WithValue(context.Background(), other{}, "below"), want).Value(other{}); v != "below" {
		t.Errorf("a value set below the caller: %v", v)
	}
	if got := CallerOf(context.Background()); got != (Caller{}) {
		t.Errorf("no caller recorded, CallerOf = %+v", got)
	}
	// A later WithCaller wins (the console's session inside an HTTP request).
	inner := Caller{Principal: Operator, KeyID: "fedcba9876543210"}
	if got := CallerOf(WithCaller(ctx, inner)); got != inner {
		t.Errorf("CallerOf after a second WithCaller = %+v", got)
	}
}

func TestNoKeyInLogs(t *testing.T) {
	var buf bytes.Buffer
	s := NewSet().Add(Gateway, []string{"gateway-key-secret-value"})
	c, _ := s.Identify("gateway-key-secret-value")
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "keys", s, "caller", c)
	if strings.Contains(buf.String(), "secret-value") || !strings.Contains(buf.String(), `"gateway":1`) {
		t.Fatalf("log: %s", buf.String())
	}
	if Outgoing([]string{"", "first", "second"}) != "first" {
		t.Error("Outgoing")
	}
}
