package config

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Telemetry is where a service sends its traces, from the standard
// OpenTelemetry variables. Tracing is off unless an OTLP endpoint is named
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or
// OTEL_TRACES_EXPORTER=otlp asks for the default one; OTEL_SDK_DISABLED=true
// or OTEL_TRACES_EXPORTER=none turns it off whatever else is set.
type Telemetry struct {
	// TracesURL is the OTLP/HTTP URL spans are posted to; "" when tracing
	// is off.
	TracesURL string
	// ServiceName is OTEL_SERVICE_NAME; "" leaves the service's own name.
	ServiceName string
	// Sampler is OTEL_TRACES_SAMPLER (parentbased_always_on by default) and
	// SamplerRatio OTEL_TRACES_SAMPLER_ARG, for the traceidratio samplers.
	Sampler      string
	SamplerRatio float64
}

// DefaultTracesURL is the OTLP/HTTP default, used when OTEL_TRACES_EXPORTER
// is otlp and no endpoint is named.
const DefaultTracesURL = "http://localhost:4318/v1/traces"

// Samplers are the OTEL_TRACES_SAMPLER values the SDK knows.
var Samplers = []string{"always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}

// Telemetry reads the OTEL_* variables the broker acts on. The exporter
// reads the rest of OTEL_EXPORTER_OTLP_* (headers, timeout, compression,
// certificates) from the process environment itself.
func (l *Loader) Telemetry() Telemetry {
	disabled := l.String("OTEL_SDK_DISABLED", "false")
	exporter := l.String("OTEL_TRACES_EXPORTER", "")
	endpoint := l.otlpURL("OTEL_EXPORTER_OTLP_ENDPOINT")
	traces := l.otlpURL("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	for _, name := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		if p := l.String(name, "http/protobuf"); p != "http/protobuf" {
			l.Problem(name, "must be http/protobuf: spans are sent with OTLP over HTTP")
		}
	}
	t := Telemetry{
		ServiceName: l.String("OTEL_SERVICE_NAME", ""),
		Sampler:     l.String("OTEL_TRACES_SAMPLER", "parentbased_always_on"),
	}
	if !slices.Contains(Samplers, t.Sampler) {
		l.Problem("OTEL_TRACES_SAMPLER", "must be one of %s", strings.Join(Samplers, ", "))
	}
	t.SamplerRatio = l.samplerRatio(strings.HasSuffix(t.Sampler, "traceidratio"))

	if disabled != "false" && disabled != "true" {
		l.Problem("OTEL_SDK_DISABLED", "must be true or false")
	}
	if exporter != "" && exporter != "otlp" && exporter != "none" {
		l.Problem("OTEL_TRACES_EXPORTER", "must be otlp or none")
	}
	switch {
	case disabled == "true" || exporter == "none":
	case traces != "":
		t.TracesURL = traces
	case endpoint != "":
		// The signal's path is added to the general endpoint, as the
		// specification says; a traces endpoint is used as it is.
		t.TracesURL = strings.TrimSuffix(endpoint, "/") + "/v1/traces"
	case exporter == "otlp":
		t.TracesURL = DefaultTracesURL
	}
	return t
}

// otlpURL reads an optional http or https URL.
func (l *Loader) otlpURL(name string) string {
	v := l.String(name, "")
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		l.Problem(name, "must be an http or https URL")
		return ""
	}
	return v
}

// samplerRatio reads OTEL_TRACES_SAMPLER_ARG, a probability (1 when unset),
// for the samplers that take one.
func (l *Loader) samplerRatio(used bool) float64 {
	v := l.String("OTEL_TRACES_SAMPLER_ARG", "")
	if v == "" || !used {
		return 1
	}
	r, err := strconv.ParseFloat(v, 64)
	if err != nil || r < 0 || r > 1 {
		l.Problem("OTEL_TRACES_SAMPLER_ARG", "must be a number from 0 to 1")
		return 1
	}
	return r
}
