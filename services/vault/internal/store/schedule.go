package store

import "time"

// DefaultRefreshLead is how long before expiry the background refresher
// renews a token, unless the token lives so briefly that half its life is
// sooner (REFRESH_LEAD_TIME).
const DefaultRefreshLead = 5 * time.Minute

// RefreshDue is when the background refresher should renew tokens saved at
// now: lead before the access token expires, or at half its remaining life
// when that is shorter (a 2-second token is due after 1 second, never the
// instant it is stored); no later than the same point before the refresh
// token itself expires, so it is used while it still works; and no later
// than t.KeepAlive from now when the provider kills idle refresh tokens.
// Without a refresh token, or without any of these, nothing is due (nil).
func RefreshDue(now time.Time, t Tokens, hasRefresh bool, lead time.Duration) *time.Time {
	if !hasRefresh {
		return nil
	}
	var due *time.Time
	if t.KeepAlive > 0 {
		d := now.Add(t.KeepAlive).UTC().Truncate(time.Microsecond)
		due = &d
	}
	for _, exp := range []*time.Time{t.ExpiresAt, t.RefreshExpires} {
		if exp == nil {
			continue
		}
		d := exp.Add(-min(lead, max(exp.Sub(now), 0)/2)).UTC().Truncate(time.Microsecond)
		if due == nil || d.Before(*due) {
			due = &d
		}
	}
	return due
}
