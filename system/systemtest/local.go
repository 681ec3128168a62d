package systemtest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/nexus-broker/nexus/shared/natsx"
)

// Local is what a command on this machine (nexus-bench, nexus-soak) runs
// the broker on: an embedded NATS server with JetStream in a temporary
// directory, a temporary database on the PostgreSQL server of pgBase (a
// URL of any database there), Redis at redisURL, fresh keys and one
// Gateway API key. name (lower-case letters, digits and -) prefixes the database's and the
// directory's names.
// close stops and removes all of it.
func Local(ctx context.Context, name, pgBase, redisURL string) (in Infra, close func(), err error) {
	var undo []func()
	close = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	defer func() {
		if err != nil {
			close()
		}
	}()
	dir, err := os.MkdirTemp("", name+"-")
	if err != nil {
		return in, nil, err
	}
	undo = append(undo, func() { os.RemoveAll(dir) })
	ns, err := natsx.StartEmbedded(natsx.EmbeddedOptions{StoreDir: dir})
	if err != nil {
		return in, nil, err
	}
	undo = append(undo, func() { ns.Shutdown(); ns.WaitForShutdown() })
	dbURL, drop, err := tempDatabase(ctx, name, pgBase)
	if err != nil {
		return in, nil, err
	}
	undo = append(undo, drop)
	return Infra{
		NATSURL: ns.ClientURL(), DatabaseURL: dbURL, RedisURL: redisURL,
		EncryptionKey: randomKey(), StateKey: randomKey(), APIKeys: []string{name + "-key-" + randomHex(12)},
	}, close, nil
}

// tempDatabase creates a database named after name on base's server and
// returns its URL and how to drop it.
func tempDatabase(ctx context.Context, name, base string) (string, func(), error) {
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		return "", nil, err
	}
	admin, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", nil, fmt.Errorf("PostgreSQL at %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	// Letters, digits and _ only: no quoting needed, in SQL or the URL.
	db := strings.ReplaceAll(name, "-", "_") + "_" + randomHex(6)
	if _, err := admin.Exec(ctx, "create database "+db); err != nil {
		return "", nil, errors.Join(err, admin.Close(ctx))
	}
	drop := func() {
		_, _ = admin.Exec(context.Background(), "drop database if exists "+db+" with (force)")
		_ = admin.Close(context.Background())
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, db), drop, nil
}

func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
