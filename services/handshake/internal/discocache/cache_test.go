package discocache

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nexus-broker/nexus/shared/discovery"
	"github.com/nexus-broker/nexus/shared/egress"
	"github.com/nexus-broker/nexus/shared/redisx"
	"github.com/nexus-broker/nexus/shared/testkit"
)

// idp serves a discovery document; doc is called with the server's URL.
func idp(t *testing.T, doc func(base string) any) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		hits.Add(1)
		json.NewEncoder(w).Encode(doc(srv.URL))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// loopback is the egress guard with 127.0.0.1/32 opened, where the tests'
// providers listen.
func loopback(t *testing.T) *egress.Client {
	t.Helper()
	n, errs := egress.ParseNetworks("127.0.0.1/32")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return egress.New(egress.Options{Private: n})
}

func rdb(t *testing.T) redis.UniversalClient {
	t.Helper()
	c, err := redisx.Connect(context.Background(), testkit.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestGetCaches(t *testing.T) {
	srv, hits := idp(t, func(base string) any {
		return map[string]any{"issuer": base, "authorization_endpoint": base + "/auth", "token_endpoint": base + "/token", "jwks_uri": base + "/jwks",
			"authorization_response_iss_parameter_supported": true}
	})
	r := rdb(t)
	c := New(r, loopback(t), nil, testPrefix(t), testKey)
	t.Cleanup(func() { r.Del(context.Background(), c.Key(srv.URL)) })
	for range 3 {
		d, err := c.Get(context.Background(), srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		if d.AuthorizationEndpoint != srv.URL+"/auth" || !d.IssParameterSupported {
			t.Fatalf("doc = %+v", d)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("fetched %d times, want 1 (cached)", hits.Load())
	}
	ttl := r.TTL(context.Background(), c.Key(srv.URL)).Val()
	if ttl <= 0 || ttl > CacheTTL {
		t.Fatalf("cache TTL = %v", ttl)
	}
}

func TestGetRefusesWrongIssuer(t *testing.T) {
	srv, _ := idp(t, func(base string) any {
		return map[string]any{"issuer": base + "/other", "authorization_endpoint": base + "/auth"}
	})
	_, err := New(rdb(t), loopback(t), nil, testPrefix(t), testKey).Get(context.Background(), srv.URL)
	var de *discovery.Error
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want *Error", err)
	}
}

// TestGetRefusesWhatTheGuardRefuses: with no private network opened (the
// default), a loopback issuer is refused without a fetch, over http and
// https alike.
func TestGetRefusesWhatTheGuardRefuses(t *testing.T) {
	srv, hits := idp(t, func(base string) any { return map[string]any{"issuer": base} })
	for _, issuer := range []string{srv.URL, "https://" + strings.TrimPrefix(srv.URL, "http://"), "http://idp.example.com"} {
		_, err := New(rdb(t), nil, nil, testPrefix(t), testKey).Get(context.Background(), issuer)
		var de *discovery.Error
		if !errors.As(err, &de) {
			t.Fatalf("%s: err = %v, want *Error", issuer, err)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the refused issuer was fetched %d times", hits.Load())
	}
}

// testPrefix keeps each test's cache apart: test providers reuse loopback
// ports, so issuer URLs repeat across tests and runs.
func testPrefix(t *testing.T) string { return "nexus:test:" + testkit.RandomHex(t, 6) + ":" }

var testKey = []byte("discovery-cache-test-key-0123456")

// TestForgedEntriesAreRefused: whoever can write to Redis cannot choose a
// provider's authorization endpoint nor switch off its iss check: an entry
// that is not the cache's own is fetched again.
func TestForgedEntriesAreRefused(t *testing.T) {
	srv, hits := idp(t, func(base string) any {
		return map[string]any{"issuer": base, "authorization_endpoint": base + "/auth", "token_endpoint": base + "/token", "jwks_uri": base + "/jwks",
			"authorization_response_iss_parameter_supported": true}
	})
	r := rdb(t)
	c := New(r, loopback(t), nil, testPrefix(t), testKey)
	ctx := context.Background()
	if _, err := c.Get(ctx, srv.URL); err != nil {
		t.Fatal(err)
	}
	forged, _ := json.Marshal(discovery.Document{Issuer: srv.URL, AuthorizationEndpoint: "https://evil.example/auth", IssParameterSupported: false})
	for name, value := range map[string][]byte{
		"plain JSON":          forged,
		"another key's MAC":   append(New(r, nil, nil, "", []byte("another-key-0123456789-abcdefghij")).mac(c.Key(srv.URL), forged), forged...),
		"a MAC for elsewhere": append(c.mac(c.Key("https://elsewhere.example"), forged), forged...),
	} {
		if err := r.Set(ctx, c.Key(srv.URL), value, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		before := hits.Load()
		d, err := c.Get(ctx, srv.URL)
		if err != nil || d.AuthorizationEndpoint != srv.URL+"/auth" || !d.IssParameterSupported || hits.Load() != before+1 {
			t.Fatalf("%s: served %+v (%v), fetched %d times", name, d, err, hits.Load()-before)
		}
	}
}
