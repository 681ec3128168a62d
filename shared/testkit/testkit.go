// Package testkit gives tests the real infrastructure they run against: an
// embedded NATS server with JetStream, a fresh PostgreSQL database and Redis.
// A test that needs a server that is not running fails loudly, saying how to
// start it; nothing is skipped silently.
package testkit

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsauth"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// DefaultPostgresURL and DefaultRedisURL are the local servers a machine of
// this project runs; TEST_DATABASE_URL and TEST_REDIS_URL override them.
const (
	DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	DefaultRedisURL    = "redis://127.0.0.1:6379/0"
)

// NATS starts an embedded NATS server with JetStream on a random loopback
// port and a temporary store, and returns its URL.
func NATS(t testing.TB) string {
	t.Helper()
	s, err := natsx.StartEmbedded(natsx.EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("embedded NATS: %v", err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL()
}

// Observer is a user only the test servers of NATSWithUsers have: it may
// subscribe to everything (">", every inbox included) and publish nothing,
// so a test can watch all that crosses the bus.
const Observer = "observer"

// NATSWithUsers starts an embedded NATS server like NATS, but with the
// broker's users and permissions (shared/natsauth) and the Observer, each
// with a fresh random password, and returns its URL and the passwords by
// user name.
func NATSWithUsers(t testing.TB) (string, map[string]string) {
	t.Helper()
	passwords := map[string]string{}
	for _, u := range natsauth.Names {
		passwords[u] = "pw-" + u + "-" + RandomHex(t, 8)
	}
	users, err := natsauth.ServerUsers(messages.DefaultPrefix, passwords)
	if err != nil {
		t.Fatal(err)
	}
	passwords[Observer] = "pw-observer-" + RandomHex(t, 8)
	users = append(users, &server.User{Username: Observer, Password: passwords[Observer], Permissions: &server.Permissions{
		Publish:   &server.SubjectPermission{Deny: []string{">"}},
		Subscribe: &server.SubjectPermission{Allow: []string{">"}},
	}})
	s, err := natsx.StartEmbedded(natsx.EmbeddedOptions{StoreDir: t.TempDir(), Users: users})
	if err != nil {
		t.Fatalf("embedded NATS: %v", err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL(), passwords
}

// ConnAs connects to url as a user of NATSWithUsers, with its inbox prefix.
func ConnAs(t testing.TB, url, user, password string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.UserInfo(user, password), nats.CustomInboxPrefix(natsauth.InboxPrefix(user)))
	if err != nil {
		t.Fatalf("connect NATS %s as %s: %v", url, user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Conn connects to url and closes the connection at cleanup.
func Conn(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect NATS %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Postgres creates a fresh database on the test server, returns its URL, and
// drops it at cleanup.
func Postgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		base = DefaultPostgresURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("these tests need PostgreSQL at %s (set TEST_DATABASE_URL, or start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start): %v", base, err)
	}
	defer admin.Close(context.Background())
	name := "nexus_test_" + RandomHex(t, 6)
	if _, err := admin.Exec(ctx, "create database "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "drop database if exists "+name+" with (force)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	cfg, _ := pgx.ParseConfig(base)
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
}

// Redis returns the URL of the test Redis server after checking it answers.
func Redis(t testing.TB) string {
	t.Helper()
	url := os.Getenv("TEST_REDIS_URL")
	if url == "" {
		url = DefaultRedisURL
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("TEST_REDIS_URL: %v", err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("these tests need Redis at %s (set TEST_REDIS_URL, or start it: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no): %v", url, err)
	}
	return url
}

// Key32 returns a fresh random 32-byte key in base64, as ENCRYPTION_KEY and
// STATE_KEY take it.
func Key32(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// RandomHex returns n random bytes as hex.
func RandomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
