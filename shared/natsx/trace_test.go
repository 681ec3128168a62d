package natsx_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/telemetry"
	"github.com/nexus-broker/nexus/shared/testkit"
)

const serviceKey = "endpoint-test-service-key-77"

// TestTraceContext runs two services with tracing on, exported over OTLP to
// a receiver on loopback: a Gateway request carrying a traceparent (in
// another case than the specification's) is handled in a span under it,
// and the request its handler makes to the other service carries the
// trace on; a service's request outside any trace (a poll) makes no span
// at either end; a Gateway request without one starts a trace; an error's
// contract code is on its span.
func TestTraceContext(t *testing.T) {
	otlp := testkit.OTLP(t, "127.0.0.1:0")
	end, err := telemetry.Setup(context.Background(), config.Telemetry{TracesURL: otlp.URL + "/v1/traces", Sampler: "always_on"}, "natsx-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = end(context.Background()) })
	url := testkit.NATS(t)
	callers := apikey.NewSet().Add(apikey.Gateway, []string{key}).Add(apikey.Refresher, []string{serviceKey})
	var conns []*nats.Conn
	start := func(name string) *natsx.Service {
		nc := testkit.Conn(t, url)
		conns = append(conns, nc)
		svc, err := natsx.NewService(nc, natsx.ServiceConfig{Name: name, Version: "1.0.0", Callers: callers,
			Errors: func(err error) error { return messages.Errorf(messages.CodeNotActive, "mapped") }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = svc.Stop() })
		return svc
	}
	back, front := start("back"), start("front")
	if err := natsx.Endpoint(back, "v1.back.echo", func(_ context.Context, r echoReq) (echoReply, error) {
		if r.Name == "fail" {
			return echoReply{}, errDomain
		}
		return echoReply{Hello: r.Name}, nil
	}, natsx.For(apikey.Gateway, apikey.Refresher)); err != nil {
		t.Fatal(err)
	}
	toBack := &natsx.Client{NC: testkit.Conn(t, url), Prefix: messages.DefaultPrefix, APIKey: serviceKey}
	if err := natsx.Endpoint(front, "v1.front.call", func(ctx context.Context, r echoReq) (echoReply, error) {
		var out echoReply
		err := toBack.Request(ctx, "v1.back.echo", r, &out)
		return out, err
	}, natsx.For(apikey.Gateway)); err != nil {
		t.Fatal(err)
	}

	// The endpoints' subscriptions reach the server before any request.
	for _, nc := range conns {
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	gateway := testkit.Conn(t, url)
	send := func(subject, traceparent, name string) {
		t.Helper()
		msg := nats.NewMsg(messages.Subject(messages.DefaultPrefix, subject))
		msg.Data = []byte(`{"name":"` + name + `"}`)
		msg.Header.Set(messages.HeaderAPIKey, key)
		if traceparent != "" {
			msg.Header["Traceparent"] = []string{traceparent}
		}
		if _, err := gateway.RequestMsgWithContext(t.Context(), msg); err != nil {
			t.Fatal(err)
		}
	}
	const traceID, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	send("v1.front.call", "00-"+traceID+"-"+callerSpan+"-01", "traced")
	var out echoReply
	if err := toBack.Request(context.Background(), "v1.back.echo", echoReq{Name: "poll"}, &out); err != nil || out.Hello != "poll" {
		t.Fatalf("a service's request: %+v %v", out, err)
	}
	send("v1.back.echo", "", "root")
	send("v1.back.echo", "", "fail")
	if err := end(context.Background()); err != nil {
		t.Fatal(err)
	}

	spans := otlp.Spans()
	if len(spans) != 5 {
		t.Fatalf("%d spans, want 3 for the traced call, none for the poll, 1 for each untraced Gateway request: %+v", len(spans), spans)
	}
	byName := map[string][]testkit.Span{}
	for _, s := range spans {
		byName[s.Kind+" "+s.Name] = append(byName[s.Kind+" "+s.Name], s)
	}
	one := func(name string) testkit.Span {
		t.Helper()
		if len(byName[name]) != 1 {
			t.Fatalf("%d spans %s, want 1: %+v", len(byName[name]), name, spans)
		}
		return byName[name][0]
	}
	handled := one("SPAN_KIND_SERVER nexus.v1.front.call")
	call := one("SPAN_KIND_CLIENT nexus.v1.back.echo")
	if handled.TraceID != traceID || handled.ParentSpanID != callerSpan || handled.Attributes["nexus.principal"] != apikey.Gateway || handled.Attributes["nexus.service"] != "front" {
		t.Errorf("front's span = %+v, want a child of the caller's span", handled)
	}
	if call.TraceID != traceID || call.ParentSpanID != handled.SpanID {
		t.Errorf("the request to back = %+v, want a child of front's span", call)
	}
	backs := byName["SPAN_KIND_SERVER nexus.v1.back.echo"]
	if len(backs) != 3 {
		t.Fatalf("%d spans of back's handling, want 3 (the traced call, two untraced Gateway requests)", len(backs))
	}
	var roots, failed int
	for _, s := range backs {
		switch {
		case s.TraceID == traceID:
			if s.ParentSpanID != call.SpanID || s.Attributes["nexus.principal"] != apikey.Refresher {
				t.Errorf("back's span of the traced call = %+v, want a child of the request", s)
			}
		case s.ParentSpanID != "":
			t.Errorf("back's span %+v has a parent nobody sent", s)
		case s.Attributes["nexus.error_code"] == "not_active" && s.StatusCode == "STATUS_CODE_ERROR":
			failed++
		default:
			roots++
		}
	}
	if roots != 1 || failed != 1 {
		t.Errorf("untraced Gateway requests: %d ok roots, %d failed, want 1 and 1", roots, failed)
	}
}
