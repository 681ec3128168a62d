package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/nexus-broker/nexus/client"
	"github.com/nexus-broker/nexus/messages"
)

// sentinels is each contract code's sentinel.
var sentinels = map[messages.ErrorCode]error{
	messages.CodeInvalidRequest:    client.ErrInvalidRequest,
	messages.CodeUnauthorized:      client.ErrUnauthorized,
	messages.CodeForbidden:         client.ErrForbidden,
	messages.CodeNotFound:          client.ErrNotFound,
	messages.CodeConflict:          client.ErrConflict,
	messages.CodeNotActive:         client.ErrNotActive,
	messages.CodeAttentionRequired: client.ErrAttentionRequired,
	messages.CodeRateLimited:       client.ErrRateLimited,
	messages.CodeProviderError:     client.ErrProviderError,
	messages.CodeUnavailable:       client.ErrUnavailable,
	messages.CodeInternal:          client.ErrInternal,
}

func connect(t *testing.T) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatalf("NATS at %s: %v", natsURL, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func newClient(t *testing.T, nc *nats.Conn, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(nc, "gw-key", opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// answer serves subject (under prefix) with a micro service, as the
// broker's services do: each request gets reply(n), n counting from 1,
// where a *messages.Error is sent as the contract's error reply
// (shared/natsx: micro's error headers and the body {"error":...}).
func answer(t *testing.T, nc *nats.Conn, prefix, subject string, reply func(n int, req micro.Request) any) {
	t.Helper()
	svc, err := micro.AddService(nc, micro.Config{Name: "test-responder", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	var n atomic.Int32
	err = svc.AddEndpoint("e", micro.HandlerFunc(func(req micro.Request) {
		v := reply(int(n.Add(1)), req)
		if me, ok := v.(*messages.Error); ok {
			body, _ := json.Marshal(messages.ErrorBody{Error: me})
			_ = req.Error(strconv.Itoa(me.Code.Status()), me.Message, body)
			return
		}
		_ = req.RespondJSON(v)
	}), micro.WithEndpointSubject(messages.Subject(prefix, subject)))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestErrorCodes: every code of the contract comes back as an *Error that
// errors.Is matches with its own sentinel (the client's and messages') and
// no other, with the subject, the broker's message and, on rate_limited,
// the retry hint.
func TestErrorCodes(t *testing.T) {
	if len(sentinels) != len(messages.ErrorCodes) {
		t.Fatalf("%d sentinels for %d contract codes", len(sentinels), len(messages.ErrorCodes))
	}
	nc := connect(t)
	var code atomic.Value
	answer(t, nc, "codes", messages.SubjectConnectionsGet, func(int, micro.Request) any {
		c := code.Load().(messages.ErrorCode)
		return &messages.Error{Code: c, Message: "the broker says " + string(c), RetryAfterSeconds: 7}
	})
	gw := newClient(t, nc, client.WithPrefix("codes"), client.WithoutRetry())
	for _, c := range messages.ErrorCodes {
		t.Run(string(c), func(t *testing.T) {
			code.Store(c)
			_, err := gw.ConnectionsGet(t.Context(), messages.ConnectionRef{ConnectionID: "conn-1"})
			want := sentinels[c]
			if want == nil {
				t.Fatalf("no sentinel for %s", c)
			}
			for other, s := range sentinels {
				if errors.Is(err, s) != (other == c) {
					t.Errorf("errors.Is(%v, Err %s) = %v", err, other, !(other == c))
				}
			}
			if !errors.Is(err, &messages.Error{Code: c}) {
				t.Errorf("errors.Is(%v, messages' %s) = false", err, c)
			}
			var e *client.Error
			if !errors.As(err, &e) || e.Code != c || e.Message != "the broker says "+string(c) || e.Subject != messages.SubjectConnectionsGet {
				t.Fatalf("errors.As: %#v", e)
			}
			if e.RetryAfter != 7*time.Second {
				t.Errorf("RetryAfter = %v, want 7s from retry_after_seconds", e.RetryAfter)
			}
		})
	}
}

// TestRetriesOnlyUnavailable: a request answered unavailable is sent again
// until it succeeds; one answered with any other code is sent once.
func TestRetriesOnlyUnavailable(t *testing.T) {
	for _, c := range messages.ErrorCodes {
		t.Run(string(c), func(t *testing.T) {
			nc := connect(t)
			var attempts atomic.Int32
			answer(t, nc, "retry-"+string(c), messages.SubjectTokensGet, func(n int, req micro.Request) any {
				attempts.Store(int32(n))
				if n <= 2 {
					return &messages.Error{Code: c, Message: "not now"}
				}
				return messages.Credential{ConnectionID: "conn-1", AuthType: messages.AuthOAuth2, AccessToken: "at"}
			})
			var notified atomic.Int32
			gw := newClient(t, nc, client.WithPrefix("retry-"+string(c)), client.WithBackOff(time.Millisecond, 5*time.Millisecond),
				client.WithRetryNotify(func(subject string, err error, _ time.Duration) {
					if subject != messages.SubjectTokensGet || !errors.Is(err, client.ErrUnavailable) {
						t.Errorf("notified of %s %v", subject, err)
					}
					notified.Add(1)
				}))
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			cred, err := gw.TokensGet(ctx, messages.TokenRequest{ConnectionID: "conn-1"})
			if c == messages.CodeUnavailable {
				if err != nil || cred.AccessToken != "at" || attempts.Load() != 3 || notified.Load() != 2 {
					t.Fatalf("got %v after %d attempts (%d retries notified), want the credential on the third", err, attempts.Load(), notified.Load())
				}
				return
			}
			if !errors.Is(err, sentinels[c]) || attempts.Load() != 1 || notified.Load() != 0 {
				t.Fatalf("got %v after %d attempts, want %s after one", err, attempts.Load(), c)
			}
		})
	}
}

// TestNoResponderRetried: with nothing listening on the subject the
// request is unavailable and retried; it succeeds once a service answers.
func TestNoResponderRetried(t *testing.T) {
	nc := connect(t)
	var retries atomic.Int32
	gw := newClient(t, nc, client.WithPrefix("late"), client.WithBackOff(10*time.Millisecond, 50*time.Millisecond),
		client.WithRetryNotify(func(_ string, err error, _ time.Duration) {
			if !errors.Is(err, nats.ErrNoResponders) {
				t.Errorf("retry after %v, want no responders", err)
			}
			if retries.Add(1) == 1 { // the service starts while the client waits
				answer(t, nc, "late", messages.SubjectConnectionsGet, func(int, micro.Request) any {
					return messages.Connection{ConnectionID: "conn-1", Status: messages.StatusActive}
				})
			}
		}))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	conn, err := gw.ConnectionsGet(ctx, messages.ConnectionRef{ConnectionID: "conn-1"})
	if err != nil || conn.Status != messages.StatusActive || retries.Load() < 1 {
		t.Fatalf("got %+v, %v after %d retries", conn, err, retries.Load())
	}
}

// TestNoRetryPastDeadline: when the next attempt could only start after
// the context's deadline the client does not wait for it: it returns the
// unavailable answer at once, well before the deadline.
func TestNoRetryPastDeadline(t *testing.T) {
	nc := connect(t)
	var retries atomic.Int32
	gw := newClient(t, nc, client.WithPrefix("nobody"), client.WithBackOff(time.Minute, time.Minute),
		client.WithRetryNotify(func(string, error, time.Duration) { retries.Add(1) }))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := gw.TokensGet(ctx, messages.TokenRequest{ConnectionID: "conn-1"})
	if !errors.Is(err, client.ErrUnavailable) || !errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want unavailable (no responders)", err)
	}
	if ctx.Err() != nil || retries.Load() != 0 {
		t.Fatalf("the client waited for a retry the deadline did not leave time for (ctx: %v, retries: %d)", ctx.Err(), retries.Load())
	}
}

// TestConfiguredOnce: the prefix and the API key given to New are on every
// request, and the request body is the messages type as JSON.
func TestConfiguredOnce(t *testing.T) {
	nc := connect(t)
	answer(t, nc, "acme", messages.SubjectHandshakeBegin, func(_ int, req micro.Request) any {
		var br messages.BeginRequest
		if err := json.Unmarshal(req.Data(), &br); err != nil || br.Provider != "github" || !br.RequireConfirmation {
			return &messages.Error{Code: messages.CodeInvalidRequest, Message: "body " + string(req.Data())}
		}
		if req.Headers().Get(messages.HeaderAPIKey) != "gw-key" {
			return &messages.Error{Code: messages.CodeUnauthorized, Message: "no key"}
		}
		return messages.BeginReply{ConnectionID: "conn-9", AuthURL: "http://127.0.0.1/v1/connect/x"}
	})
	gw := newClient(t, nc, client.WithPrefix("acme"))
	reply, err := gw.HandshakeBegin(t.Context(), messages.BeginRequest{Provider: "github", WorkspaceID: "ws-1", ReturnURL: "http://localhost/done", RequireConfirmation: true})
	if err != nil || reply.ConnectionID != "conn-9" {
		t.Fatalf("begin: %+v %v", reply, err)
	}
}

// TestTraceContextPropagated: a request made in a traced context carries
// the caller's trace in traceparent, so the broker's spans join it; one made
// without a trace carries none.
func TestTraceContextPropagated(t *testing.T) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator()) })
	nc := connect(t)
	seen := make(chan string, 2)
	answer(t, nc, messages.DefaultPrefix, messages.SubjectConnectionsGet, func(_ int, req micro.Request) any {
		seen <- req.Headers().Get("traceparent")
		return messages.Connection{ConnectionID: "conn-1"}
	})
	gw := newClient(t, nc)
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	traced := trace.ContextWithSpanContext(t.Context(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled}))
	if _, err := gw.ConnectionsGet(traced, messages.ConnectionRef{ConnectionID: "conn-1", WorkspaceID: "ws-1"}); err != nil {
		t.Fatal(err)
	}
	if got, want := <-seen, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"; got != want {
		t.Fatalf("traceparent %q, want %q", got, want)
	}
	if _, err := gw.ConnectionsGet(t.Context(), messages.ConnectionRef{ConnectionID: "conn-1", WorkspaceID: "ws-1"}); err != nil {
		t.Fatal(err)
	}
	if got := <-seen; got != "" {
		t.Fatalf("an untraced request carried traceparent %q", got)
	}
}

// TestNewRefuses: a client without a connection, a key or a usable prefix
// is refused at once, every problem named.
func TestNewRefuses(t *testing.T) {
	_, err := client.New(nil, "", client.WithPrefix("a.>"), client.WithTimeout(0), client.WithBackOff(0, time.Second))
	if err == nil {
		t.Fatal("New accepted no connection, no key, a wildcard prefix, no timeout and no backoff")
	}
	for _, want := range []string{"no NATS connection", "no API key", `prefix "a.>"`, "timeout", "backoff"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not name %q", err, want)
		}
	}
	if _, err := client.New(nil, "k", client.WithBackOff(2*time.Second, time.Second)); err == nil || !strings.Contains(err.Error(), "backoff") {
		t.Errorf("a backoff whose first wait exceeds its maximum: %v", err)
	}
}
