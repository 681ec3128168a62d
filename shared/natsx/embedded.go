package natsx

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedOptions configures an in-process NATS server.
type EmbeddedOptions struct {
	Host     string // default 127.0.0.1
	Port     int    // 0 or -1 picks a free port
	StoreDir string // JetStream storage; required
	// Users, when set, are the only clients the server accepts, each with
	// its permissions (natsauth.ServerUsers): the same doors as production.
	Users []*server.User
}

// StartEmbedded runs a NATS server with JetStream in this process, for the
// all-in-one launcher and the tests. Production runs a real cluster (deploy/nats).
func StartEmbedded(o EmbeddedOptions) (*server.Server, error) {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = server.RANDOM_PORT
	}
	opts := &server.Options{
		Host:               o.Host,
		Port:               o.Port,
		JetStream:          true,
		StoreDir:           o.StoreDir,
		NoSigs:             true,
		NoLog:              true,
		MaxPayload:         1 << 20,
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  1 << 30,
		Users:              o.Users,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready after 10s on %s:%d", o.Host, o.Port)
	}
	return s, nil
}
