package config

import (
	"strings"
	"testing"
)

func TestTelemetry(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      map[string]string
		want     Telemetry
		problems []string // variables named in the error
	}{
		{name: "unset: off", env: nil, want: Telemetry{Sampler: "parentbased_always_on", SamplerRatio: 1}},
		{name: "a service name alone: off", env: map[string]string{"OTEL_SERVICE_NAME": "v"},
			want: Telemetry{ServiceName: "v", Sampler: "parentbased_always_on", SamplerRatio: 1}},
		{name: "endpoint gets the traces path", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"},
			want: Telemetry{TracesURL: "http://collector:4318/v1/traces", Sampler: "parentbased_always_on", SamplerRatio: 1}},
		{name: "traces endpoint as it is, and first", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b/otlp/spans"},
			want: Telemetry{TracesURL: "https://b/otlp/spans", Sampler: "parentbased_always_on", SamplerRatio: 1}},
		{name: "otlp exporter alone: the default endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"},
			want: Telemetry{TracesURL: DefaultTracesURL, Sampler: "parentbased_always_on", SamplerRatio: 1}},
		{name: "exporter none wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318"},
			want: Telemetry{Sampler: "parentbased_always_on", SamplerRatio: 1}},
		{name: "sdk disabled wins", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318"},
			want: Telemetry{Sampler: "parentbased_always_on", SamplerRatio: 1}},
		{name: "ratio sampler", env: map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
			want: Telemetry{Sampler: "parentbased_traceidratio", SamplerRatio: 0.25}},
		{name: "every problem at once", env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
			"OTEL_TRACES_SAMPLER": "sometimes", "OTEL_TRACES_EXPORTER": "jaeger", "OTEL_SDK_DISABLED": "yes",
		}, problems: []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"}},
		{name: "a ratio out of range", env: map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
			problems: []string{"OTEL_TRACES_SAMPLER_ARG"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := FromMap(tc.env)
			got := l.Telemetry()
			err := l.Err()
			if len(tc.problems) == 0 {
				if err != nil || got != tc.want {
					t.Fatalf("Telemetry() = %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Telemetry() = %+v with no problem, want problems naming %v", got, tc.problems)
			}
			for _, p := range tc.problems {
				if !strings.Contains(err.Error(), p+":") {
					t.Errorf("problems do not name %s:\n%v", p, err)
				}
			}
		})
	}
}
