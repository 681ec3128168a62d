package soak

import (
	"strings"
	"testing"
	"time"
)

// TestProblemsRefreshersKeepUp: a report whose refreshers fell behind
// (a stored token expired while watched or at the end, a connection never
// renewed once every seeded token expired) has problems; one still within
// its first token lifetime is not blamed for connections not yet renewed.
func TestProblemsRefreshersKeepUp(t *testing.T) {
	healthy := func() Report {
		return Report{Config: Config{TokenTTL: time.Minute}, Elapsed: 2 * time.Minute,
			Lag: Lag{Looks: 3, Margin: 4 * time.Second}}
	}
	if p := func() []string { r := healthy(); return r.Problems() }(); len(p) != 0 {
		t.Fatalf("a healthy report: %v", p)
	}
	for _, tc := range []struct {
		name, want string
		spoil      func(*Report)
	}{
		{"a stored token expired while watched", "expired 1.5s before", func(r *Report) { r.Lag.Margin = -1500 * time.Millisecond }},
		{"stored tokens expired at the end", "2 active connections whose stored access token expired", func(r *Report) { r.Final.Expired = 2 }},
		{"never renewed", "3 active connections never renewed", func(r *Report) { r.Final.NeverRenewed = 3 }},
	} {
		r := healthy()
		tc.spoil(&r)
		if p := strings.Join(r.Problems(), "; "); !strings.Contains(p, tc.want) {
			t.Errorf("%s: problems %q, want %q", tc.name, p, tc.want)
		}
	}
	early := healthy()
	early.Elapsed, early.Final.NeverRenewed = 35*time.Second, 500
	if p := early.Problems(); len(p) != 0 {
		t.Errorf("within the first token lifetime, connections not yet renewed are not a problem: %v", p)
	}
}
