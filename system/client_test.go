package system_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nexus-broker/nexus/client"
	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsauth"
	"github.com/nexus-broker/nexus/system/systemtest"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// retryCounter counts the client's retries, by subject.
type retryCounter struct {
	mu sync.Mutex
	n  map[string]int
	// last is the error of the last attempt retried.
	last error
}

func (r *retryCounter) notify(subject string, err error, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[subject]++
	r.last = err
}

func (r *retryCounter) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, v := range r.n {
		n += v
	}
	return n
}

// gatewayClient is the Gateway's client on b's Gateway connection (NATS
// user gateway, its inbox prefix), with key.
func gatewayClient(t *testing.T, b *systemtest.Broker, key string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(b.NC, key, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// connectClient runs a consent begun with the client, through the provider
// in a browser, and returns the connection's id.
func connectClient(t *testing.T, ctx context.Context, b *systemtest.Broker, gw *client.Client, workspace string) string {
	t.Helper()
	begin, err := gw.HandshakeBegin(ctx, messages.BeginRequest{Provider: "acme", WorkspaceID: workspace, ReturnURL: b.Agent.URL + "/return"})
	if err != nil {
		t.Fatalf("handshake.begin: %v", err)
	}
	resp, err := systemtest.NewBrowser().Get(begin.AuthURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if q := resp.Request.URL.Query(); q.Get("status") != "active" || q.Get("connection_id") != begin.ConnectionID {
		t.Fatalf("consent ended at %s", resp.Request.URL.Redacted())
	}
	return begin.ConnectionID
}

// wantCode checks that err is the contract's code, for errors.Is with the
// client's sentinel and errors.As to a *client.Error naming subject.
func wantCode(t *testing.T, what string, err error, sentinel *client.Error, subject string) {
	t.Helper()
	var e *client.Error
	if !errors.Is(err, sentinel) || !errors.As(err, &e) || e.Code != sentinel.Code || e.Subject != subject || e.Message == "" {
		t.Errorf("%s: %v (%#v), want %s from %s with the broker's message", what, err, e, sentinel.Code, subject)
	}
}

// TestClientErrorCodes: the client against the real broker. Each contract
// code a Gateway subject can answer comes back as its sentinel, with the
// broker's message, and only unavailable is retried: once the vault is
// stopped, both a request nobody answers (tokens.get) and one the
// handshake answers unavailable (handshake.begin, which needs the vault)
// are retried until the deadline leaves no time for another attempt.
func TestClientErrorCodes(t *testing.T) {
	b := startBrokerEnv(t, oidcprovider.Options{}, map[string]string{"BEGIN_RATE_PER_WORKSPACE": "20/24h"})
	ctx := ctxT(t)
	if _, err := b.RegisterOIDC(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	var retries retryCounter
	gw := gatewayClient(t, b, gatewayKey, client.WithBackOff(5*time.Millisecond, 50*time.Millisecond), client.WithRetryNotify(retries.notify))

	_, err := gw.HandshakeBegin(ctx, messages.BeginRequest{WorkspaceID: "ws-1", ReturnURL: b.Agent.URL + "/return"})
	wantCode(t, "begin without a provider", err, client.ErrInvalidRequest, messages.SubjectHandshakeBegin)

	_, err = gatewayClient(t, b, "not-a-key-of-the-broker").ConnectionsList(ctx, messages.ListConnectionsRequest{WorkspaceID: "ws-1"})
	wantCode(t, "an unknown key", err, client.ErrUnauthorized, messages.SubjectConnectionsList)

	_, err = gatewayClient(t, b, b.Env["HANDSHAKE_SERVICE_KEY"]).ConnectionsList(ctx, messages.ListConnectionsRequest{WorkspaceID: "ws-1"})
	wantCode(t, "the handshake's key", err, client.ErrForbidden, messages.SubjectConnectionsList)

	_, err = gw.ConnectionsGet(ctx, messages.ConnectionRef{ConnectionID: "00000000-0000-0000-0000-000000000000", WorkspaceID: "ws-1"})
	wantCode(t, "an unknown connection", err, client.ErrNotFound, messages.SubjectConnectionsGet)

	// provider_error: the provider refuses a refresh with a code that is
	// about the request, not the grant.
	rejected := connectClient(t, ctx, b, gw, "ws-1")
	b.Provider.FailTokenRequests(1, 400, nil, `{"error":"invalid_scope"}`)
	_, err = gw.TokensRefresh(ctx, messages.TokenRequest{ConnectionID: rejected, WorkspaceID: "ws-1"})
	wantCode(t, "a refresh the provider rejects", err, client.ErrProviderError, messages.SubjectTokensRefresh)

	// attention_required: the person revoked the app at the provider.
	dead := connectClient(t, ctx, b, gw, "ws-1")
	b.Provider.RevokeAllGrants()
	_, err = gw.TokensRefresh(ctx, messages.TokenRequest{ConnectionID: dead, WorkspaceID: "ws-1"})
	wantCode(t, "a refresh of a revoked grant", err, client.ErrAttentionRequired, messages.SubjectTokensRefresh)
	if c, err := gw.ConnectionsGet(ctx, messages.ConnectionRef{ConnectionID: dead, WorkspaceID: "ws-1"}); err != nil || c.Status != messages.StatusAttentionRequired {
		t.Errorf("connection after invalid_grant: %s %v", c.Status, err)
	}

	// not_active: a revoked connection serves nothing.
	revoked, err := gw.ConnectionsRevoke(ctx, messages.ConnectionRef{ConnectionID: rejected, WorkspaceID: "ws-1"})
	if err != nil || revoked.Status != messages.StatusRevoked {
		t.Fatalf("connections.revoke: %s %v", revoked.Status, err)
	}
	_, err = gw.TokensGet(ctx, messages.TokenRequest{ConnectionID: rejected, WorkspaceID: "ws-1"})
	wantCode(t, "tokens of a revoked connection", err, client.ErrNotActive, messages.SubjectTokensGet)

	// rate_limited, with its hint: a workspace's 21st consent of the day
	// (a day's window may turn over once between two begins).
	var limited error
	for range 45 {
		if _, limited = gw.HandshakeBegin(ctx, messages.BeginRequest{Provider: "acme", WorkspaceID: "ws-busy", ReturnURL: b.Agent.URL + "/return"}); limited != nil {
			break
		}
	}
	wantCode(t, "the workspace's 21st begin", limited, client.ErrRateLimited, messages.SubjectHandshakeBegin)
	if e := (*client.Error)(nil); errors.As(limited, &e) && e.RetryAfter < time.Second {
		t.Errorf("rate_limited without a retry hint: %v", e.RetryAfter)
	}
	if n := retries.total(); n != 0 {
		t.Fatalf("the client retried %d times, though no answer was unavailable: %v", n, retries.n)
	}

	// unavailable, retried until the deadline leaves no room: with no
	// vault, tokens.get has no responder and handshake.begin is answered
	// unavailable by the handshake. (Every attempt of a begin counts
	// against the workspace's rate: a few in 3s stay under it.)
	if err := b.Sys.Vault.Close(ctx); err != nil {
		t.Fatal(err)
	}
	gw = gatewayClient(t, b, gatewayKey, client.WithBackOff(100*time.Millisecond, 500*time.Millisecond), client.WithRetryNotify(retries.notify))
	for _, tc := range []struct {
		subject      string
		call         func(context.Context) error
		noResponders bool
	}{
		{messages.SubjectTokensGet, func(ctx context.Context) error {
			_, err := gw.TokensGet(ctx, messages.TokenRequest{ConnectionID: dead, WorkspaceID: "ws-1"})
			return err
		}, true},
		{messages.SubjectHandshakeBegin, func(ctx context.Context) error {
			_, err := gw.HandshakeBegin(ctx, messages.BeginRequest{Provider: "acme", WorkspaceID: "ws-2", ReturnURL: b.Agent.URL + "/return"})
			return err
		}, false},
	} {
		callCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := tc.call(callCtx)
		cancel()
		wantCode(t, "with the vault stopped", err, client.ErrUnavailable, tc.subject)
		retries.mu.Lock()
		n, last := retries.n[tc.subject], retries.last
		retries.mu.Unlock()
		if n == 0 || errors.Is(last, nats.ErrNoResponders) != tc.noResponders {
			t.Errorf("%s: %d retries, the last after %v (no responders: want %v)", tc.subject, n, last, tc.noResponders)
		}
	}
}

// TestClientRetriesUntilTheVaultAnswers: with the vault stopped, tokens.get
// is retried, never past the deadline (with a backoff longer than the time
// left it returns unavailable at once), and succeeds once a vault answers
// again: the request waited out the outage instead of failing the call.
func TestClientRetriesUntilTheVaultAnswers(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)
	if _, err := b.RegisterOIDC(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	id := connectClient(t, ctx, b, gatewayClient(t, b, gatewayKey), "ws-1")
	if err := b.Sys.Vault.Close(ctx); err != nil {
		t.Fatal(err)
	}

	var patient retryCounter
	short, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := gatewayClient(t, b, gatewayKey, client.WithBackOff(time.Minute, time.Minute), client.WithRetryNotify(patient.notify)).
		TokensGet(short, messages.TokenRequest{ConnectionID: id, WorkspaceID: "ws-1"})
	if !errors.Is(err, client.ErrUnavailable) || !errors.Is(err, nats.ErrNoResponders) || short.Err() != nil || patient.total() != 0 {
		t.Fatalf("with a minute's backoff and 10s left: %v (deadline passed: %v, retries: %d), want unavailable at once", err, short.Err(), patient.total())
	}

	var restarted atomic.Bool
	var retries retryCounter
	gw := gatewayClient(t, b, gatewayKey, client.WithBackOff(20*time.Millisecond, 500*time.Millisecond), client.WithRetryNotify(func(subject string, err error, wait time.Duration) {
		retries.notify(subject, err, wait)
		if retries.total() == 3 && restarted.CompareAndSwap(false, true) {
			startSecondInstance(t, b) // a vault (and the rest) comes back while the client waits
		}
	}))
	cred, err := gw.TokensGet(ctx, messages.TokenRequest{ConnectionID: id, WorkspaceID: "ws-1"})
	if err != nil || cred.AccessToken == "" || !restarted.Load() {
		t.Fatalf("tokens.get across the vault's restart: %v after %d retries (vault back: %v)", err, retries.total(), restarted.Load())
	}
	if !errors.Is(retries.last, nats.ErrNoResponders) {
		t.Fatalf("retried after %v, want no responders while the vault was down", retries.last)
	}
}

// TestClientEventsResume: the Gateway's durable consumer, through
// ConsumeEvents as NATS user gateway. Stopped after the first events, it
// resumes with the events published while it was down and no event it had
// acknowledged; an event its handler failed is delivered again, and only
// its successful handling counts.
func TestClientEventsResume(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)
	if _, err := b.RegisterOIDC(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	gw := gatewayClient(t, b, gatewayKey)
	a := connectClient(t, ctx, b, gw, "ws-1")
	c := connectClient(t, ctx, b, gw, "ws-1")
	key := func(e messages.Event) string { return e.ConnectionID + " " + e.Type }

	var mu sync.Mutex
	acked := map[string]int{} // event id -> times the handler returned nil
	var order []string        // keys of acknowledged events, in order
	// consume runs ConsumeEvents until n more events were handled,
	// failing the first delivery of the events fail names.
	consume := func(n int, fail string) {
		t.Helper()
		runCtx, stop := context.WithCancel(ctx)
		defer stop()
		failed := false
		done := 0
		err := gw.ConsumeEvents(runCtx, natsauth.Gateway, func(_ context.Context, e messages.Event) error {
			if key(e) == fail && !failed {
				failed = true
				return errors.New("the Gateway's database is down")
			}
			mu.Lock()
			acked[e.ID]++
			order = append(order, key(e))
			mu.Unlock()
			if done++; done == n {
				stop()
			}
			return nil
		}, client.WithRedeliveryDelay(50*time.Millisecond, time.Second))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("ConsumeEvents: %v", err)
		}
		if fail != "" && !failed {
			t.Fatalf("the event to fail (%s) never came", fail)
		}
	}
	created, active, revokedT := messages.EventCreated.FullType(), messages.EventActive.FullType(), messages.EventRevoked.FullType()

	consume(4, c+" "+active)
	first := slices.Clone(order)
	if want := []string{a + " " + created, a + " " + active, c + " " + created, c + " " + active}; !sameSet(first, want) {
		t.Fatalf("first run handled %v, want %v", first, want)
	}

	// While no consumer runs: a third consent, and a revocation.
	d := connectClient(t, ctx, b, gw, "ws-1")
	if _, err := gw.ConnectionsRevoke(ctx, messages.ConnectionRef{ConnectionID: a, WorkspaceID: "ws-1"}); err != nil {
		t.Fatal(err)
	}
	consume(3, "")
	second := order[len(first):]
	if want := []string{d + " " + created, d + " " + active, a + " " + revokedT}; !sameSet(second, want) {
		t.Fatalf("after the restart: %v, want exactly the events published while it was stopped %v", second, want)
	}
	for id, n := range acked {
		if n != 1 {
			t.Errorf("event %s was handled successfully %d times", id, n)
		}
	}
	js, err := jetstream.New(b.NC)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, messages.StreamEvents, natsauth.Gateway)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumPending != 0 || info.NumRedelivered != 0 {
		t.Fatalf("durable after both runs: %d pending, %d unacknowledged, %d redelivered; want all acknowledged", info.NumPending, info.NumAckPending, info.NumRedelivered)
	}
}
