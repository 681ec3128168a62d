package api

import (
	"context"
	"encoding/json"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-broker/nexus/messages"
)

// CacheCounts counts tokens.get reads by where they were answered: a hit is
// served inline from the in-process cache, a miss goes on to the database
// (no entry, or its token no longer meets min_valid_seconds). A read
// refused before or by the cache (a bad min_valid_seconds, another
// workspace's connection) is neither.
type CacheCounts struct {
	hits, misses prometheus.Counter
}

// NewCacheCounts registers nexus_vault_token_cache_total{result} on reg.
func NewCacheCounts(reg prometheus.Registerer) (*CacheCounts, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nexus_vault_token_cache_total",
		Help: "tokens.get reads by result: hit (served from the in-process cache) or miss (read from the database).",
	}, []string{"result"})
	if err := reg.Register(vec); err != nil {
		return nil, err
	}
	return &CacheCounts{hits: vec.WithLabelValues("hit"), misses: vec.WithLabelValues("miss")}, nil
}

type fastTokens func(context.Context, messages.TokenRequest, []byte) (json.RawMessage, bool, error)

// count wraps tokens.get's fast path; with no counts it is fast itself.
func (c *CacheCounts) count(fast fastTokens) fastTokens {
	if c == nil {
		return fast
	}
	return func(ctx context.Context, r messages.TokenRequest, buf []byte) (json.RawMessage, bool, error) {
		reply, handled, err := fast(ctx, r, buf)
		switch {
		case !handled:
			c.misses.Inc()
		case err == nil:
			c.hits.Inc()
		}
		return reply, handled, err
	}
}
