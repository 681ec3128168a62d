package system_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsauth"
	"github.com/nexus-broker/nexus/system/systemtest"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// TestLifecycleEvents follows one connection through its whole life with a
// downstream service's durable consumer watching NEXUS_EVENTS: consent,
// background refresh, the user revoking access at the provider, re-consent
// under the same id, and revocation.
func TestLifecycleEvents(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{AccessTokenLifespan: 3 * time.Second})
	ctx := ctxT(t)
	if _, err := b.RegisterOIDC(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(b.NC)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, messages.StreamEvents, jetstream.ConsumerConfig{
		Durable: natsauth.Gateway, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: messages.EventsWildcard(messages.DefaultPrefix),
	})
	if err != nil {
		t.Fatalf("durable consumer on %s: %v", messages.StreamEvents, err)
	}
	next := func(t *testing.T, want messages.EventType, id string) messages.Event {
		t.Helper()
		for {
			batch, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			var got *messages.Event
			for m := range batch.Messages() {
				var e messages.Event
				if err := json.Unmarshal(m.Data(), &e); err != nil {
					t.Fatalf("event body: %v", err)
				}
				if m.Headers().Get(messages.HeaderMsgID) != e.ID || m.Subject() != messages.EventSubject(messages.DefaultPrefix, messages.EventType(e.Type[len("nexus.connection."):len(e.Type)-len(".v1")])) {
					t.Fatalf("event %s on %s with Nats-Msg-Id %q", e.Type, m.Subject(), m.Headers().Get(messages.HeaderMsgID))
				}
				_ = m.Ack()
				got = &e
			}
			if got == nil {
				t.Fatalf("no %s event arrived", want)
			}
			if got.Type == messages.EventRefreshed.FullType() && want != messages.EventRefreshed {
				continue // background refreshes interleave; they are checked below
			}
			if got.Type != want.FullType() || got.ConnectionID != id || got.Provider != "acme" || got.WorkspaceID != "ws-1" {
				t.Fatalf("got event %+v, want %s for %s", got, want, id)
			}
			return *got
		}
	}

	q, err := b.Connect(ctx, "acme", "ws-1")
	if err != nil || q.Get("status") != "active" {
		t.Fatalf("consent: %v %v", q, err)
	}
	id := q.Get("connection_id")
	next(t, messages.EventCreated, id)
	next(t, messages.EventActive, id)

	// The refresher renews the 3-second token in the background.
	next(t, messages.EventRefreshed, id)
	if b.Provider.RefreshGrants() == 0 {
		t.Fatal("a refreshed event without a refresh at the provider")
	}

	// The user revokes the app at the provider: the next refresh fails for good.
	b.Provider.RevokeAllGrants()
	var cred messages.Credential
	deadline := time.Now().Add(15 * time.Second)
	for {
		err = b.Gateway.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: id, MinValidSeconds: ptr(0)}, &cred)
		if errors.Is(err, messages.ErrAttentionRequired) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tokens.get never reported attention_required: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ev := next(t, messages.EventAttentionRequired, id)
	if ev.Reason == nil || ev.Reason.Code != "invalid_grant" {
		t.Fatalf("attention_required reason = %+v, want invalid_grant", ev.Reason)
	}

	// A new consent naming the connection recovers it under the same id.
	begin := messages.BeginRequest{Provider: "acme", WorkspaceID: "ws-1", ReturnURL: b.Agent.URL + "/return", ConnectionID: id}
	var br messages.BeginReply
	if err := b.Gateway.Request(ctx, messages.SubjectHandshakeBegin, begin, &br); err != nil {
		t.Fatal(err)
	}
	resp, err := systemtest.NewBrowser().Get(br.AuthURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if rq := resp.Request.URL.Query(); rq.Get("status") != "active" || rq.Get("connection_id") != id {
		t.Fatalf("re-consent landed with %v", rq)
	}
	next(t, messages.EventRecovered, id)
	if err := b.Gateway.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: id}, &cred); err != nil || cred.AccessToken == "" {
		t.Fatalf("tokens.get after recovery: %v", err)
	}

	var revoked messages.Connection
	if err := b.Gateway.Request(ctx, messages.SubjectConnectionsRevoke, messages.ConnectionRef{ConnectionID: id}, &revoked); err != nil {
		t.Fatal(err)
	}
	next(t, messages.EventRevoked, id)

	// Nothing more for this connection but background refreshes that raced the revoke.
	batch, err := cons.Fetch(10, jetstream.FetchMaxWait(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		var e messages.Event
		_ = json.Unmarshal(m.Data(), &e)
		t.Errorf("unexpected event after revoke: %s", e.Type)
	}
}

func ptr[T any](v T) *T { return &v }
