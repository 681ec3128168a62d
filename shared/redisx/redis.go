// Package redisx connects to Redis: a single server (redis:// or rediss://),
// a Sentinel group or a Cluster, all behind go-redis's UniversalClient.
package redisx

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Connect opens a client for url and checks the server answers.
//
//	redis://[:password@]host:port/db       one server
//	redis://host1:port,host2:port/?cluster=true
//	redis://host1:port,host2:port/db?master=mymaster   Sentinel
func Connect(ctx context.Context, rawURL string) (redis.UniversalClient, error) {
	opts, err := parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	c := redis.NewUniversalClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis at %s does not answer: %w", strings.Join(opts.Addrs, ","), err)
	}
	return c, nil
}

func parse(rawURL string) (*redis.UniversalOptions, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("not a URL")
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
