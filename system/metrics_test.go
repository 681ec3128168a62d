package system_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/system/systemtest"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// scrape reads a service's /metrics as Prometheus does.
func scrape(t *testing.T, b *systemtest.Broker, service string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + b.Sys.Listeners[service].Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s /metrics: %v", service, err)
	}
	return fams
}

// sample sums name's samples whose labels include want: a counter's value,
// a histogram's count.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var sum float64
	f := fams[name]
	if f == nil {
		return 0
	}
metrics:
	for _, m := range f.Metric {
		for k, v := range want {
			if !slices.ContainsFunc(m.Label, func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
				continue metrics
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		}
	}
	return sum
}

// TestMetricsMove sends real traffic and scrapes the vault's and the
// refresher's /metrics: token reads by outcome code, cache hits and misses,
// refreshes at the provider by provider and outcome (ok, then permanent once
// the grant is revoked) with their latency, and the attention_required
// transition the relay publishes. No label anywhere holds a connection or a
// workspace id.
func TestMetricsMove(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)
	prov, err := b.RegisterOIDC(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	q, err := b.Connect(ctx, "acme", "ws-metrics")
	if err != nil || q.Get("status") != "active" {
		t.Fatalf("consent: %v %v", q, err)
	}
	id := q.Get("connection_id")
	get := func(minValid int) error {
		var cred messages.Credential
		return b.Gateway.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: id, WorkspaceID: "ws-metrics", MinValidSeconds: ptr(minValid)}, &cred)
	}
	reads := func(fams map[string]*dto.MetricFamily, code string) float64 {
		return sample(fams, "nexus_nats_request_duration_seconds", map[string]string{"subject": "nexus.v1.tokens.get", "code": code})
	}
	refreshes := map[string]string{"provider_id": prov.ID}
	before := scrape(t, b, "vault")

	// Five reads in a row: the first from the database, the others from
	// the cache (unless a late change notification of the consent emptied
	// it: at least one hit all the same).
	const n = 5
	for range n {
		if err := get(60); err != nil {
			t.Fatalf("tokens.get: %v", err)
		}
	}
	// One that must refresh, and one for a connection that does not exist.
	if err := get(3600); err != nil {
		t.Fatalf("tokens.get with a refresh: %v", err)
	}
	var cred messages.Credential
	if err := b.Gateway.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: "00000000-0000-0000-0000-000000000000", WorkspaceID: "ws-metrics"}, &cred); !errors.Is(err, messages.ErrNotFound) {
		t.Fatalf("tokens.get of no connection: %v", err)
	}
	after := scrape(t, b, "vault")
	delta := func(name string, labels map[string]string) float64 {
		return sample(after, name, labels) - sample(before, name, labels)
	}
	if d := reads(after, "ok") - reads(before, "ok"); d != n+1 {
		t.Errorf("tokens.get ok moved by %v, want %d", d, n+1)
	}
	if d := reads(after, "not_found") - reads(before, "not_found"); d != 1 {
		t.Errorf("tokens.get not_found moved by %v, want 1", d)
	}
	hits, misses := delta("nexus_vault_token_cache_total", map[string]string{"result": "hit"}), delta("nexus_vault_token_cache_total", map[string]string{"result": "miss"})
	// Misses: the first read, the one that refreshed, the unknown connection.
	if hits < 1 || misses < 3 || hits+misses != n+2 {
		t.Errorf("cache hits %v, misses %v: want at least one hit, at least 3 misses, %d in all", hits, misses, n+2)
	}
	if d := delta("nexus_vault_provider_refreshes_total", map[string]string{"provider_id": prov.ID, "outcome": "ok"}); d != 1 {
		t.Errorf("refreshes ok at %s moved by %v, want 1", prov.ID, d)
	}
	if d := delta("nexus_vault_provider_refresh_duration_seconds", refreshes); d != 1 {
		t.Errorf("refresh latency observations at %s moved by %v, want 1", prov.ID, d)
	}

	// The user revokes the app at the provider: a forced refresh meets
	// invalid_grant and the connection needs its user.
	b.Provider.RevokeAllGrants()
	err = b.Gateway.Request(ctx, messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: id, WorkspaceID: "ws-metrics"}, &cred)
	if !errors.Is(err, messages.ErrAttentionRequired) {
		t.Fatalf("tokens.refresh after the revocation: %v, want attention_required", err)
	}
	after = scrape(t, b, "vault")
	if d := delta("nexus_vault_provider_refreshes_total", map[string]string{"provider_id": prov.ID, "outcome": "permanent"}); d != 1 {
		t.Errorf("refreshes permanent at %s moved by %v, want 1", prov.ID, d)
	}
	attention := func() float64 {
		return sample(scrape(t, b, "refresher"), "nexus_refresher_events_published_total", map[string]string{"type": "attention_required"})
	}
	waitFor(t, "the relay to publish the attention_required event", 15*time.Second, func() bool { return attention() == 1 })

	for _, service := range []string{"vault", "refresher", "admin", "handshake-internal"} {
		for name, f := range scrape(t, b, service) {
			for _, m := range f.Metric {
				for _, l := range m.Label {
					if v := l.GetValue(); strings.Contains(v, id) || strings.Contains(v, "ws-metrics") || strings.Contains(l.GetName(), "connection") || strings.Contains(l.GetName(), "workspace") {
						t.Errorf("%s: %s has label %s=%q", service, name, l.GetName(), v)
					}
				}
			}
		}
	}
}
