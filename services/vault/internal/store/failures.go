package store

import (
	"context"
	"time"
)

// A failed refresh is recorded on the connection, under its row lock, by
// the refresh that failed (Locked.RecordFailure): how many failures in a
// row (refresh_attempts, the refresher's backoff reads it), the provider's
// last 4xx refusal and how long it has repeated, and when the provider may
// be called again (retry_not_before). A success (saveTokens) clears them.

// Failure is one failed refresh as the store records it.
type Failure struct {
	// Code is the provider's error code ("" when it sent none).
	Code string
	// Refused: the provider answered, and said no (not a timeout, a 5xx or
	// a 429). While the backoff lasts, callers are told the same.
	Refused bool
	// Counts: a refusal whose repetition says something about the grant
	// (an HTTP 4xx other than 429 of a refresh nobody else is running).
	Counts bool
	// RetryAfter is the provider's Retry-After, when it sent one.
	RetryAfter time.Duration
}

// FailureState is a connection's failures after one more was recorded.
type FailureState struct {
	Attempts int
	// RefusalCount is how many times in a row the provider refused with
	// the same code, since RefusalSince (0 when the last failure was not
	// a refusal).
	RefusalCount   int
	RefusalSince   time.Time
	RetryNotBefore time.Time
}

// Backoff of the calls to the provider after failures of one connection,
// whoever asks (tokens.get, tokens.refresh, the refresher): it doubles from
// retryBase to retryMax, and a provider's Retry-After lengthens it up to
// retryAfterMax.
const (
	retryBase     = time.Second
	retryMax      = 5 * time.Minute
	retryAfterMax = time.Hour
)

// RetryDelay is the wait before calling the provider again after attempts
// failures in a row.
func RetryDelay(attempts int, retryAfter time.Duration) time.Duration {
	d := retryBase
	for i := 1; i < attempts && d < retryMax; i++ {
		d *= 2
	}
	return max(min(d, retryMax), min(retryAfter, retryAfterMax))
}

// RecordFailure counts a failed refresh of the locked connection and says
// when the provider may be called again for it.
func (l *Locked) RecordFailure(ctx context.Context, f Failure) (FailureState, error) {
	now := l.s.clock()
	var (
		st    FailureState
		since *time.Time
	)
	// The refusal run goes on only while the same code keeps coming.
	err := l.tx.QueryRow(ctx, `update vault.connections set refresh_attempts = refresh_attempts + 1,
		refusal_count = case when $2 and refusal_count > 0 and refusal_code = $3 then refusal_count + 1 when $2 then 1 else 0 end,
		refusal_since = case when $2 and refusal_count > 0 and refusal_code = $3 then refusal_since when $2 then $4 end,
		refusal_code = case when $5 then $3 end
		where id = $1 returning refresh_attempts, refusal_count, refusal_since`,
		l.uid, f.Counts, f.Code, now, f.Refused || f.Counts).Scan(&st.Attempts, &st.RefusalCount, &since)
	if err != nil {
		return FailureState{}, err
	}
	if since != nil {
		st.RefusalSince = since.UTC()
	}
	st.RetryNotBefore = now.Add(RetryDelay(st.Attempts, f.RetryAfter)).UTC().Truncate(time.Microsecond)
	if _, err := l.tx.Exec(ctx, `update vault.connections set retry_not_before = $2 where id = $1`, l.uid, st.RetryNotBefore); err != nil {
		return FailureState{}, err
	}
	l.dirty = true
	l.Conn.RefreshAttempts = st.Attempts
	return st, nil
}

// Backoff is a connection's wait after failed refreshes.
type Backoff struct {
	// Until is when the provider may be called again (zero: now).
	Until time.Time
	// Refused: the last failure was the provider saying no, with Code.
	Refused bool
	Code    string
}

// Backoff is the locked connection's wait after its last failed refreshes.
func (l *Locked) Backoff(ctx context.Context) (Backoff, error) {
	var (
		until *time.Time
		code  *string
	)
	if err := l.tx.QueryRow(ctx, `select retry_not_before, refusal_code from vault.connections where id = $1`, l.uid).Scan(&until, &code); err != nil {
		return Backoff{}, err
	}
	var b Backoff
	if until != nil {
		b.Until = until.UTC()
	}
	if code != nil {
		b.Refused, b.Code = true, *code
	}
	return b, nil
}
