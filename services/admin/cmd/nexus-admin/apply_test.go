package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/admin/internal/secretdigest"
)

// writeFile writes a document under dir.
func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const githubDoc = `name: github
aliases: [gh, octo]
type: oauth2
authorization_endpoint: https://github.com/login/oauth/authorize
token_endpoint: https://github.com/login/oauth/access_token
client_id: Ov23liExample
client_secret: {env: GITHUB_SECRET}
scopes: [repo, read:user]
`

// The static provider's schema lists its fields in the order the form
// shows them; apply keeps that order.
const staticDocs = `[
  {"name": "openai", "type": "static",
   "credential_schema": {"type": "object", "required": ["api_key"],
     "properties": {"org": {"type": "string"}, "api_key": {"type": "string", "writeOnly": true}}},
   "strategy": {"type": "header", "config": {"header": "Authorization", "prefix": "Bearer "}}},
  {"template": "zendesk", "params": {"subdomain": "acme"}, "client_id": "nexus", "client_secret": {"file": "SECRET_FILE"}}
]`

// TestApply: apply plans and makes the changes, over NATS and over HTTP,
// and a second run of the same documents changes nothing and says so.
func TestApply(t *testing.T) {
	h := startHarness(t)
	dir := t.TempDir()
	secretFile := writeFile(t, t.TempDir(), "zendesk-secret", "zendesk-secret-0123456789\n")
	writeFile(t, dir, "github.yaml", githubDoc)
	writeFile(t, dir, "static.json", strings.Replace(staticDocs, "SECRET_FILE", secretFile, 1))
	writeFile(t, dir, "README.txt", "not a document")
	h.env["GITHUB_SECRET"] = "github-secret-0123456789"

	code, out, stderr := h.cli("", "apply", "-f", dir, "-dry-run")
	if code != exitChanged || !strings.Contains(out, "create    github") || !strings.Contains(out, "create    openai") ||
		!strings.Contains(out, "create    zendesk") || !strings.Contains(out, "plan: 3 to create, 0 to update, 0 to delete, 0 unchanged") {
		t.Fatalf("apply -dry-run: %d\n%s%s", code, out, stderr)
	}
	if code, out, _ := h.cli("", "list"); code != 0 || strings.Contains(out, `"github"`) {
		t.Fatalf("apply -dry-run changed something: %s", out)
	}

	code, out, stderr = h.cli("", "apply", "-f", dir)
	if code != exitChanged || !strings.Contains(out, "applied: 3 created, 0 updated, 0 deleted") {
		t.Fatalf("apply: %d\n%s%s", code, out, stderr)
	}
	got := map[string]bool{<-h.secrets: true, <-h.secrets: true}
	if !got["github-secret-0123456789"] || !got["zendesk-secret-0123456789"] {
		t.Errorf("the vault got %v, want each document's secret from its source", got)
	}
	assertNoSecret(t, out+stderr)
	var zendesk messages.Provider
	if code, out, _ := h.cli("", "get", "zendesk"); code != 0 || json.Unmarshal([]byte(out), &zendesk) != nil ||
		zendesk.TokenEndpoint != "https://acme.zendesk.com/oauth/tokens" || !zendesk.ClientSecretSet ||
		!secretdigest.Matches(zendesk.ClientSecretDigest, "zendesk-secret-0123456789") {
		t.Errorf("zendesk from its template: %s", out)
	}
	if code, out, _ := h.cli("", "get", "openai"); code != 0 || !strings.Contains(out, `"properties": {
      "org"`) {
		t.Errorf("openai: the schema lost its order: %s", out)
	}

	// The same documents again, over NATS then HTTP: unchanged, exit 0,
	// nothing sent to the vault.
	for _, transport := range [][]string{nil, {"-http", h.env["ADMIN_URL"]}} {
		code, out, stderr = h.cli("", append([]string{"apply", "-f", dir}, transport...)...)
		if code != exitUnchanged || strings.Count(out, "unchanged ") != 3 || !strings.Contains(out, "plan: 0 to create, 0 to update, 0 to delete, 3 unchanged") {
			t.Errorf("apply again %v: %d\n%s%s", transport, code, out, stderr)
		}
	}
	select {
	case s := <-h.secrets:
		t.Errorf("an unchanged apply sent a secret to the vault (%d bytes)", len(s))
	default:
	}

	// A changed field and a rotated secret: an update naming both (the
	// secret by its source only); aliases in another order are no change.
	writeFile(t, dir, "github.yaml", strings.Replace(strings.Replace(githubDoc, "[repo, read:user]", "[repo]", 1), "[gh, octo]", "[octo, gh]", 1))
	h.env["GITHUB_SECRET"] = "github-secret-rotated-0123"
	code, out, stderr = h.cli("", "apply", "-f", dir, "-http", h.env["ADMIN_URL"])
	if code != exitChanged || !strings.Contains(out, "update    github (scopes, client_secret from env GITHUB_SECRET)") ||
		!strings.Contains(out, "plan: 0 to create, 1 to update, 0 to delete, 2 unchanged") {
		t.Fatalf("apply a change: %d\n%s%s", code, out, stderr)
	}
	if s := <-h.secrets; s != "github-secret-rotated-0123" {
		t.Errorf("the vault got %q", s)
	}
	assertNoSecret(t, out+stderr)
	if code, out, _ := h.cli("", "apply", "-f", dir); code != exitUnchanged {
		t.Errorf("apply after the change: %d\n%s", code, out)
	}
}

// TestApplyPrune: without -prune a provider no document names stays; with
// it, it goes.
func TestApplyPrune(t *testing.T) {
	h := startHarness(t)
	dir := t.TempDir()
	h.env["GITHUB_SECRET"] = "github-secret-0123456789"
	path := writeFile(t, dir, "github.yaml", githubDoc)
	if code, _, stderr := h.cli(`{"name":"old","type":"oauth2","authorization_endpoint":"https://old.example.com/authorize",
		"token_endpoint":"https://old.example.com/token","client_id":"x","client_secret":"old-secret-0123456789"}`, "create"); code != 0 {
		t.Fatalf("create old: %s", stderr)
	}
	code, out, stderr := h.cli("", "apply", "-f", path)
	if code != exitChanged || strings.Contains(out, "delete    old") {
		t.Fatalf("apply without -prune: %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = h.cli("", "apply", "-f", path, "-prune", "-dry-run")
	if code != exitChanged || !strings.Contains(out, "delete    old") || !strings.Contains(out, "unchanged github") {
		t.Fatalf("apply -prune -dry-run: %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = h.cli("", "apply", "-f", path, "-prune")
	if code != exitChanged || !strings.Contains(out, "applied: 0 created, 0 updated, 1 deleted") {
		t.Fatalf("apply -prune: %d\n%s%s", code, out, stderr)
	}
	if code, _, stderr := h.cli("", "get", "old"); code != 1 || !strings.Contains(stderr, "not_found") {
		t.Errorf("old after -prune: %d %s", code, stderr)
	}
	if code, out, _ := h.cli("", "apply", "-f", path, "-prune"); code != exitUnchanged {
		t.Errorf("apply -prune again: %d\n%s", code, out)
	}
}

// TestApplyRefuses: what apply refuses before it changes anything, with an
// error naming the document and the field, and never quoting a secret.
func TestApplyRefuses(t *testing.T) {
	h := startHarness(t)
	inline := "inline-secret-0123456789"
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"inline secret", strings.Replace(githubDoc, "{env: GITHUB_SECRET}", inline, 1),
			`document 1 (provider "github"): client_secret: an inline secret is refused`},
		{"inline secret in JSON", `{"name": "x", "type": "oauth2", "client_secret": "` + inline + `"}`,
			`document 1 (provider "x"): client_secret: an inline secret is refused`},
		{"a secret source it does not know", strings.Replace(githubDoc, "{env: GITHUB_SECRET}", "{vault: x}", 1), "an inline secret is refused"},
		{"an unset variable", strings.Replace(githubDoc, "GITHUB_SECRET", "NO_SUCH_VARIABLE", 1), "client_secret: env NO_SUCH_VARIABLE is empty"},
		{"a missing file", strings.Replace(githubDoc, "{env: GITHUB_SECRET}", "{file: /nonexistent/secret}", 1), "client_secret: open /nonexistent/secret"},
		{"no name", "type: static\n", "document 1: a provider needs a name"},
		{"a field of the broker's", githubDoc + "client_secret_set: true\n", "client_secret_set is set by the broker"},
		{"one provider twice", githubDoc + "---\n" + githubDoc, `document 2 (provider "github"): provider "github" is also described at`},
		{"a list of strings", "- github\n", "item 1: must be a provider"},
		{"refused by admin", "name: bad\ntype: oauth2\nclient_id: x\n", `document 1 (provider "bad"): create: invalid_request: invalid provider`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.env["GITHUB_SECRET"] = "github-secret-0123456789"
			path := writeFile(t, t.TempDir(), "doc.yaml", tc.doc)
			code, out, stderr := h.cli("", "apply", "-f", path)
			if code != 1 || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, path) {
				t.Errorf("exit %d, stderr %q; want 1 and %q naming %s\n%s", code, stderr, tc.want, path, out)
			}
			if strings.Contains(out+stderr, inline) {
				t.Errorf("the inline secret is quoted:\n%s%s", out, stderr)
			}
		})
	}
	if code, out, _ := h.cli("", "list"); code != 0 || strings.Contains(out, `"github"`) {
		t.Errorf("a refused apply changed something: %s", out)
	}
	if code, _, stderr := h.cli("", "apply"); code != 1 || !strings.Contains(stderr, "-f") {
		t.Errorf("apply without -f: %d %s", code, stderr)
	}
}

func assertNoSecret(t *testing.T, out string) {
	t.Helper()
	for _, s := range []string{"github-secret", "zendesk-secret"} {
		if strings.Contains(out, s) {
			t.Errorf("apply printed a secret:\n%s", out)
		}
	}
}
