package system_test

import (
	"bufio"

	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsauth"
	"github.com/nexus-broker/nexus/system/systemtest"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// TestOperatorCLI runs the nexus-admin binary against the whole broker, as
// an operator does: NATS user operator with its password, ADMIN_API_KEY.
// apply adopts a provider registered before (its secret recognised by its
// digest) and creates another; connections are listed, read and revoked
// over NATS and HTTP; events tail reads the connection's real lifecycle
// events through the ephemeral consumer and the durable one, and is
// refused the Gateway's.
func TestOperatorCLI(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)
	if _, err := b.RegisterOIDC(ctx, "acme"); err != nil {
		t.Fatalf("register acme: %v", err)
	}
	bin := binary(t, "./services/admin/cmd/nexus-admin")
	env := []string{"NATS_URL=" + b.Infra.NATSURL, "NATS_OPERATOR_PASSWORD=" + b.Infra.NATSPasswords[natsauth.Operator],
		"ADMIN_API_KEY=" + b.OperatorKey, "ADMIN_URL=" + b.AdminURL, "ACME_SECRET=" + systemtest.ClientSecret}
	cli := func(args ...string) (int, string) {
		t.Helper()
		code, out, stderr := runBinary(t, bin, env, args...)
		if strings.Contains(out+stderr, systemtest.ClientSecret) {
			t.Fatalf("nexus-admin %v printed the client secret:\n%s%s", args, out, stderr)
		}
		return code, out + stderr
	}

	dir := t.TempDir()
	writeDoc := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeDoc("acme.yaml", "name: acme\ntype: oidc\nissuer: "+b.Provider.Issuer()+"\nclient_id: "+systemtest.ClientID+
		"\nclient_secret: {env: ACME_SECRET}\nscopes: [openid, offline_access, profile]\n")
	writeDoc("example.yaml", `name: example
type: static
credential_schema: {type: object, required: [api_key], properties: {api_key: {type: string, writeOnly: true}}}
strategy: {type: header, config: {header: X-Api-Key}}
`)
	if code, out := cli("apply", "-f", dir); code != 2 || !strings.Contains(out, "unchanged acme") || !strings.Contains(out, "create    example") {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	if code, out := cli("apply", "-f", dir, "-http", b.AdminURL); code != 0 || strings.Count(out, "unchanged ") != 2 {
		t.Fatalf("apply again: exit %d\n%s", code, out)
	}

	q, err := b.Connect(ctx, "acme", "ws-1")
	if err != nil {
		t.Fatalf("consent: %v", err)
	}
	id := q.Get("connection_id")

	// The connection, over NATS and over HTTP, as JSON and as a table.
	code, out := cli("connections", "list", "-o", "json")
	var page messages.ListConnectionsReply
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Connections) != 1 ||
		page.Connections[0].ConnectionID != id || page.Connections[0].Status != messages.StatusActive {
		t.Fatalf("connections list -o json: exit %d\n%s", code, out)
	}
	if code, out := cli("connections", "list", "-workspace", "ws-1", "-status", "active", "-http", b.AdminURL); code != 0 ||
		!strings.Contains(out, "CONNECTION") || !strings.Contains(out, id) {
		t.Errorf("connections list (table, HTTP): exit %d\n%s", code, out)
	}
	if code, out := cli("connections", "list", "-workspace", "ws-2", "-o", "json"); code != 0 || strings.Contains(out, id) {
		t.Errorf("connections list -workspace ws-2: exit %d\n%s", code, out)
	}
	var conn messages.Connection
	if code, out := cli("connections", "get", id, "-http", b.AdminURL, "-o", "json"); code != 0 ||
		json.Unmarshal([]byte(out), &conn) != nil || conn.ConnectionID != id || conn.Provider != "acme" {
		t.Errorf("connections get -http -o json: exit %d\n%s", code, out)
	}
	if code, out := cli("connections", "get", id, "-workspace", "ws-2"); code != 1 || !strings.Contains(out, "not_found") {
		t.Errorf("connections get of another workspace: exit %d\n%s", code, out)
	}

	// Events so far, from the oldest, through the ephemeral consumer.
	events := tailEvents(t, cli, "events", "tail", "-all", "-count", "2", "-o", "json")
	if !hasEvent(events, messages.EventActive, id) {
		t.Errorf("events tail -all: no active event for %s: %+v", id, events)
	}

	// From now: a tail waiting while the connection is revoked sees it.
	tail := exec.Command(bin, "events", "tail", "-count", "1", "-o", "json")
	tail.Env = env
	stdout, err := tail.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tail.Process.Kill() })
	js, err := jetstream.New(b.Operator.NC)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the tail's consumer", 20*time.Second, func() bool {
		_, err := js.Consumer(ctx, messages.StreamEvents, natsauth.OperatorTail)
		return err == nil
	})
	if code, out := cli("connections", "revoke", id); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("connections revoke: exit %d\n%s", code, out)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("the waiting tail: %v", err)
	}
	if err := tail.Wait(); err != nil {
		t.Errorf("the waiting tail: %v", err)
	}
	if e := decodeEvent(t, line); e.Type != messages.EventRevoked.FullType() || e.ConnectionID != id {
		t.Errorf("the waiting tail saw %+v, want the revocation of %s", e, id)
	}
	if _, err := js.Consumer(ctx, messages.StreamEvents, natsauth.OperatorTail); err == nil {
		t.Error("the ephemeral consumer outlived its tail")
	}

	// The durable consumer reads everything once and acknowledges it.
	events = tailEvents(t, cli, "events", "tail", "-durable", natsauth.Operator, "-count", "3", "-o", "json")
	if !hasEvent(events, messages.EventRevoked, id) {
		t.Errorf("events tail -durable: %+v", events)
	}
	c, err := js.Consumer(ctx, messages.StreamEvents, natsauth.Operator)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := c.Info(ctx); err != nil || info.NumPending != 0 || info.NumAckPending != 0 || info.Delivered.Consumer != 3 {
		t.Errorf("the durable consumer after reading: %+v, %v", info, err)
	}
	if code, out := cli("events", "tail", "-durable", natsauth.Gateway, "-count", "1"); code != 1 || !strings.Contains(out, "gateway") {
		t.Errorf("the operator read through the Gateway's consumer: exit %d\n%s", code, out)
	}

	// The vault's audit record of the revocation names the operator's key
	// as the one admin acted for.
	code, out = cli("audit", "-json", "-action", messages.SubjectVaultOperatorConnectionsRevoke)
	var audit messages.AuditListReply
	if code != 0 || json.Unmarshal([]byte(out), &audit) != nil || len(audit.Records) != 1 ||
		audit.Records[0].Principal != "admin" || audit.Records[0].ActorKeyID == "" || audit.Records[0].Target != id {
		t.Errorf("the audit record of the operator's revocation: exit %d\n%s", code, out)
	}

	// Over HTTP too; revoking again changes nothing.
	if code, out := cli("connections", "revoke", id, "-http", b.AdminURL, "-o", "json"); code != 0 ||
		json.Unmarshal([]byte(out), &conn) != nil || conn.Status != messages.StatusRevoked {
		t.Errorf("connections revoke -http: exit %d\n%s", code, out)
	}

	if code, out := cli("keys", "status", "-o", "json"); code != 0 || !json.Valid([]byte(out)) || !strings.Contains(out, `"rotation_complete": true`) {
		t.Errorf("keys status -o json: exit %d\n%s", code, out)
	}
	if code, out := cli("keys", "status", "-http", b.AdminURL); code != 0 || !strings.Contains(out, "rotation complete: true") {
		t.Errorf("keys status (table, HTTP): exit %d\n%s", code, out)
	}
}

// tailEvents runs events tail and decodes its lines.
func tailEvents(t *testing.T, cli func(...string) (int, string), args ...string) []messages.Event {
	t.Helper()
	code, out := cli(args...)
	if code != 0 {
		t.Fatalf("%v: exit %d\n%s", args, code, out)
	}
	var events []messages.Event
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		events = append(events, decodeEvent(t, line))
	}
	return events
}

func decodeEvent(t *testing.T, line string) messages.Event {
	t.Helper()
	var e messages.Event
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatalf("an event line is not JSON: %q", line)
	}
	return e
}

func hasEvent(events []messages.Event, typ messages.EventType, connection string) bool {
	for _, e := range events {
		if e.Type == typ.FullType() && e.ConnectionID == connection {
			return true
		}
	}
	return false
}
