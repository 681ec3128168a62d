package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/admin"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/logging"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/testkit"
)

const (
	key        = "cli-test-key-0123456789"
	serviceKey = "cli-test-admin-service-key-0123"
)

// harness is a real admin service (PostgreSQL, NATS) whose vault is a
// minimal responder on the same NATS, and the CLI run in-process against it.
type harness struct {
	env     map[string]string
	secrets chan string // what the vault was handed, in order
}

func startHarness(t *testing.T) *harness {
	t.Helper()
	natsURL := testkit.NATS(t)
	nc := testkit.Conn(t, natsURL)
	vault, err := natsx.NewService(nc, natsx.ServiceConfig{Name: "vault", Version: "0.0.1", Callers: apikey.NewSet().Add(apikey.Admin, []string{serviceKey})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vault.Stop() })
	h := &harness{secrets: make(chan string, 100)}
	_ = natsx.Endpoint(vault, messages.SubjectVaultClientsPut, func(_ context.Context, c messages.VaultClient) (messages.VaultClientReply, error) {
		if c.ClientSecret != "" {
			h.secrets <- c.ClientSecret
		}
		return messages.VaultClientReply{ProviderID: c.ProviderID, ClientSecretSet: c.ClientSecret != ""}, nil
	}, natsx.For(apikey.Admin))
	_ = natsx.Endpoint(vault, messages.SubjectVaultClientsDelete, func(context.Context, messages.VaultClientRef) (messages.VaultClientReply, error) {
		return messages.VaultClientReply{}, nil
	}, natsx.For(apikey.Admin))
	// The vault's audit records: one burst of credential releases.
	release := messages.AuditRecord{ID: "00000000-0000-7000-8000-000000000001", At: time.Now().Add(-time.Minute).UTC(), LastAt: time.Now().UTC(), Count: 400,
		Principal: apikey.Gateway, KeyID: "0123456789abcdef", Action: messages.SubjectTokensGet, Target: "conn-1", WorkspaceID: "ws-1", Outcome: "ok"}
	_ = natsx.Endpoint(vault, messages.SubjectVaultAuditList, func(_ context.Context, r messages.AuditListRequest) (messages.AuditListReply, error) {
		if (r.Principal != "" && r.Principal != release.Principal) || r.Cursor != "" {
			return messages.AuditListReply{Records: []messages.AuditRecord{}}, nil
		}
		return messages.AuditListReply{Records: []messages.AuditRecord{release}}, nil
	}, natsx.For(apikey.Admin))
	_ = natsx.Endpoint(vault, messages.SubjectVaultKeysStatus, func(context.Context, messages.KeysStatusRequest) (messages.KeysStatus, error) {
		return messages.KeysStatus{NewestKeyID: "0a0b0c0d", CanaryKeyID: "01020304",
			Keys: []messages.KeyStatus{{KeyID: "01020304", Rows: map[string]int64{"vault.connections.refresh_token": 7}, Total: 7}}}, nil
	}, natsx.For(apikey.Admin))
	l := config.FromMap(map[string]string{"NATS_URL": natsURL, "ADMIN_API_KEY": key, "DATABASE_URL": testkit.Postgres(t),
		"ADMIN_SERVICE_KEY": serviceKey, "HANDSHAKE_SERVICE_KEY": "test-handshake-service-key-0123"})
	cfg := admin.LoadConfig(l)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	svc, err := admin.Start(context.Background(), cfg, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	h.env = map[string]string{"ADMIN_URL": srv.URL, "ADMIN_API_KEY": key + ",other-key-0123456789", "NATS_URL": natsURL}
	return h
}

// cli runs the CLI with the harness's environment and returns its exit
// code, stdout and stderr.
func (h *harness) cli(stdin string, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := run(ctx, args, func(k string) string { return h.env[k] }, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestCLI runs every provider, audit and keys subcommand against the harness.
func TestCLI(t *testing.T) {
	h := startHarness(t)
	env, cli, secrets := h.env, h.cli, h.secrets

	code, out, stderr := cli(`{"name":"github","aliases":["gh"],"type":"oauth2","authorization_endpoint":"https://github.com/login/oauth/authorize",
		"token_endpoint":"https://github.com/login/oauth/access_token","client_id":"abc","client_secret":"cli-secret-1"}`, "create")
	var p messages.Provider
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || p.Name != "github" || !p.ClientSecretSet {
		t.Fatalf("create from stdin: %d %s %s", code, out, stderr)
	}
	if s := <-secrets; s != "cli-secret-1" {
		t.Errorf("vault got %q", s)
	}

	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("cli-secret-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = cli("", "create", "-name", "gitlab", "-type", "oauth2", "-client-id", "x", "-client-secret-file", secretFile)
	if code != 1 || !strings.Contains(stderr, "invalid_request") || !strings.Contains(stderr, "token_endpoint: is required") {
		t.Errorf("create from flags without endpoints: %d %s %s", code, out, stderr)
	}

	if code, out, _ := cli("", "get", "gh"); code != 0 || !strings.Contains(out, p.ID) {
		t.Errorf("get: %d %s", code, out)
	}
	if code, out, _ := cli("", "list", "-type", "oauth2", "-limit", "10"); code != 0 || !strings.Contains(out, `"github"`) {
		t.Errorf("list: %d %s", code, out)
	}
	if code, out, stderr := cli(`{"name":"github2","client_secret":"cli-secret-3"}`, "update", "gh"); code != 0 || !strings.Contains(out, `"github2"`) || strings.Contains(out, "cli-secret") {
		t.Errorf("update: %d %s %s", code, out, stderr)
	}
	if s := <-secrets; s != "cli-secret-3" {
		t.Errorf("vault got %q", s)
	}
	if code, _, _ := cli("", "delete", "github2"); code != 0 {
		t.Errorf("delete: %d", code)
	}
	if code, _, stderr := cli("", "get", "gh"); code != 1 || !strings.Contains(stderr, "not_found") {
		t.Errorf("get after delete: %d %s", code, stderr)
	}
	// audit: a table by default, JSON with -json, filters as flags.
	code, out, stderr = cli("", "audit")
	if code != 0 {
		t.Fatalf("audit: %d %s %s", code, out, stderr)
	}
	for _, want := range []string{"AT", "PRINCIPAL", "KEY ID", "OUTCOME", "v1.admin.providers.delete", "provider github2",
		"changed name,client_secret", "changed name,aliases,type", "v1.tokens.get", "400", "conn-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("the audit table does not show %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "cli-secret") || strings.Contains(out, key) {
		t.Errorf("the audit table shows a secret or a key:\n%s", out)
	}
	code, out, stderr = cli("", "audit", "-json", "-principal", "operator", "-since", "1h")
	var page messages.AuditListReply
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Records) != 3 {
		t.Fatalf("audit -json: %d %s %s", code, out, stderr)
	}
	for _, r := range page.Records {
		if r.Principal != apikey.Operator || r.Target != p.ID {
			t.Errorf("audit -json -principal operator: %+v", r)
		}
	}
	if code, out, _ := cli("", "audit", "-limit", "1"); code != 0 || !strings.Contains(out, "more: the same command with -cursor ") {
		t.Errorf("audit -limit 1: %d %s", code, out)
	}
	if code, _, stderr := cli("", "audit", "-since", "yesterday"); code != 1 || !strings.Contains(stderr, "-since") {
		t.Errorf("audit -since yesterday: %d %s", code, stderr)
	}
	// keys status: the vault's report, relayed, as JSON over NATS and over
	// HTTP, and as a table.
	for _, transport := range [][]string{nil, {"-http", env["ADMIN_URL"]}} {
		code, out, stderr = cli("", append([]string{"keys", "status", "-o", "json"}, transport...)...)
		var ks messages.KeysStatus
		if code != 0 || json.Unmarshal([]byte(out), &ks) != nil || ks.NewestKeyID != "0a0b0c0d" || ks.Keys[0].Rows["vault.connections.refresh_token"] != 7 {
			t.Errorf("keys status -o json %v: %d %s %s", transport, code, out, stderr)
		}
	}
	if code, out, stderr := cli("", "keys", "status"); code != 0 || !strings.Contains(out, "newest key 0a0b0c0d") ||
		!strings.Contains(out, "vault.connections.refresh_token 7") {
		t.Errorf("keys status: %d %s %s", code, out, stderr)
	}
	if code, _, stderr := cli("", "keys"); code != 1 || !strings.Contains(stderr, "status") {
		t.Errorf("keys without status: %d %s", code, stderr)
	}
	if code, _, _ := cli("", "frobnicate"); code != 1 {
		t.Errorf("unknown command: %d", code)
	}
	env["ADMIN_API_KEY"] = ""
	if code, _, _ := cli("", "list"); code != 2 {
		t.Errorf("no ADMIN_API_KEY: %d", code)
	}
	env["ADMIN_API_KEY"] = "wrong-key-0123456789"
	if code, _, stderr := cli("", "list"); code != 1 || !strings.Contains(stderr, "unauthorized") {
		t.Errorf("wrong ADMIN_API_KEY: %d %s", code, stderr)
	}
}

// TestHelpNeedsNoKey: help is available before anything is configured.
func TestHelpNeedsNoKey(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "help"} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{arg}, func(string) string { return "" }, strings.NewReader(""), &out, &errOut); code != 0 || !strings.Contains(out.String(), "usage: nexus-admin") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", arg, code, out.String(), errOut.String())
		}
	}
}
