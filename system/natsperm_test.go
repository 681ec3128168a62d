package system_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TestDeployNATSPermissions loads deploy/nats/nats.conf into a real server and
// checks that the Gateway cannot reach the vault's internal subjects nor
// admin, while the services can do their jobs.
func TestDeployNATSPermissions(t *testing.T) {
	for _, u := range []string{"VAULT", "HANDSHAKE", "ADMIN", "GATEWAY", "OPERATOR", "REFRESHER"} {
		t.Setenv("NATS_"+u+"_PASSWORD", "pw-"+u)
	}
	t.Setenv("NATS_SERVER_NAME", "test")
	opts, err := server.ProcessConfigFile(filepath.Join("..", "deploy", "nats", "nats.conf"))
	if err != nil {
		t.Fatalf("deploy/nats/nats.conf does not load: %v", err)
	}
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.StoreDir = t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(s.Shutdown)
	connect := func(user string) (*nats.Conn, chan error) {
		errs := make(chan error, 16)
		nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(user, "pw-"+map[string]string{"vault": "VAULT", "handshake": "HANDSHAKE", "admin": "ADMIN", "gateway": "GATEWAY", "operator": "OPERATOR"}[user]),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
		if err != nil {
			t.Fatalf("%s cannot connect: %v", user, err)
		}
		t.Cleanup(nc.Close)
		return nc, errs
	}
	permErr := func(errs chan error) bool {
		select {
		case err := <-errs:
			return errors.Is(err, nats.ErrPermissionViolation)
		case <-time.After(500 * time.Millisecond):
			return false
		}
	}
	vault, _ := connect("vault")
	if _, err := vault.QueueSubscribe("nexus.v1.vault.exchange", "q", func(m *nats.Msg) { _ = m.Respond([]byte("{}")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := vault.QueueSubscribe("nexus.v1.tokens.get", "q", func(m *nats.Msg) { _ = m.Respond([]byte("{}")) }); err != nil {
		t.Fatal(err)
	}
	_ = vault.Flush()

	gw, gwErrs := connect("gateway")
	if _, err := gw.Request("nexus.v1.tokens.get", []byte("{}"), 2*time.Second); err != nil {
		t.Fatalf("the Gateway cannot call tokens.get: %v", err)
	}
	for _, subj := range []string{"nexus.v1.vault.exchange", "nexus.v1.admin.providers.create", "nexus.v1.vault.clients.put"} {
		if err := gw.Publish(subj, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		_ = gw.Flush()
		if !permErr(gwErrs) {
			t.Errorf("the Gateway may publish to %s", subj)
		}
	}
	hs, _ := connect("handshake")
	if _, err := hs.Request("nexus.v1.vault.exchange", []byte("{}"), 2*time.Second); err != nil {
		t.Fatalf("the handshake cannot reach the vault: %v", err)
	}
}
