package httpserver

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/shared/logging"
)

// Serve caps what a request may carry before any handler runs: the request
// line (the path and query of a connect link or a callback) and the headers
// together at 64 KiB, refused with 431.
func TestServeCapsRequestHeaders(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var reached atomic.Bool
	go func() {
		done <- Serve(ctx, ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { reached.Store(true) }), logging.Discard())
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	base := "http://" + ln.Addr().String()
	client := &http.Client{Timeout: 10 * time.Second}
	status := func(req *http.Request) int {
		t.Helper()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	big := strings.Repeat("a", 70<<10)
	query, _ := http.NewRequest(http.MethodGet, base+"/v1/callback?state="+big, nil)
	header, _ := http.NewRequest(http.MethodGet, base+"/v1/connect/x", nil)
	header.Header.Set("Cookie", "nexus="+big)
	for name, req := range map[string]*http.Request{"query": query, "header": header} {
		if got := status(req); got != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("a 70 KiB %s: HTTP %d, want 431", name, got)
		}
	}
	if reached.Load() {
		t.Fatal("the handler saw an over-long request")
	}
	ok, _ := http.NewRequest(http.MethodGet, base+"/v1/callback?state="+strings.Repeat("a", 4<<10), nil)
	if got := status(ok); got != http.StatusOK || !reached.Load() {
		t.Fatalf("a 4 KiB query: HTTP %d", got)
	}
}
