package refresher

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/config"
)

func TestLoadConfig(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		l := config.FromMap(map[string]string{"REFRESHER_SERVICE_KEY": apiKey})
		c := LoadConfig(l)
		if err := l.Err(); err != nil {
			t.Fatal(err)
		}
		want := Config{Concurrency: 16, Batch: 100, PollInterval: time.Second, Lease: DefaultLease, BackoffBase: 2 * time.Second,
			BackoffMax: 10 * time.Minute, EventsMaxAge: 720 * time.Hour, EventsReplicas: 1, EventsDuplicateWindow: 15 * time.Minute}
		c.Common = config.Common{}
		if c.Concurrency != want.Concurrency || c.Batch != want.Batch || c.PollInterval != want.PollInterval || c.Lease != want.Lease ||
			c.BackoffBase != want.BackoffBase || c.BackoffMax != want.BackoffMax || c.EventsMaxAge != want.EventsMaxAge ||
			c.EventsReplicas != want.EventsReplicas || c.EventsDuplicateWindow != want.EventsDuplicateWindow {
			t.Fatalf("config = %+v", c)
		}
		if got := LoadConfig(config.FromMap(map[string]string{"REFRESHER_SERVICE_KEY": apiKey})).HTTPAddr; got != ":8083" {
			t.Fatalf("HTTP_ADDR default = %q", got)
		}
	})
	t.Run("every problem at once", func(t *testing.T) {
		l := config.FromMap(map[string]string{
			"REFRESH_CONCURRENCY": "0", "REFRESH_BATCH": "x", "REFRESH_POLL_INTERVAL": "0s", "REFRESH_LEASE": "500ms",
			"REFRESH_BACKOFF_BASE": "1m", "REFRESH_BACKOFF_MAX": "10s", "EVENTS_REPLICAS": "7", "EVENTS_DUPLICATE_WINDOW": "10s",
		})
		LoadConfig(l)
		err := l.Err()
		if err == nil {
			t.Fatal("no error")
		}
		for _, name := range []string{"REFRESHER_SERVICE_KEY", "REFRESH_CONCURRENCY", "REFRESH_BATCH", "REFRESH_POLL_INTERVAL", "REFRESH_LEASE",
			"REFRESH_BACKOFF_MAX", "EVENTS_REPLICAS", "EVENTS_DUPLICATE_WINDOW"} {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("error does not name %s: %v", name, err)
			}
		}
	})
	t.Run("beyond what the vault accepts", func(t *testing.T) {
		l := config.FromMap(map[string]string{"REFRESHER_SERVICE_KEY": apiKey, "REFRESH_BATCH": "5000", "REFRESH_LEASE": "2h"})
		LoadConfig(l)
		err := l.Err()
		for _, name := range []string{"REFRESH_BATCH", "REFRESH_LEASE"} {
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("err = %v, want it to name %s", err, name)
			}
		}
	})
	t.Run("duplicate window longer than max age", func(t *testing.T) {
		l := config.FromMap(map[string]string{"REFRESHER_SERVICE_KEY": apiKey, "EVENTS_MAX_AGE": "10m", "EVENTS_DUPLICATE_WINDOW": "15m"})
		LoadConfig(l)
		if err := l.Err(); err == nil || !strings.Contains(err.Error(), "EVENTS_DUPLICATE_WINDOW") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("reads only its own variables", func(t *testing.T) {
		var read []string
		l := config.FromFunc(func(k string) (string, bool) {
			read = append(read, k)
			if k == "REFRESHER_SERVICE_KEY" {
				return apiKey, true
			}
			return "", false
		})
		LoadConfig(l)
		for _, k := range read {
			if k == "ENCRYPTION_KEY" || k == "DATABASE_URL" || k == "STATE_KEY" || k == "REDIS_URL" || k == "API_KEY" || k == "ADMIN_API_KEY" {
				t.Fatalf("the refresher read %s", k)
			}
		}
	})
}

func TestStreamIsCreatedWithTheConfiguredRetention(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noVault: true})
	s := e.startRefresher(e.testConfig(map[string]string{"EVENTS_MAX_AGE": "48h", "EVENTS_DUPLICATE_WINDOW": "20m"}))
	ctx := context.Background()
	st, err := e.js.Stream(ctx, messages.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := info.Config
	if !slices.Equal(c.Subjects, []string{"nexus.events.connection.>", "nexus.events.provider.>"}) || c.Storage != jetstream.FileStorage ||
		c.Retention != jetstream.LimitsPolicy || c.MaxAge != 48*time.Hour || c.Duplicates != 20*time.Minute || c.Replicas != 1 {
		t.Fatalf("stream config = %+v", c)
	}

	// Another replica with another retention updates the stream.
	s.Close(ctx)
	e.startRefresher(e.testConfig(map[string]string{"EVENTS_MAX_AGE": "72h", "EVENTS_DUPLICATE_WINDOW": "30m"}))
	if info, err = st.Info(ctx); err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != 72*time.Hour || info.Config.Duplicates != 30*time.Minute {
		t.Fatalf("stream config after update = %+v", info.Config)
	}
}

func TestHandlerServesHealthReadinessAndMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noVault: true})
	s := e.startRefresher(e.testConfig(nil))
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for path, want := range map[string]string{
		"/healthz": `"ok"`,
		"/readyz":  `"ok"`,
		"/metrics": "nexus_refresher_refresh_outcomes_total",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"nexus_refresher_refresh_run_duration_seconds", "nexus_refresher_backoff_delay_seconds",
		"nexus_refresher_events_published_total", "nexus_refresher_relay_errors_total", "nexus_refresher_vault_errors_total"} {
		if !strings.Contains(string(body), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}
