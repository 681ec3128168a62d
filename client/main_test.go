package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nexus-broker/nexus/messages"
)

// natsURL is an embedded NATS server with JetStream, on a free loopback
// port, that the tests and examples of this package connect to. No broker
// answers on it: the end-to-end tests against the real broker are in
// system/client_test.go.
var natsURL string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nexus-client-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "embedded NATS:", err)
		os.Exit(1)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(os.Stderr, "embedded NATS did not start")
		os.Exit(1)
	}
	natsURL = s.ClientURL()
	if err := exampleEvents(); err != nil {
		fmt.Fprintln(os.Stderr, "example events:", err)
		os.Exit(1)
	}
	code := m.Run()
	s.Shutdown()
	s.WaitForShutdown()
	os.RemoveAll(dir)
	os.Exit(code)
}

// exampleEvents puts two lifecycle events on stream NEXUS_EVENTS as the
// broker's refresher publishes them (subject, Nats-Msg-Id), for
// ExampleClient_ConsumeEvents.
func exampleEvents() error {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: messages.StreamEvents, Subjects: []string{messages.DefaultPrefix + ".events.>"}}); err != nil {
		return err
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, t := range []messages.EventType{messages.EventCreated, messages.EventActive} {
		e := messages.Event{ID: fmt.Sprintf("evt-%d", i+1), Type: t.FullType(), ConnectionID: "conn-1", Provider: "github", WorkspaceID: "ws-1", OccurredAt: at}
		body, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if _, err := js.Publish(ctx, messages.EventSubject(messages.DefaultPrefix, t), body, jetstream.WithMsgID(e.ID)); err != nil {
			return err
		}
	}
	return nil
}
