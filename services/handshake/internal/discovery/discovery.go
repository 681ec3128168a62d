// Package discovery reads and caches OpenID Provider configuration
// documents (OpenID Connect Discovery 1.0) in Redis.
package discovery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults.
const (
	Timeout   = 10 * time.Second
	CacheTTL  = time.Hour
	KeyPrefix = "nexus:hs:disco:"
	maxDoc    = 1 << 20
)

// Document is what the handshake takes from a discovery document.
type Document struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	JWKSURI               string `json:"jwks_uri,omitempty"`
	// IssParameterSupported: the provider sends iss in every authorization
	// response (RFC 9207), so a callback without one is refused.
	IssParameterSupported bool `json:"authorization_response_iss_parameter_supported,omitempty"`
}

// Error says why discovery failed, for the log; callers show a generic message.
type Error struct {
	Issuer string
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("discovery for issuer %s failed: %s", e.Issuer, e.Reason)
}

// Cache fetches discovery documents and keeps them in Redis for an hour.
type Cache struct {
	rdb  redis.UniversalClient
	http *http.Client
	ttl  time.Duration
	log  *slog.Logger
}

// New returns a Cache. hc nil means an HTTP client with a 10 second timeout
// that does not follow redirects.
func New(rdb redis.UniversalClient, hc *http.Client, log *slog.Logger) *Cache {
	if hc == nil {
		hc = &http.Client{
			Timeout:       Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cache{rdb: rdb, http: hc, ttl: CacheTTL, log: log}
}

// Key is the Redis key of issuer's cached document.
func Key(issuer string) string {
	sum := sha256.Sum256([]byte(issuer))
	return KeyPrefix + hex.EncodeToString(sum[:])
}

// Get returns issuer's document, from Redis when cached. Redis trouble only
// costs a fetch; every fetch failure is an *Error.
func (c *Cache) Get(ctx context.Context, issuer string) (Document, error) {
	key := Key(issuer)
	if raw, err := c.rdb.Get(ctx, key).Bytes(); err == nil {
		var d Document
		if json.Unmarshal(raw, &d) == nil && d.Issuer == issuer {
			return d, nil
		}
	} else if !errors.Is(err, redis.Nil) {
		c.log.Warn("discovery cache read failed", "err", err)
	}
	d, err := c.fetch(ctx, issuer)
	if err != nil {
		return Document{}, err
	}
	if raw, err := json.Marshal(d); err == nil {
		if err := c.rdb.Set(ctx, key, raw, c.ttl).Err(); err != nil {
			c.log.Warn("discovery cache write failed", "err", err)
		}
	}
	return d, nil
}

func (c *Cache) fetch(ctx context.Context, issuer string) (Document, error) {
	fail := func(format string, args ...any) (Document, error) {
		return Document{}, &Error{Issuer: issuer, Reason: fmt.Sprintf(format, args...)}
	}
	if err := CheckEndpoint(issuer); err != nil {
		return fail("issuer %v", err)
	}
	u := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fail("bad URL: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fail("fetch: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail("HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDoc+1))
	if err != nil {
		return fail("read: %v", err)
	}
	if len(body) > maxDoc {
		return fail("document larger than 1 MiB")
	}
	var d Document
	if err := json.Unmarshal(body, &d); err != nil {
		return fail("not JSON: %v", err)
	}
	if d.Issuer != issuer {
		return fail("document issuer %q is not the provider's issuer", d.Issuer)
	}
	if d.AuthorizationEndpoint != "" {
		if err := CheckEndpoint(d.AuthorizationEndpoint); err != nil {
			return fail("authorization_endpoint %v", err)
		}
	}
	return d, nil
}
