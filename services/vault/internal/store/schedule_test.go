package store

import (
	"testing"
	"time"
)

func TestRefreshDue(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	const lead = 5 * time.Minute
	tests := []struct {
		name       string
		tokens     Tokens
		hasRefresh bool
		lead       time.Duration
		want       *time.Time
	}{
		{name: "long-lived: lead before expiry", tokens: Tokens{ExpiresAt: at(time.Hour)}, hasRefresh: true, lead: lead, want: at(55 * time.Minute)},
		{name: "short-lived 2s: at half its life", tokens: Tokens{ExpiresAt: at(2 * time.Second)}, hasRefresh: true, lead: lead, want: at(time.Second)},
		{name: "exactly twice the lead", tokens: Tokens{ExpiresAt: at(10 * time.Minute)}, hasRefresh: true, lead: lead, want: at(5 * time.Minute)},
		{name: "longer lead", tokens: Tokens{ExpiresAt: at(time.Hour)}, hasRefresh: true, lead: 20 * time.Minute, want: at(40 * time.Minute)},
		{name: "refresh token dies first", tokens: Tokens{ExpiresAt: at(time.Hour), RefreshExpires: at(30 * time.Minute)}, hasRefresh: true, lead: lead, want: at(25 * time.Minute)},
		{name: "short-lived refresh token", tokens: Tokens{ExpiresAt: at(time.Hour), RefreshExpires: at(4 * time.Minute)}, hasRefresh: true, lead: lead, want: at(2 * time.Minute)},
		{name: "refresh token outlives the access token", tokens: Tokens{ExpiresAt: at(time.Hour), RefreshExpires: at(24 * time.Hour)}, hasRefresh: true, lead: lead, want: at(55 * time.Minute)},
		{name: "refresh expiry only", tokens: Tokens{RefreshExpires: at(time.Hour)}, hasRefresh: true, lead: lead, want: at(55 * time.Minute)},
		{name: "already expired: due now", tokens: Tokens{ExpiresAt: at(-time.Minute)}, hasRefresh: true, lead: lead, want: at(-time.Minute)},
		{name: "no refresh token: never", tokens: Tokens{ExpiresAt: at(time.Hour)}, hasRefresh: false, lead: lead, want: nil},
		{name: "no expiry: never", tokens: Tokens{}, hasRefresh: true, lead: lead, want: nil},
		{name: "keep-alive without expiry", tokens: Tokens{KeepAlive: 24 * time.Hour}, hasRefresh: true, lead: lead, want: at(24 * time.Hour)},
		{name: "keep-alive before expiry", tokens: Tokens{ExpiresAt: at(90 * 24 * time.Hour), KeepAlive: 7 * 24 * time.Hour}, hasRefresh: true, lead: lead, want: at(7 * 24 * time.Hour)},
		{name: "expiry before keep-alive", tokens: Tokens{ExpiresAt: at(time.Hour), KeepAlive: 7 * 24 * time.Hour}, hasRefresh: true, lead: lead, want: at(55 * time.Minute)},
		{name: "keep-alive without a refresh token: never", tokens: Tokens{KeepAlive: time.Hour}, hasRefresh: false, lead: lead, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RefreshDue(now, tt.tokens, tt.hasRefresh, tt.lead)
			switch {
			case tt.want == nil && got != nil:
				t.Fatalf("due = %v, want never", got)
			case tt.want != nil && (got == nil || !got.Equal(*tt.want)):
				t.Fatalf("due = %v, want %v", got, tt.want)
			case got != nil && tt.tokens.ExpiresAt != nil && tt.tokens.ExpiresAt.After(now) && !got.After(now):
				t.Fatalf("due %v is not after now: a fresh token would be refreshed at once", got)
			}
		})
	}
}
