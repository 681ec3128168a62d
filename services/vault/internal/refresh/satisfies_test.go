package refresh

import (
	"testing"
	"time"

	"github.com/nexus-broker/nexus/services/vault/internal/store"
)

func TestSatisfies(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	for _, tc := range []struct {
		name string
		c    store.Connection
		need Need
		want bool
	}{
		{"no expiry", store.Connection{}, Need{MinValid: time.Hour}, true},
		{"valid long enough", store.Connection{ExpiresAt: at(10 * time.Minute)}, Need{MinValid: time.Minute}, true},
		{"expires within min_valid", store.Connection{ExpiresAt: at(30 * time.Second)}, Need{MinValid: time.Minute}, false},
		{"expired", store.Connection{ExpiresAt: at(-time.Second)}, Need{}, false},
		{"asks more than a fresh token gives, just refreshed", store.Connection{ExpiresAt: at(59 * time.Minute), LastRefreshedAt: at(-10 * time.Second)}, Need{MinValid: time.Hour}, true},
		{"asks more than a fresh token gives, refreshed long ago", store.Connection{ExpiresAt: at(20 * time.Minute), LastRefreshedAt: at(-40 * time.Minute)}, Need{MinValid: time.Hour}, false},
		{"just refreshed but already expired", store.Connection{ExpiresAt: at(-time.Second), LastRefreshedAt: at(-10 * time.Second)}, Need{MinValid: time.Minute}, false},
		{"forced, same version", store.Connection{TokenVersion: 3, ExpiresAt: at(time.Hour)}, Need{Force: true, SeenVersion: 3}, false},
		{"forced, another caller refreshed", store.Connection{TokenVersion: 4}, Need{Force: true, SeenVersion: 3}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Satisfies(tc.c, tc.need, now); got != tc.want {
				t.Fatalf("Satisfies = %v, want %v", got, tc.want)
			}
		})
	}
}
