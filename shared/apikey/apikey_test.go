package apikey

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
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
