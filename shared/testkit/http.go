package testkit

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// InternalHost is the loopback address tests use for an internal service an
// attacker aims at: Linux routes all of 127.0.0.0/8 to lo, and the tests
// open only 127.0.0.1/32 in PROVIDER_PRIVATE_NETWORKS, so the egress guard
// refuses this one.
const InternalHost = "127.0.0.2"

// HTTPServer serves h on addr ("127.0.0.2:0") until the test ends, and
// counts the connections it accepts: a refusal by the egress guard must
// leave the count at zero.
func HTTPServer(t testing.TB, addr string, h http.Handler) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	s := httptest.NewUnstartedServer(h)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s (Linux routes 127.0.0.0/8 to lo): %v", addr, err)
	}
	s.Listener.Close()
	s.Listener = ln
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s, &conns
}
