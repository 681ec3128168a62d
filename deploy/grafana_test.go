package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-broker/nexus/shared/testkit"
	"github.com/nexus-broker/nexus/system/systemtest"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// dashboard is the part of a Grafana dashboard the check reads.
type dashboard struct {
	Title  string  `json:"title"`
	UID    string  `json:"uid"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Datasource *struct {
		Type string `json:"type"`
	} `json:"datasource"`
}

const dashboardFile = "grafana/nexus-broker.json"

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// What a PromQL expression holds besides metric names: string literals,
// label matchers, grouping clauses, ranges, and names followed by "(" (a
// function or an aggregation).
var (
	promStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promRanges   = regexp.MustCompile(`\[[^\]]*\]`)
	promNames    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`)
	promWords    = []string{"bool", "offset", "and", "or", "unless", "inf", "nan", "e"}
)

// metricNames are the metrics a PromQL expression reads.
func metricNames(expr string) []string {
	expr = promStrings.ReplaceAllString(expr, `""`)
	expr = promMatchers.ReplaceAllString(expr, " ")
	expr = promGrouping.ReplaceAllString(expr, " ")
	expr = promRanges.ReplaceAllString(expr, " ")
	var names []string
	for _, m := range promNames.FindAllStringSubmatch(expr, -1) {
		if m[1] != "" || slices.Contains(promWords, strings.ToLower(m[0])) {
			continue
		}
		names = append(names, m[0])
	}
	return names
}

// dashboardProblems checks d against the metric names the services
// register: every query reads at least one metric and only registered
// ones (a histogram's _bucket, _sum and _count series are its own).
func dashboardProblems(d dashboard, registered map[string]bool) []string {
	var problems []string
	known := func(name string) bool {
		for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && registered[base] {
				return true
			}
		}
		return false
	}
	ids := map[int]bool{}
	queries := 0
	for _, p := range d.Panels {
		if ids[p.ID] {
			problems = append(problems, fmt.Sprintf("panel %q: id %d is used twice", p.Title, p.ID))
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 || p.Datasource == nil || p.Datasource.Type != "prometheus" {
			problems = append(problems, fmt.Sprintf("panel %q: no Prometheus query", p.Title))
		}
		for _, tg := range p.Targets {
			queries++
			names := metricNames(tg.Expr)
			if len(names) == 0 {
				problems = append(problems, fmt.Sprintf("panel %q, query %s: reads no metric: %s", p.Title, tg.RefID, tg.Expr))
			}
			for _, n := range names {
				if !known(n) {
					problems = append(problems, fmt.Sprintf("panel %q, query %s: %s is not a metric any service registers", p.Title, tg.RefID, n))
				}
			}
		}
	}
	if queries == 0 {
		problems = append(problems, "the dashboard has no query")
	}
	return problems
}

// registeredMetrics starts the whole broker (real NATS, PostgreSQL, Redis
// and the test provider) and lists what every service's registry describes:
// metric vectors that have seen no traffic yet (a provider's refreshes)
// are described all the same, though /metrics shows them only later.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	natsURL, passwords := testkit.NATSWithUsers(t)
	b, err := systemtest.Start(ctx, systemtest.Infra{
		NATSURL: natsURL, NATSPasswords: passwords,
		DatabaseURL: testkit.Postgres(t), RedisURL: testkit.Redis(t),
		EncryptionKey: testkit.Key32(t), StateKey: testkit.Key32(t),
		APIKeys: []string{"gw-key-dashboard-0a1b2c3d4e"},
	}, oidcprovider.Options{})
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(b.Close)
	names := map[string]bool{}
	fqName := regexp.MustCompile(`^Desc\{fqName: "([^"]+)"`)
	for _, reg := range []*prometheus.Registry{b.Sys.Vault.Metrics(), b.Sys.Admin.Metrics(), b.Sys.Handshake.Metrics(), b.Sys.Refresher.Metrics()} {
		descs := make(chan *prometheus.Desc)
		go func() { reg.Describe(descs); close(descs) }()
		for d := range descs {
			m := fqName.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read a metric's name from %s", d)
			}
			names[m[1]] = true
		}
	}
	return names
}

// TestGrafanaDashboard holds deploy/grafana's dashboard to the metrics the
// services register, so that a renamed or removed metric fails here
// rather than leave a panel empty.
func TestGrafanaDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Fatalf("%s: a dashboard needs a title and a uid", dashboardFile)
	}
	registered := registeredMetrics(t)
	for _, p := range dashboardProblems(d, registered) {
		t.Error(p)
	}
	t.Logf("%d panels checked against the %d metrics the services register", len(d.Panels), len(registered))
}

// TestGrafanaDashboardCheckCatches shows the check failing: a misspelled
// metric, a query that reads none, a reused panel id.
func TestGrafanaDashboardCheckCatches(t *testing.T) {
	registered := map[string]bool{"nexus_vault_token_cache_total": true, "nexus_nats_request_duration_seconds": true}
	d := readDashboard(t)
	d.Panels = []panel{d.Panels[1], d.Panels[1]}
	d.Panels[0].Targets = slices.Clone(d.Panels[0].Targets)
	d.Panels[0].Targets[0].Expr = `sum by (code) (rate(nexus_nats_request_duration_seconds_count{subject="x"}[5m])) / rate(nexus_vault_token_cache_totl[5m])`
	d.Panels[1].Targets = slices.Clone(d.Panels[1].Targets)
	d.Panels[1].Targets[0].Expr = `vector(1)`
	got := dashboardProblems(d, registered)
	want := []string{"id 2 is used twice", "nexus_vault_token_cache_totl is not a metric", "reads no metric"}
	if len(got) != len(want) {
		t.Fatalf("problems = %q, want %d", got, len(want))
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, w) }) {
			t.Errorf("no problem says %q: %q", w, got)
		}
	}
	if n := metricNames(`histogram_quantile(0.99, sum by (le, provider_id) (rate(a_b_bucket{x=~"y|z"}[5m]))) > bool 0.5 or on (job) c`); !slices.Equal(n, []string{"a_b_bucket", "c"}) {
		t.Errorf("metricNames = %q, want [a_b_bucket c]", n)
	}
}
