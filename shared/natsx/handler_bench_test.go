package natsx

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/apikey"
)

// benchRequest is a micro.Request answered in memory: the reply is copied,
// as nats.go copies it into the connection's buffer.
type benchRequest struct {
	data    []byte
	headers micro.Headers
	sent    []byte
	failed  string
}

func (r *benchRequest) Respond(b []byte, _ ...micro.RespondOpt) error {
	r.sent = append(r.sent[:0], b...)
	return nil
}
func (r *benchRequest) RespondJSON(any, ...micro.RespondOpt) error { panic("not used") }
func (r *benchRequest) Error(code, _ string, _ []byte, _ ...micro.RespondOpt) error {
	r.failed = code
	return nil
}
func (r *benchRequest) Data() []byte           { return r.data }
func (r *benchRequest) Headers() micro.Headers { return r.headers }
func (r *benchRequest) Subject() string        { return "nexus.v1.tokens.get" }
func (r *benchRequest) Reply() string          { return "_INBOX.bench" }

// BenchmarkFastPath is what natsx costs a request answered by a fast path,
// without NATS: identifying the key, decoding the body, the caller's
// context, the reply buffer, the audit record (to a sink that keeps
// nothing), the duration histogram and the reply's copy. The tokens.get
// handler's own work (the cache) comes on top:
// go test -run '^$' -bench FastPath ./shared/natsx
func BenchmarkFastPath(b *testing.B) {
	const key = "nexus-bench-key-0123456789abcdef01234567"
	ns, err := StartEmbedded(EmbeddedOptions{Port: -1, StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	svc, err := NewService(nc, ServiceConfig{
		Name: "bench", Version: "1.0.0",
		Callers:    apikey.NewSet().Add(apikey.Gateway, []string{key, "a-previous-gateway-key-still-accepted"}).Add(apikey.Operator, []string{"an-operator-key-0123456789"}),
		Registerer: prometheus.NewRegistry(),
		Audit:      func(AuditRecord) {},
	})
	if err != nil {
		b.Fatal(err)
	}
	e, err := svc.newEndpoint(messages.SubjectTokensGet, []Option{For(apikey.Gateway), Audited()})
	if err != nil {
		b.Fatal(err)
	}
	reply := []byte(`{"connection_id":"01a23164-90e4-7b9e-9415-a2a74b385532","access_token":"` + strings.Repeat("t", 300) + `"}`)
	fast := func(_ context.Context, r messages.TokenRequest, buf []byte) (json.RawMessage, bool, error) {
		return append(buf, reply...), true, nil
	}
	h := handler(e, fast, func(context.Context, messages.TokenRequest) (json.RawMessage, error) { panic("not the fast path") })
	req := &benchRequest{
		data:    []byte(`{"connection_id":"01a23164-90e4-7b9e-9415-a2a74b385532","workspace_id":"ws-1"}`),
		headers: micro.Headers{messages.HeaderAPIKey: {key}},
	}
	b.ReportAllocs()
	for b.Loop() {
		h(req)
		if req.failed != "" || len(req.sent) != len(reply) {
			b.Fatalf("answered %q, %d bytes", req.failed, len(req.sent))
		}
	}
}
