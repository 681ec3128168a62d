package ratelimit

import (
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Rate
		ok   bool
	}{
		{"60/m", Rate{60, time.Minute}, true},
		{"10/s", Rate{10, time.Second}, true},
		{"1000/h", Rate{1000, time.Hour}, true},
		{" 5 / 30s ", Rate{5, 30 * time.Second}, true},
		{"100/5m", Rate{100, 5 * time.Minute}, true},
		{"1/24h", Rate{1, 24 * time.Hour}, true},
		{"0", Rate{}, true},
		{"0/m", Rate{}, true},
		{"", Rate{}, false},
		{"60", Rate{}, false},
		{"60/", Rate{}, false},
		{"/m", Rate{}, false},
		{"-1/m", Rate{}, false},
		{"1.5/m", Rate{}, false},
		{"60/min", Rate{}, false},
		{"60/d", Rate{}, false},
		{"1/500ms", Rate{}, false},
		{"1/1500ms", Rate{}, false},
		{"1/25h", Rate{}, false},
		{"2000000000/s", Rate{}, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRate(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseRate(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestRateStringRoundTrips(t *testing.T) {
	for _, s := range []string{"60/m", "10/s", "1000/h", "5/30s", "100/5m", "3/1h30m", "7/2h", "9/1m30s", "0"} {
		r, err := ParseRate(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if r.String() != s {
			t.Errorf("ParseRate(%q).String() = %q", s, r.String())
		}
	}
}

// Windows are aligned to the clock, whatever the time zone, and the retry
// hint is the whole seconds until the next one opens, never 0.
func TestWindowAndRetryAfter(t *testing.T) {
	r := Rate{Limit: 1, Per: time.Minute}
	now := time.Date(2030, 1, 1, 12, 34, 56, 500_000_000, time.FixedZone("x", 5*3600+1800))
	start, end := r.window(now)
	if start.UTC() != time.Date(2030, 1, 1, 7, 4, 0, 0, time.UTC) || end.Sub(start) != time.Minute {
		t.Fatalf("window = %v .. %v", start.UTC(), end.UTC())
	}
	for _, tc := range []struct {
		now  time.Time
		want int
	}{
		{start, 60},
		{now, 4}, // 3.5s left, rounded up
		{end.Add(-time.Nanosecond), 1},
		{end, 1},
	} {
		if got := retryAfter(tc.now, end); got != tc.want {
			t.Errorf("retryAfter(%v) = %d, want %d", tc.now, got, tc.want)
		}
	}
}
