package vault_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/nexus-broker/nexus/services/vault"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/testkit"
)

func TestLoadConfig(t *testing.T) {
	key, prev := testkit.Key32(t), testkit.Key32(t)
	var read []string
	l := config.FromFunc(func(name string) (string, bool) {
		read = append(read, name)
		v, ok := map[string]string{
			"API_KEY": apiKey, "DATABASE_URL": "postgres://u:pw@db/x", "ENCRYPTION_KEY": key, "ENCRYPTION_KEYS_PREVIOUS": prev,
			"STATE_KEY": "nope", "REDIS_URL": "nope",
		}[name]
		return v, ok
	})
	cfg := vault.LoadConfig(l)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != ":8082" || len(cfg.EncryptionKey) != 32 || len(cfg.PreviousKeys) != 1 || cfg.DatabaseURL == "" {
		t.Fatalf("cfg = %+v", cfg)
	}
	for _, name := range read {
		if name == "STATE_KEY" || name == "REDIS_URL" {
			t.Fatalf("the vault read %s", name)
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("cfg", "cfg", cfg)
	if strings.Contains(buf.String(), "pw@") || strings.Contains(buf.String(), key) {
		t.Fatalf("config logged a secret: %s", buf.String())
	}

	// Every problem at once, naming the variable, never the key.
	l = config.FromMap(map[string]string{"ENCRYPTION_KEY": "c2hvcnQ=", "ENCRYPTION_KEYS_PREVIOUS": "!!!"})
	vault.LoadConfig(l)
	err := l.Err()
	if err == nil {
		t.Fatal("no problems reported")
	}
	for _, want := range []string{"API_KEY", "DATABASE_URL", "ENCRYPTION_KEY:", "ENCRYPTION_KEYS_PREVIOUS"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%q does not mention %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "c2hvcnQ") {
		t.Fatal("problem shows the key")
	}
}
