// Package telemetry turns OpenTelemetry tracing on from the standard OTEL_*
// variables (config.Telemetry), once per process: every service binary
// through shared/run, the all-in-one launcher through system.Start. Spans are
// made where requests cross a process: the NATS handlers and requests of
// shared/natsx (trace context in the messages' headers, W3C traceparent and
// tracestate) and the provider calls of shared/egress.
//
// Unset, tracing is off: the global provider stays OpenTelemetry's no-op,
// and the instrumented code checks Enabled (an atomic load) before doing
// anything, so the hot path pays nothing more.
package telemetry

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/nexus-broker/nexus/shared/config"
)

// enabled is whether a provider set up here is the global one.
var enabled atomic.Bool

// Enabled reports whether tracing is on in this process. Instrumentation
// checks it first, so that with tracing off it costs one atomic load.
func Enabled() bool { return enabled.Load() }

// Propagator is how trace context travels in headers: W3C traceparent and
// tracestate, nothing else (no baggage: a caller's baggage would travel
// through every service unread).
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// active is the process's tracing, shared by every Setup until the last
// shutdown: the launcher runs four services in one process, and tests may
// start brokers side by side.
var active struct {
	sync.Mutex
	users    int
	provider *sdktrace.TracerProvider
}

// Setup turns tracing on when cfg names an endpoint, for a process called
// service (the resource's service.name unless OTEL_SERVICE_NAME says
// otherwise), and returns what ends it: shutdown flushes the spans not yet
// sent and, once every Setup of the process has shut down, puts the no-op
// provider back; calling it again does nothing. With tracing off it does nothing and shutdown is a no-op.
// While tracing is on, a further Setup shares it (its cfg is not read).
func Setup(ctx context.Context, cfg config.Telemetry, service string) (shutdown func(context.Context) error, err error) {
	if cfg.TracesURL == "" {
		return func(context.Context) error { return nil }, nil
	}
	active.Lock()
	defer active.Unlock()
	if active.users == 0 {
		if active.provider, err = newProvider(ctx, cfg, service); err != nil {
			return nil, err
		}
		otel.SetTracerProvider(active.provider)
		otel.SetTextMapPropagator(Propagator)
		enabled.Store(true)
	}
	active.users++
	var once sync.Once
	return func(ctx context.Context) (err error) {
		once.Do(func() { err = release(ctx) }) // a second call changes nothing
		return err
	}, nil
}

// release ends one Setup's share; the last one stops tracing.
func release(ctx context.Context) error {
	active.Lock()
	defer active.Unlock()
	if active.users--; active.users > 0 {
		return active.provider.ForceFlush(ctx)
	}
	enabled.Store(false)
	otel.SetTracerProvider(noop.NewTracerProvider())
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	p := active.provider
	active.provider = nil
	if err := p.Shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry: send the last spans: %w", err)
	}
	return nil
}

// newProvider exports to cfg.TracesURL in batches. The exporter reads the
// rest of its configuration (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT,
// _COMPRESSION, _CERTIFICATE and their TRACES_ forms) from the environment.
func newProvider(ctx context.Context, cfg config.Telemetry, service string) (*sdktrace.TracerProvider, error) {
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.TracesURL))
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
	}
	name := cfg.ServiceName
	if name == "" {
		name = service
	}
	// From the environment first (OTEL_RESOURCE_ATTRIBUTES), then the name
	// as configured here, which wins.
	res, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName(name)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res), sdktrace.WithSampler(sampler(cfg))), nil
}

// sampler is OTEL_TRACES_SAMPLER's sampler (config checked the name);
// none named is the specification's default, parentbased_always_on.
func sampler(cfg config.Telemetry) sdktrace.Sampler {
	if cfg.Sampler == "" {
		cfg.Sampler = "parentbased_always_on"
	}
	var root sdktrace.Sampler
	switch strings.TrimPrefix(cfg.Sampler, "parentbased_") {
	case "always_off":
		root = sdktrace.NeverSample()
	case "traceidratio":
		root = sdktrace.TraceIDRatioBased(cfg.SamplerRatio)
	default:
		root = sdktrace.AlwaysSample()
	}
	if strings.HasPrefix(cfg.Sampler, "parentbased_") {
		return sdktrace.ParentBased(root)
	}
	return root
}

// Tracer is the tracer of an instrumentation scope (a package path), from
// the global provider: the SDK's while tracing is on.
func Tracer(scope string) trace.Tracer { return otel.Tracer(scope) }

// Start begins a span of scope's, a root or a child of ctx's, for work
// that starts a trace of its own (a background refresh); with tracing off
// it returns ctx and a span that does nothing.
func Start(ctx context.Context, scope, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !Enabled() {
		return ctx, noop.Span{}
	}
	return Tracer(scope).Start(ctx, name, opts...)
}
