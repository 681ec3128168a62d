// Package redisx connects to Redis: a single server (redis:// or rediss://),
// a Sentinel group or a Cluster, all behind go-redis's UniversalClient.
package redisx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nexus-broker/nexus/shared/config"
)

// Connect opens a client for url and checks the server answers. No error
// shows the URL's password, whole or in part.
//
//	redis://[:password@]host:port/db       one server
//	redis://host1:port,host2:port/?cluster=true
//	redis://host1:port,host2:port/db?master=mymaster   Sentinel
//
// rediss:// is the same over TLS, in every mode.
func Connect(ctx context.Context, rawURL string) (redis.UniversalClient, error) {
	opts, err := parseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	hideInLogs(opts.Password)
	c := redis.NewUniversalClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		c.Close()
		return nil, config.HideSecrets(fmt.Errorf("redis at %s does not answer: %w", strings.Join(opts.Addrs, ","), err), opts.Password)
	}
	return c, nil
}

// CheckURL says what is wrong with a REDIS_URL, without connecting and
// without any part of its password, or returns nil: for a configuration
// loader to report it with the other problems.
func CheckURL(rawURL string) error {
	_, err := parseURL(rawURL)
	return err
}

// parseURL is parse with errors that name the URL, redacted, and hold no
// part of its password.
func parseURL(rawURL string) (*redis.UniversalOptions, error) {
	opts, err := parse(rawURL)
	if err != nil {
		return nil, config.HideSecrets(fmt.Errorf("%s: %w", config.RedactURL(rawURL), err), config.URLSecrets(rawURL)...)
	}
	return opts, nil
}

// parse reads a REDIS_URL. A URL with a password url.Parse would misread
// (an unencoded "/", "#", "?", "%" or space) is refused first, saying what
// to encode: url.Parse's own error quotes the URL, and go-redis's quote the
// piece of the password the misreading leaves in the path.
func parse(rawURL string) (*redis.UniversalOptions, error) {
	if p := config.URLProblem(rawURL); p != "" {
		return nil, errors.New(p)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("is not a URL")
	}
	q := u.Query()
	if !strings.Contains(u.Host, ",") && q.Get("master") == "" && q.Get("cluster") == "" {
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, err
		}
		return &redis.UniversalOptions{Addrs: []string{o.Addr}, DB: o.DB, Username: o.Username, Password: o.Password, TLSConfig: o.TLSConfig, Protocol: o.Protocol}, nil
	}
	opts := &redis.UniversalOptions{Addrs: strings.Split(u.Host, ","), MasterName: q.Get("master"), IsClusterMode: q.Get("cluster") == "true"}
	switch u.Scheme {
	case "rediss":
		// TLS to every node and sentinel, verified against the system's
		// roots; the server name is each address's host.
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	case "redis":
	default:
		return nil, fmt.Errorf("scheme must be redis or rediss, not %q", u.Scheme)
	}
	if u.User != nil {
		opts.Username = u.User.Username()
		opts.Password, _ = u.User.Password()
	}
	if db := strings.Trim(u.Path, "/"); db != "" && !opts.IsClusterMode {
		if _, err := fmt.Sscanf(db, "%d", &opts.DB); err != nil {
			return nil, fmt.Errorf("database %q is not a number", db)
		}
	}
	return opts, nil
}
