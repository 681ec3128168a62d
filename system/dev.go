package system

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DevDefaults are the values `make run` uses for what the environment does not set.
var DevDefaults = map[string]string{
	"DATABASE_URL":        "postgres://postgres@127.0.0.1:5432/nexus?sslmode=disable",
	"REDIS_URL":           "redis://127.0.0.1:6379/0",
	"PUBLIC_URL":          "http://127.0.0.1:8080",
	"ALLOWED_RETURN_URLS": "http://127.0.0.1:3000,http://localhost:3000",
	"LOG_FORMAT":          "text",
}

// devSecrets are generated on first run when unset, and kept in the data dir.
var devSecrets = []string{"ENCRYPTION_KEY", "STATE_KEY", "API_KEY"}

// DevKeys returns ENCRYPTION_KEY, STATE_KEY and API_KEY for development: the
// ones in path when it exists, else freshly generated ones written there with
// mode 0600. created says whether they were just made (and should be printed
// once, the way `vault server -dev` prints its root token).
func DevKeys(path string) (keys map[string]string, created bool, err error) {
	keys, err = readEnvFile(path)
	if err == nil {
		for _, k := range devSecrets {
			if keys[k] == "" {
				return nil, false, fmt.Errorf("%s: %s is missing; delete the file to generate new development keys", path, k)
			}
		}
		return keys, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	keys = map[string]string{}
	for _, k := range devSecrets {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, false, err
		}
		if k == "API_KEY" {
			keys[k] = "nxk_dev_" + base64.RawURLEncoding.EncodeToString(b)
		} else {
			keys[k] = base64.StdEncoding.EncodeToString(b)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	var sb strings.Builder
	sb.WriteString("# Development keys for `make run`, generated once. Never use these in production.\n")
	for _, k := range devSecrets {
		fmt.Fprintf(&sb, "%s=%s\n", k, keys[k])
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		return nil, false, err
	}
	return keys, true, nil
}

func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out, sc.Err()
}

// EnsureDatabase creates the database DATABASE_URL names when the server
// answers that it does not exist, so `make run` works on a fresh machine.
func EnsureDatabase(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err == nil {
		return conn.Close(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" {
		return fmt.Errorf("PostgreSQL does not answer at DATABASE_URL (%w); start it, or set DATABASE_URL", err)
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return err
	}
	name := cfg.Database
	cfg.Database = "postgres"
	admin, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to create database %s: %w", name, err)
	}
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize())
	return err
}
