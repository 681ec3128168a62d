// Package backoff computes when a connection whose refresh failed
// transiently is tried again: exponential in the number of failures in a row,
// with jitter, capped, and never sooner than the provider's Retry-After.
//
// The vault counts the failures (RefreshRunReply.Attempts), so the delay is a
// pure function of that count: any replica computes the same schedule, and
// nothing is lost when a replica restarts. That is why this is not a
// stateful backoff object (cenkalti/backoff) that lives in one process.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Policy is an exponential backoff with "equal jitter": the n-th attempt in a
// row waits between half and all of min(Max, Base*2^(n-1)). Unlike full
// jitter (anywhere in [0, d]) it never retries almost at once, which matters
// for a provider that is rate limiting us; the random half still spreads out
// the connections that failed together.
type Policy struct {
	Base time.Duration
	Max  time.Duration
	// Rand returns a number in [0, 1); nil uses math/rand/v2. Tests fix it.
	Rand func() float64
}

// Ceiling is the delay before jitter for the attempts-th failure in a row
// (1 for the first): min(Max, Base*2^(attempts-1)).
func (p Policy) Ceiling(attempts int) time.Duration {
	if attempts < 1 {
		attempts = 1
	}
	if p.Base <= 0 {
		return 0
	}
	d := p.Base
	for i := 1; i < attempts; i++ {
		if p.Max > 0 && d >= p.Max {
			break
		}
		if d > time.Duration(1<<62)/2 { // no overflow, whatever attempts is
			break
		}
		d *= 2
	}
	if p.Max > 0 && d > p.Max {
		d = p.Max
	}
	return d
}

// Delay is how long to wait after the attempts-th transient failure in a row.
// It is never shorter than retryAfter (the provider's Retry-After), even when
// that is longer than Max: the provider said when it will answer again.
func (p Policy) Delay(attempts int, retryAfter time.Duration) time.Duration {
	c := p.Ceiling(attempts)
	r := p.Rand
	if r == nil {
		r = rand.Float64
	}
	d := c/2 + time.Duration(r()*float64(c-c/2))
	if d < retryAfter {
		d = retryAfter
	}
	return d
}
