package natsx

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/telemetry"
)

// scope names natsx's spans.
const scope = "github.com/nexus-broker/nexus/shared/natsx"

// Span attributes. A span says which subject, which service and which
// principal, and the contract code of an error: never a body, a key or a
// header's value.
var (
	attrSystem    = attribute.String("messaging.system", "nats")
	keySubject    = attribute.Key("messaging.destination.name")
	keyOperation  = attribute.Key("messaging.operation.type")
	keyService    = attribute.Key("nexus.service")
	keyPrincipal  = attribute.Key("nexus.principal")
	keyErrorCode  = attribute.Key("nexus.error_code")
	operationSend = keyOperation.String("send")
	operationProc = keyOperation.String("process")
)

// headerCarrier reads and writes trace context in NATS headers (a nats.Header
// or micro.Headers: both are map[string][]string).
type headerCarrier map[string][]string

// Get finds key as written, or in any case (a Gateway may send Traceparent).
func (h headerCarrier) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range h {
		if strings.EqualFold(k, key) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func (h headerCarrier) Set(key, value string) { h[key] = []string{value} }

func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// startHandling starts the span of a request's handling, a child of the
// trace context its headers carry. A request without one starts a trace
// only when it comes from outside (the Gateway, an operator, or a key
// unknown): a service's request outside any trace is a background poll (the
// refresher's claims, the relay's outbox), which would be a trace a second
// of nothing. With tracing off, or no span, it returns ctx and nil.
func (e *endpoint) startHandling(ctx context.Context, headers map[string][]string, principal string) (context.Context, trace.Span) {
	if !telemetry.Enabled() {
		return ctx, nil
	}
	ctx = telemetry.Propagator.Extract(ctx, headerCarrier(headers))
	if !trace.SpanContextFromContext(ctx).IsValid() && principal != apikey.Gateway && principal != apikey.Operator && principal != "" {
		return ctx, nil
	}
	return telemetry.Tracer(scope).Start(ctx, e.subject, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attrSystem, operationProc, keySubject.String(e.subject), keyService.String(e.s.cfg.Name)))
}

// startRequest starts the span of a request to another service and puts its
// context in the request's headers, when ctx is within a trace; with
// tracing off, or outside any trace, it returns ctx and nil (see
// startHandling: a service's polls start no trace).
func startRequest(ctx context.Context, subject string, headers map[string][]string) (context.Context, trace.Span) {
	if !telemetry.Enabled() || !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, nil
	}
	ctx, span := telemetry.Tracer(scope).Start(ctx, subject, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attrSystem, operationSend, keySubject.String(subject)))
	telemetry.Propagator.Inject(ctx, headerCarrier(headers))
	return ctx, span
}

// endSpan ends span (nil with tracing off) with the request's outcome: ""
// for success, else the contract's error code.
func endSpan(span trace.Span, principal string, code string) {
	if span == nil {
		return
	}
	if principal != "" {
		span.SetAttributes(keyPrincipal.String(principal))
	}
	if code != "" {
		span.SetAttributes(keyErrorCode.String(code))
		span.SetStatus(codes.Error, code)
	}
	span.End()
}
