// Package ratelimit answers whether a request may go ahead under the limits
// of its endpoint: so many requests per fixed window, counted per Gateway key
// and per workspace in a store every replica shares (each service brings its
// own: the handshake Redis, the vault PostgreSQL). A request over a limit is
// refused with the contract's rate_limited and a retry hint in whole seconds.
package ratelimit

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nexus-broker/nexus/shared/config"
)

// Rate is at most Limit requests in each window of length Per. Windows are
// fixed and aligned to the clock (a "60/m" window starts on the minute), so
// every replica agrees on them without talking to the others. The zero Rate
// is no limit.
type Rate struct {
	Limit int
	Per   time.Duration
}

// Bounds of a rate: the window is whole seconds between MinWindow and
// MaxWindow, the limit at most MaxLimit.
const (
	MinWindow = time.Second
	MaxWindow = 24 * time.Hour
	MaxLimit  = 1_000_000_000
)

// On reports whether r limits anything.
func (r Rate) On() bool { return r.Limit > 0 }

// String is r as ParseRate reads it: "60/m", "10/s", "1000/h", "5/30s", or
// "0" for no limit.
func (r Rate) String() string {
	if !r.On() {
		return "0"
	}
	unit := r.Per.String()
	switch r.Per {
	case time.Second:
		unit = "s"
	case time.Minute:
		unit = "m"
	case time.Hour:
		unit = "h"
	default: // time.Duration's form without its zero parts: 5m0s is 5m, 2h0m0s 2h
		if strings.HasSuffix(unit, "m0s") {
			unit = strings.TrimSuffix(unit, "0s")
		}
		if strings.HasSuffix(unit, "h0m") {
			unit = strings.TrimSuffix(unit, "0m")
		}
	}
	return strconv.Itoa(r.Limit) + "/" + unit
}

var errRate = errors.New(`must be requests per window, such as "60/m", "10/s", "1000/h" or "5/30s", or "0" for no limit`)

// ParseRate reads "N/s", "N/m", "N/h", "N/<duration>" (a Go duration of
// whole seconds between 1s and 24h, such as "30s" or "5m"), or "0" for no
// limit.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return Rate{}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, errRate
	}
	limit, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || limit < 0 || limit > MaxLimit {
		return Rate{}, errRate
	}
	var d time.Duration
	switch per = strings.TrimSpace(per); per {
	case "s":
		d = time.Second
	case "m":
		d = time.Minute
	case "h":
		d = time.Hour
	default:
		if d, err = time.ParseDuration(per); err != nil {
			return Rate{}, errRate
		}
	}
	if d < MinWindow || d > MaxWindow || d%time.Second != 0 {
		return Rate{}, fmt.Errorf("the window must be whole seconds between %s and %s", MinWindow, MaxWindow)
	}
	if limit == 0 {
		return Rate{}, nil
	}
	return Rate{Limit: limit, Per: d}, nil
}

// Load reads the rate in variable name (def when unset) and records a
// problem in l when it is not one.
func Load(l *config.Loader, name, def string) Rate {
	r, err := ParseRate(l.String(name, def))
	if err != nil {
		l.Problem(name, "%v", err)
	}
	return r
}

// window is the fixed window of r holding now: [start, end).
func (r Rate) window(now time.Time) (start, end time.Time) {
	start = now.Truncate(r.Per)
	return start, start.Add(r.Per)
}

// retryAfter is the whole seconds from now until end, at least 1: when the
// next window opens.
func retryAfter(now, end time.Time) int {
	d := end.Sub(now)
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}
