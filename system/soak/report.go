package soak

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Report is what a soak saw.
type Report struct {
	Config  Config
	Seeding time.Duration // minting and seeding the connections
	Elapsed time.Duration // the load's run
	// Refreshes are the provider's successful refresh grants during the
	// load: the refreshers' and any tokens.get had to make itself.
	Refreshes int
	// Refreshers are each refresher replica's run outcomes
	// (nexus_refresher_refresh_outcomes_total), by outcome.
	Refreshers  []map[string]int
	Lag         Lag
	Tokens      TokenStats
	Redemptions Redemptions
	Final       Final
}

// Redemptions are the refresh tokens the provider saw presented.
type Redemptions struct {
	Tokens int // distinct refresh tokens presented
	Reused int // of them, presented more than once
	// RotatedPresented: grants that presented a token already rotated.
	RotatedPresented int
}

// Final is the table after the load.
type Final struct {
	Active, NotActive int
	// NeverRenewed: active connections still at the seeded token version.
	NeverRenewed int
	// Expired: active connections whose stored access token has expired.
	Expired int
}

const finalSQL = `select count(*) filter (where status = 'active'), count(*) filter (where status <> 'active'),
	count(*) filter (where status = 'active' and token_version <= 1),
	count(*) filter (where status = 'active' and expires_at <= now())
	from vault.connections`

func final(ctx context.Context, pool *pgxpool.Pool) (Final, error) {
	var f Final
	if err := pool.QueryRow(ctx, finalSQL).Scan(&f.Active, &f.NotActive, &f.NeverRenewed, &f.Expired); err != nil {
		return f, fmt.Errorf("soak: final look at the table: %w", err)
	}
	return f, nil
}

// outcomeMetric is the refresher's counter of run outcomes.
const outcomeMetric = "nexus_refresher_refresh_outcomes_total{outcome=\""

// outcomes reads each refresher's run outcomes from its /metrics.
func outcomes(refreshers []http.Handler) ([]map[string]int, error) {
	var out []map[string]int
	for i, h := range refreshers {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if rec.Code != http.StatusOK {
			return nil, fmt.Errorf("soak: refresher %d's /metrics answered %d", i+1, rec.Code)
		}
		m := map[string]int{}
		sc := bufio.NewScanner(rec.Body)
		for sc.Scan() {
			rest, ok := strings.CutPrefix(sc.Text(), outcomeMetric)
			if !ok {
				continue
			}
			name, value, ok := strings.Cut(rest, "\"} ")
			v, err := strconv.ParseFloat(value, 64)
			if !ok || err != nil {
				return nil, fmt.Errorf("soak: refresher %d's metric line %q", i+1, sc.Text())
			}
			m[name] = int(v)
		}
		out = append(out, m)
	}
	return out, nil
}

// RefresherRuns is how many runs the refreshers made, and how many of
// them did not end refreshed or not needed (failures).
func (r *Report) RefresherRuns() (runs, failed int) {
	for _, m := range r.Refreshers {
		for o, n := range m {
			runs += n
			if o != "refreshed" && o != "not_needed" {
				failed += n
			}
		}
	}
	return runs, failed
}

// Problems are the broken promises: empty when the soak passed.
func (r *Report) Problems() []string {
	var p []string
	add := func(n int, what string) {
		if n > 0 {
			p = append(p, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(r.Tokens.Expired, "tokens.get answers with an expired token")
	add(r.Tokens.Refused, "tokens served that the provider refuses, still served a second later with no refresh in flight")
	add(r.Redemptions.Reused, "refresh tokens presented more than once")
	add(r.Redemptions.RotatedPresented, "refresh grants that presented a rotated refresh token")
	add(r.Final.NotActive, "connections no longer active")
	add(r.Tokens.ErrorCount(), "tokens.get error answers")
	// The refreshers keep up by themselves, not only because tokens.get
	// refreshes on demand: no stored token of an active connection expired
	// while watched or at the end, and (once every seeded token has
	// expired) each connection was renewed at least once.
	if r.Lag.Looks > 0 && r.Lag.Margin < 0 {
		p = append(p, fmt.Sprintf("a stored access token expired %.1fs before the refreshers renewed it", -r.Lag.Margin.Seconds()))
	}
	add(r.Final.Expired, "active connections whose stored access token expired, unrenewed")
	if r.Elapsed >= r.Config.TokenTTL {
		add(r.Final.NeverRenewed, "active connections never renewed although their seeded token expired")
	}
	return p
}

// Print writes the report for people.
func (r *Report) Print(w io.Writer) {
	c, t := r.Config, r.Tokens
	secs := r.Elapsed.Seconds()
	fmt.Fprintf(w, "\nnexus-soak: %d connections, access tokens of %s (each renewed every %s: %.1f/s expected), %d refreshers, tokens.get at %d/s asking %s of validity, for %s\n",
		c.Connections, c.TokenTTL, c.RenewEvery(), float64(c.Connections)/c.RenewEvery().Seconds(), c.Refreshers, c.Rate, c.MinValid, r.Elapsed.Round(time.Second))
	fmt.Fprintf(w, "seeding: %s\n", r.Seeding.Round(time.Millisecond))
	fmt.Fprintf(w, "refreshes: %d (%.1f/s) at the provider\n", r.Refreshes, float64(r.Refreshes)/secs)
	for i, m := range r.Refreshers {
		fmt.Fprintf(w, "  refresher %d: %s\n", i+1, formatCounts(m))
	}
	fmt.Fprintf(w, "lag (worst of %d looks): %d due unclaimed, oldest due waited %.1fs, least life left in a stored token %.1fs\n",
		r.Lag.Looks, r.Lag.Backlog, r.Lag.Overdue.Seconds(), r.Lag.Margin.Seconds())
	fmt.Fprintf(w, "tokens.get: %d served (%.1f/s), p50 %s p99 %s; %d expired on arrival, %d still seeded; at the provider %d accepted, %d superseded by a rotation (replaced within %s at most), %d refused, %d unchecked; errors %s, %d ticks dropped\n",
		t.Served, float64(t.Served)/secs, t.P50.Round(10*time.Microsecond), t.P99.Round(10*time.Microsecond), t.Expired, t.Seeded,
		t.Accepted, t.Superseded, t.Replaced.Round(time.Millisecond), t.Refused, t.Unchecked, formatCounts(t.Errors), t.Dropped)
	fmt.Fprintf(w, "refresh tokens: %d presented, %d more than once, %d grants presented a rotated one\n",
		r.Redemptions.Tokens, r.Redemptions.Reused, r.Redemptions.RotatedPresented)
	fmt.Fprintf(w, "after: %d active (%d never renewed, %d with an expired stored token), %d not active\n",
		r.Final.Active, r.Final.NeverRenewed, r.Final.Expired, r.Final.NotActive)
	if p := r.Problems(); len(p) > 0 {
		fmt.Fprintf(w, "FAILED: %s\n", strings.Join(p, "; "))
		return
	}
	fmt.Fprintln(w, "ok: no expired token served, every refresh token presented once")
}

func formatCounts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
