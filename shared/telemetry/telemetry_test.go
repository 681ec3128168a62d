package telemetry_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"

	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/telemetry"
	"github.com/nexus-broker/nexus/shared/testkit"
)

// TestSetupOffAndShared: with no endpoint nothing is set up; with one, the
// global provider records until the last of two Setups shuts down, then
// the no-op provider is back, and a second shutdown changes nothing.
func TestSetupOffAndShared(t *testing.T) {
	ctx := context.Background()
	end, err := telemetry.Setup(ctx, config.Telemetry{}, "off")
	if err != nil || telemetry.Enabled() {
		t.Fatalf("Setup with no endpoint: enabled %v, %v", telemetry.Enabled(), err)
	}
	if err := end(ctx); err != nil {
		t.Fatal(err)
	}
	if _, span := telemetry.Start(ctx, "test", "nothing"); span.IsRecording() {
		t.Fatal("a span records with tracing off")
	}

	otlp := testkit.OTLP(t, "127.0.0.1:0")
	on := config.Telemetry{TracesURL: otlp.URL + "/v1/traces", Sampler: "always_on"}
	first, err := telemetry.Setup(ctx, on, "first")
	if err != nil {
		t.Fatal(err)
	}
	second, err := telemetry.Setup(ctx, config.Telemetry{TracesURL: "http://127.0.0.1:1/v1/traces"}, "second")
	if err != nil {
		t.Fatal(err)
	}
	_, span := telemetry.Start(ctx, "test", "shared")
	span.End()
	if err := first(ctx); err != nil || !telemetry.Enabled() {
		t.Fatalf("after the first of two shutdowns: enabled %v, %v", telemetry.Enabled(), err)
	}
	if err := second(ctx); err != nil || telemetry.Enabled() {
		t.Fatalf("after the last shutdown: enabled %v, %v", telemetry.Enabled(), err)
	}
	if err := second(ctx); err != nil {
		t.Fatalf("a second shutdown: %v", err)
	}
	if _, span := otel.Tracer("test").Start(ctx, "after"); span.IsRecording() {
		t.Fatal("the global provider still records after the last shutdown")
	}
	spans := otlp.Spans()
	if len(spans) != 1 || spans[0].Name != "shared" || spans[0].Service != "first" {
		t.Fatalf("exported %+v, want the one span, under the first Setup's name and endpoint", spans)
	}
}
