package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/client"
	"github.com/nexus-broker/nexus/messages"
)

func ExampleNew() {
	// As the Gateway's NATS user, reading replies on its own inbox prefix.
	nc, err := nats.Connect(natsURL /* , nats.UserInfo("gateway", password), nats.CustomInboxPrefix("_INBOX.gateway") */)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	gw, err := client.New(nc, "the broker's API_KEY", client.WithPrefix("nexus"), client.WithBackOff(50*time.Millisecond, time.Second))
	if err != nil {
		log.Fatal(err)
	}
	_ = gw
	// Output:
}

// Every failure is an *client.Error with the contract's code: branch with
// errors.Is, read the code and the broker's message with errors.As. Here no
// broker answers at all, which is unavailable too.
func ExampleError() {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	gw, err := client.New(nc, "the broker's API_KEY", client.WithoutRetry())
	if err != nil {
		log.Fatal(err)
	}

	_, err = gw.TokensGet(context.Background(), messages.TokenRequest{ConnectionID: "conn-1", WorkspaceID: "ws-1"})
	switch {
	case errors.Is(err, client.ErrAttentionRequired):
		fmt.Println("ask the person to connect again")
	case errors.Is(err, client.ErrUnavailable):
		fmt.Println("try again later")
	}
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.Subject, e.Code, e.Message)
	}
	fmt.Println(errors.Is(err, nats.ErrNoResponders))
	// Output:
	// try again later
	// v1.tokens.get unavailable no service is answering
	// true
}

// A Gateway's call to a provider: the credential and the strategy that says
// how to put it on the request. (It needs a running broker.)
func ExampleClient_TokensGet() {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	gw, err := client.New(nc, "the broker's API_KEY")
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	cred, err := gw.TokensGet(ctx, messages.TokenRequest{ConnectionID: "conn-1", WorkspaceID: "ws-1"})
	if errors.Is(err, client.ErrAttentionRequired) {
		// Only the person can fix it: begin a new consent for the same connection.
		begin, err := gw.HandshakeBegin(ctx, messages.BeginRequest{
			Provider: "github", WorkspaceID: "ws-1", ConnectionID: "conn-1", ReturnURL: "https://app.example/done",
		})
		if err == nil {
			fmt.Println("send the person to", begin.AuthURL)
		}
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "https://api.github.com/user", nil)
	if cred.Strategy.Type == messages.StrategyOAuth2 {
		req.Header.Set("Authorization", cred.TokenType+" "+cred.AccessToken)
	}
}

// Pages of connections, until NextCursor is empty. (It needs a running broker.)
func ExampleClient_ConnectionsList() {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	gw, err := client.New(nc, "the broker's API_KEY")
	if err != nil {
		log.Fatal(err)
	}
	req := messages.ListConnectionsRequest{WorkspaceID: "ws-1", Status: messages.StatusAttentionRequired}
	for {
		page, err := gw.ConnectionsList(context.Background(), req)
		if err != nil {
			log.Fatal(err)
		}
		for _, c := range page.Connections {
			fmt.Println(c.ConnectionID, c.Attention.Message)
		}
		if page.NextCursor == "" {
			break
		}
		req.Cursor = page.NextCursor
	}
}
