// Package redislimit keeps the handshake's rate-limit counts in Redis, where
// every replica sees them: one counter per limit and window, under
// REDIS_KEY_PREFIX, living as long as its window.
package redislimit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nexus-broker/nexus/shared/ratelimit"
)

// skew is how long a counter outlives its window, for replicas whose clocks
// are a little behind.
const skew = 10 * time.Second

// take counts one request in the window KEYS[1] unless it already holds
// ARGV[1]: 1 when counted, 0 when full. A new counter lives ARGV[2]
// milliseconds.
var take = redis.NewScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then
	return 0
end
if n == 0 then
	redis.call('SET', KEYS[1], 1, 'PX', ARGV[2])
else
	redis.call('INCR', KEYS[1])
end
return 1
`)

// giveBack takes back a request counted in KEYS[1], if the counter is still there.
var giveBack = redis.NewScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
	redis.call('DECR', KEYS[1])
end
return n
`)

// Counter is a ratelimit.Counter on Redis.
type Counter struct {
	rdb    redis.UniversalClient
	prefix string
	now    func() time.Time
}

var _ ratelimit.Counter = (*Counter)(nil)

// New returns a counter keeping its counts at prefix + "rate:" + the
// window's key + ":" + its start (Unix seconds). now is the clock the
// counters' lifetimes are measured from.
func New(rdb redis.UniversalClient, prefix string, now func() time.Time) *Counter {
	if now == nil {
		now = time.Now
	}
	return &Counter{rdb: rdb, prefix: prefix + "rate:", now: now}
}

// Key is where the count of w lives.
func (c *Counter) Key(w ratelimit.Window) string {
	return c.prefix + w.Key + ":" + strconv.FormatInt(w.Start.Unix(), 10)
}

// CountRequest counts a request in every window or in none, in one round
// trip when there is room. Each counter is a key of its own, so the windows
// may live on different Redis Cluster shards: a window counted while
// another was full is given back.
func (c *Counter) CountRequest(ctx context.Context, windows []ratelimit.Window) ([]int, error) {
	now := c.now()
	pipe := c.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(windows))
	for i, w := range windows {
		ttl := max(w.End.Sub(now), 0) + skew
		cmds[i] = take.Eval(ctx, pipe, []string{c.Key(w)}, w.Limit, ttl.Milliseconds())
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("redislimit: count: %w", err)
	}
	var full, counted []int
	for i, cmd := range cmds {
		if n, _ := cmd.Int(); n == 1 {
			counted = append(counted, i)
		} else {
			full = append(full, i)
		}
	}
	if len(full) == 0 || len(counted) == 0 {
		return full, nil
	}
	pipe = c.rdb.Pipeline()
	for _, i := range counted {
		giveBack.Eval(ctx, pipe, []string{c.Key(windows[i])})
	}
	// Should this fail, the request is refused all the same, and those
	// windows hold one request too many until they end.
	_, _ = pipe.Exec(ctx)
	return full, nil
}
