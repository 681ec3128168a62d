package client_test

import (
	"context"
	"fmt"
	"log"

	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/client"
	"github.com/nexus-broker/nexus/messages"
)

// The Gateway follows its connections through the durable consumer named
// after it. An event is acknowledged once the handler returns nil; a
// consumer started again with the same name goes on after the last one.
func ExampleClient_ConsumeEvents() {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	gw, err := client.New(nc, "the broker's API_KEY")
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	seen := 0
	err = gw.ConsumeEvents(ctx, "gateway", func(ctx context.Context, e messages.Event) error {
		fmt.Println(e.Type, e.ConnectionID, e.WorkspaceID)
		if seen++; seen == 2 {
			stop() // for the example; a Gateway consumes until it shuts down
		}
		return nil
	})
	fmt.Println(err)
	// Output:
	// nexus.connection.created.v1 conn-1 ws-1
	// nexus.connection.active.v1 conn-1 ws-1
	// context canceled
}
