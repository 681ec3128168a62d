package vault_test

import (
	"bytes"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

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
			"REFRESH_LEAD_TIME": "90s", "STATE_KEY": "nope", "REDIS_URL": "nope", "ADMIN_API_KEY": "operators-only-key-0123",
			"HANDSHAKE_SERVICE_KEY": handshakeKey, "ADMIN_SERVICE_KEY": adminKey, "REFRESHER_SERVICE_KEY": refresherKey,
		}[name]
		return v, ok
	})
	cfg := vault.LoadConfig(l)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != ":8082" || len(cfg.EncryptionKey) != 32 || len(cfg.PreviousKeys) != 1 || cfg.DatabaseURL == "" || cfg.RefreshLead != 90*time.Second {
		t.Fatalf("cfg = %+v", cfg)
	}
	for _, name := range read {
		if name == "STATE_KEY" || name == "REDIS_URL" || name == "ADMIN_API_KEY" {
			t.Fatalf("the vault read %s", name)
		}
	}
	for _, name := range []string{"REFRESH_LEAD_TIME", "PROVIDER_PRIVATE_NETWORKS"} {
		if !slices.Contains(read, name) {
			t.Fatalf("the vault did not read %s: %v", name, read)
		}
	}
	if len(cfg.ProviderNetworks) != 0 {
		t.Fatalf("PROVIDER_PRIVATE_NETWORKS is empty by default: %v", cfg.ProviderNetworks)
	}
	// REFRESH_LEAD_TIME defaults to 5 minutes.
	l = config.FromMap(map[string]string{"API_KEY": apiKey, "DATABASE_URL": "postgres://db/x", "ENCRYPTION_KEY": key,
		"HANDSHAKE_SERVICE_KEY": handshakeKey, "ADMIN_SERVICE_KEY": adminKey, "REFRESHER_SERVICE_KEY": refresherKey})
	if cfg := vault.LoadConfig(l); l.Err() != nil || cfg.RefreshLead != 5*time.Minute {
		t.Fatalf("default REFRESH_LEAD_TIME = %v (%v)", cfg.RefreshLead, l.Err())
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("cfg", "cfg", cfg)
	if strings.Contains(buf.String(), "pw@") || strings.Contains(buf.String(), key) {
		t.Fatalf("config logged a secret: %s", buf.String())
	}

	// Every problem at once, naming the variable, never the key.
	l = config.FromMap(map[string]string{"ENCRYPTION_KEY": "c2hvcnQ=", "ENCRYPTION_KEYS_PREVIOUS": "!!!", "REFRESH_LEAD_TIME": "0s",
		"PROVIDER_PRIVATE_NETWORKS": "10.0.0.0/8,10.0.0.0/33"})
	vault.LoadConfig(l)
	err := l.Err()
	if err == nil {
		t.Fatal("no problems reported")
	}
	for _, want := range []string{"API_KEY", "DATABASE_URL", "ENCRYPTION_KEY:", "ENCRYPTION_KEYS_PREVIOUS", "REFRESH_LEAD_TIME",
		"HANDSHAKE_SERVICE_KEY", "ADMIN_SERVICE_KEY", "REFRESHER_SERVICE_KEY", `PROVIDER_PRIVATE_NETWORKS: "10.0.0.0/33" is not a CIDR network`} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%q does not mention %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "c2hvcnQ") {
		t.Fatal("problem shows the key")
	}
}

// TestAuditRetention: AUDIT_RETENTION is 90 days unless set, and at least
// an hour.
func TestAuditRetention(t *testing.T) {
	base := map[string]string{"API_KEY": apiKey, "DATABASE_URL": "postgres://db/x", "ENCRYPTION_KEY": testkit.Key32(t),
		"HANDSHAKE_SERVICE_KEY": handshakeKey, "ADMIN_SERVICE_KEY": adminKey, "REFRESHER_SERVICE_KEY": refresherKey}
	for _, tc := range []struct {
		value   string
		want    time.Duration
		problem bool
	}{
		{"", 90 * 24 * time.Hour, false},
		{"720h", 720 * time.Hour, false},
		{"1h", time.Hour, false},
		{"30m", 0, true},
		{"0s", 0, true},
		{"90d", 0, true},
	} {
		env := maps.Clone(base)
		if tc.value != "" {
			env["AUDIT_RETENTION"] = tc.value
		}
		l := config.FromMap(env)
		cfg := vault.LoadConfig(l)
		err := l.Err()
		switch {
		case tc.problem && (err == nil || !strings.Contains(err.Error(), "AUDIT_RETENTION")):
			t.Errorf("AUDIT_RETENTION=%q: %v, want a problem naming it", tc.value, err)
		case !tc.problem && (err != nil || cfg.AuditRetention != tc.want):
			t.Errorf("AUDIT_RETENTION=%q: %v (%v), want %v", tc.value, cfg.AuditRetention, err, tc.want)
		}
	}
}
