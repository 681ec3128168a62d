package testkit

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"
)

// OTLPReceiver takes OTLP/HTTP trace exports (protobuf, POST /v1/traces),
// as a collector does, and keeps every span, for tests of what a service
// exports: the exporter under test is the SDK's own, speaking the wire
// protocol to a loopback port.
type OTLPReceiver struct {
	// URL is the base endpoint (OTEL_EXPORTER_OTLP_ENDPOINT).
	URL string

	mu      sync.Mutex
	spans   []Span
	exports int
	bodies  [][]byte
}

// Span is one exported span, flattened: the service is its resource's
// service.name, and every attribute is shown as text.
type Span struct {
	Service, Name, Kind    string
	TraceID, SpanID        string
	ParentSpanID           string
	Attributes             map[string]string
	StatusCode, StatusText string
}

// OTLP starts a receiver on addr ("127.0.0.1:0" for any port) until the test
// ends. A listener that cannot be had fails the test.
func OTLP(t testing.TB, addr string) *OTLPReceiver {
	t.Helper()
	r := &OTLPReceiver{}
	srv, _ := HTTPServer(t, addr, http.HandlerFunc(r.serve))
	r.URL = srv.URL
	return r
}

func (r *OTLPReceiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want POST /v1/traces, application/x-protobuf", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 16<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var export coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &export); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.exports++
	r.bodies = append(r.bodies, body)
	for _, rs := range export.ResourceSpans {
		service := attributes(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				r.spans = append(r.spans, Span{
					Service: service, Name: s.Name, Kind: s.Kind.String(),
					TraceID: hex.EncodeToString(s.TraceId), SpanID: hex.EncodeToString(s.SpanId),
					ParentSpanID: hex.EncodeToString(s.ParentSpanId), Attributes: attributes(s.Attributes),
					StatusCode: s.GetStatus().GetCode().String(), StatusText: s.GetStatus().GetMessage(),
				})
			}
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func attributes(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = anyValue(kv.Value)
	}
	return m
}

func anyValue(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	default:
		return v.String()
	}
}

// Bodies is every export received so far, as it came (protobuf): every
// string a span carries (its name, attributes, events, status, resource)
// is in it as it was exported, for tests that look for what must not be.
func (r *OTLPReceiver) Bodies() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...)
}

// Spans is every span received so far.
func (r *OTLPReceiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Exports is how many export requests arrived.
func (r *OTLPReceiver) Exports() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.exports
}
