package natsx_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/shared/logging"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/testkit"
)

func TestConnectErrorsNeverShowThePassword(t *testing.T) {
	port := testkit.ClosedPort(t)
	tests := []struct {
		name, url, secret string
		want              string // in the error
	}{
		{"slash", "nats://vault:Zq7/Wx9Lm@127.0.0.1:" + port, "Zq7/Wx9Lm", `the password contains "/"`},
		{"digits then slash", "nats://vault:9876/Wx9Lm@127.0.0.1:" + port, "9876/Wx9Lm", `the password contains "/"`},
		{"base64", "nats://vault:ab/cd+Ef9Q==@127.0.0.1:" + port, "ab/cd+Ef9Q==", `the password contains "/"`},
		{"hash", "nats://vault:Zq7#Wx9Lm@127.0.0.1:" + port, "Zq7#Wx9Lm", `the password contains "#"`},
		{"space", "nats://vault:Zq7 Wx9Lm@127.0.0.1:" + port, "Zq7 Wx9Lm", `the password contains " "`},
		{"percent", "nats://vault:Zq7%Wx9Lm@127.0.0.1:" + port, "Zq7%Wx9Lm", `"%" not followed by two hex digits`},
		{"second server", "nats://127.0.0.1:" + port + ",vault:Zq7/Wx9Lm@127.0.0.1:" + port, "Zq7/Wx9Lm", "NATS server nats://xxxxx@127.0.0.1:" + port},
		{"token with a slash", "nats://Zq7/Wx9Lm@127.0.0.1:" + port, "Zq7/Wx9Lm", `the user name contains "/"`},
		// These parse; the server is not there.
		{"at sign", "nats://vault:Zq7@Wx9Lm@127.0.0.1:" + port, "Zq7@Wx9Lm", "connect to nats://vault:xxxxx@127.0.0.1:" + port},
		{"encoded", "nats://vault:Zq7%2FWx9Lm@127.0.0.1:" + port, "Zq7%2FWx9Lm", "connect to nats://vault:xxxxx@127.0.0.1:" + port},
		{"token", "nats://Zq7Wx9LmToken@127.0.0.1:" + port, "Zq7Wx9LmToken", "connect to nats://xxxxx@127.0.0.1:" + port},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := natsx.Connect(tc.url, "test", logging.Discard(), nats.Timeout(time.Second))
			if err == nil {
				nc.Close()
				t.Fatal("connected to a closed port")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if l := testkit.Leak(err.Error(), tc.secret); l != "" {
				t.Errorf("error %q shows %q of the password", err, l)
			}
		})
	}
	_, err := natsx.Connect("nats://vault:Zq7Wx9Lm@127.0.0.1:"+port, "test", logging.Discard())
	if !errors.Is(err, nats.ErrNoServers) {
		t.Errorf("errors.Is(%v, nats.ErrNoServers) is false", err)
	}
}

// A server that refuses the password: the authorization error names the
// server without it.
func TestConnectAuthFailureNeverShowsThePassword(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true, Username: "vault", Password: "right-one"})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	const wrong = "Zq7%2FWx9Lm"
	addr := s.Addr().String()
	_, err = natsx.Connect("nats://vault:"+wrong+"@"+addr, "test", logging.Discard(), nats.Timeout(2*time.Second))
	if err == nil {
		t.Fatal("connected with a wrong password")
	}
	if !strings.Contains(strings.ToLower(err.Error()), "authorization") || !strings.Contains(err.Error(), "nats://vault:xxxxx@"+addr) {
		t.Errorf("error %q does not name the server and the refusal", err)
	}
	if l := testkit.Leak(err.Error(), wrong); l != "" {
		t.Errorf("error %q shows %q of the password", err, l)
	}
	nc, err := natsx.Connect("nats://vault:right-one@"+addr, "test", logging.Discard())
	if err != nil {
		t.Fatalf("the right password: %v", err)
	}
	nc.Close()
}
