package run

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/nexus-broker/nexus/shared/config"
)

// testLoad reads the way a service's LoadConfig does.
func testLoad(l *config.Loader) Spec {
	c := l.Common(":8090")
	l.Keys(config.GatewayKeys, "the Gateway's keys", true)
	l.Required("EXAMPLE_URL", "an example")
	return Spec{Common: c, Start: func(context.Context, *slog.Logger) (Running, error) {
		panic("Start must not run for -h, -version or -healthcheck")
	}}
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   []string
		noStdout bool
	}{
		{"help", []string{"-h"}, 0, []string{"example: an example service", "-version", "-healthcheck", "API_KEY", "HTTP_ADDR", "EXAMPLE_URL"}, nil, false},
		{"help long", []string{"-help"}, 0, []string{"EXAMPLE_URL"}, nil, false},
		{"version", []string{"-version"}, 0, []string{"example ", runtime.Version(), "\tpath\t"}, nil, false},
		{"unknown flag", []string{"-nope"}, 2, nil, []string{"-nope", "usage: example"}, true},
		{"argument", []string{"serve"}, 2, nil, []string{`unexpected argument "serve"`}, true},
		// Without flags the configuration is checked: every problem at once, and no Start.
		{"no configuration", nil, 2, nil, []string{"API_KEY", "EXAMPLE_URL"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := mainArgs("example", "an example service", testLoad, tc.args, env(nil), &out, &errOut)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, &out, &errOut)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, &out)
				}
			}
			for _, w := range tc.stderr {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, &errOut)
				}
			}
			if tc.noStdout && out.Len() > 0 {
				t.Errorf("stdout: %s", &out)
			}
		})
	}
}

func TestVariables(t *testing.T) {
	got := strings.Join(Variables(testLoad), " ")
	if want := "NATS_URL NEXUS_SUBJECT_PREFIX HTTP_ADDR LOG_LEVEL LOG_FORMAT NATS_CA_FILE NATS_CERT_FILE NATS_KEY_FILE " +
		"OTEL_SDK_DISABLED OTEL_TRACES_EXPORTER OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT OTEL_EXPORTER_OTLP_PROTOCOL OTEL_EXPORTER_OTLP_TRACES_PROTOCOL " +
		"OTEL_SERVICE_NAME OTEL_TRACES_SAMPLER OTEL_TRACES_SAMPLER_ARG API_KEY EXAMPLE_URL"; got != want {
		t.Fatalf("Variables = %s, want %s", got, want)
	}
}

// TestHealthcheck probes a real listener: 200 exits 0, anything else or
// nothing listening exits 1, whatever the rest of the configuration says.
func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()
	for _, tc := range []struct {
		name   string
		addr   string
		status int
		code   int
	}{
		{"ready, no host", ":" + port, http.StatusOK, 0},
		{"ready, 0.0.0.0", "0.0.0.0:" + port, http.StatusOK, 0},
		{"ready, loopback", "127.0.0.1:" + port, http.StatusOK, 0},
		{"not ready", ":" + port, http.StatusServiceUnavailable, 1},
		{"nothing listening", free, http.StatusOK, 1},
		{"bad address", "8080", http.StatusOK, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status = tc.status
			var out, errOut bytes.Buffer
			// API_KEY and EXAMPLE_URL are missing: a probe does not need them.
			code := mainArgs("example", "", testLoad, []string{"-healthcheck"}, env(map[string]string{"HTTP_ADDR": tc.addr}), &out, &errOut)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, &errOut)
			}
			if tc.code != 0 && !strings.Contains(errOut.String(), "healthcheck") {
				t.Errorf("a failed probe should say why: %q", &errOut)
			}
		})
	}
}

func TestLocalURL(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{":8082", "http://127.0.0.1:8082/readyz"},
		{"0.0.0.0:8082", "http://127.0.0.1:8082/readyz"},
		{"[::]:8082", "http://127.0.0.1:8082/readyz"},
		{"127.0.0.1:9080", "http://127.0.0.1:9080/readyz"},
		{"[::1]:9080", "http://[::1]:9080/readyz"},
		{"localhost:8081", "http://localhost:8081/readyz"},
	} {
		got, err := LocalURL(tc.addr, "/readyz")
		if err != nil || got != tc.want {
			t.Errorf("LocalURL(%q) = %q, %v; want %q", tc.addr, got, err, tc.want)
		}
	}
	if _, err := LocalURL("8082", "/readyz"); err == nil {
		t.Error("an address without a port must be refused")
	}
}
