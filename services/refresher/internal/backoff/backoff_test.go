package backoff

import (
	"testing"
	"time"
)

func TestCeiling(t *testing.T) {
	p := Policy{Base: 2 * time.Second, Max: 10 * time.Minute}
	tests := []struct {
		name     string
		attempts int
		want     time.Duration
	}{
		{"zero counts as first", 0, 2 * time.Second},
		{"first", 1, 2 * time.Second},
		{"second doubles", 2, 4 * time.Second},
		{"fifth", 5, 32 * time.Second},
		{"capped", 10, 10 * time.Minute},
		{"huge count does not overflow", 1 << 30, 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Ceiling(tt.attempts); got != tt.want {
				t.Fatalf("Ceiling(%d) = %v, want %v", tt.attempts, got, tt.want)
			}
		})
	}
}

func TestDelay(t *testing.T) {
	tests := []struct {
		name       string
		rand       float64
		attempts   int
		retryAfter time.Duration
		want       time.Duration
	}{
		{"lowest jitter is half the ceiling", 0, 3, 0, 4 * time.Second},
		{"highest jitter approaches the ceiling", 0.999999, 3, 0, 8 * time.Second},
		{"middle", 0.5, 3, 0, 6 * time.Second},
		{"retry-after wins when longer", 0, 1, 30 * time.Second, 30 * time.Second},
		{"retry-after beyond the cap still wins", 0.5, 50, time.Hour, time.Hour},
		{"retry-after shorter than backoff is ignored", 0, 4, time.Second, 8 * time.Second},
		{"capped", 0.999999, 40, 0, 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Policy{Base: 2 * time.Second, Max: 10 * time.Minute, Rand: func() float64 { return tt.rand }}
			got := p.Delay(tt.attempts, tt.retryAfter)
			if diff := got - tt.want; diff < -time.Millisecond || diff > time.Millisecond {
				t.Fatalf("Delay(%d, %v) = %v, want %v", tt.attempts, tt.retryAfter, got, tt.want)
			}
		})
	}
}

func TestDelayStaysWithinBounds(t *testing.T) {
	p := Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second}
	for attempts := 1; attempts < 20; attempts++ {
		c := p.Ceiling(attempts)
		for range 200 {
			if d := p.Delay(attempts, 0); d < c/2 || d > c {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", attempts, d, c/2, c)
			}
		}
	}
}
