package natsx_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/apikey"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/testkit"
)

const (
	key         = "endpoint-test-key-0123"
	operatorKey = "endpoint-test-operator-key"
)

type echoReq struct {
	Name string `json:"name"`
}

type echoReply struct {
	Hello string `json:"hello"`
}

var errDomain = errors.New("a domain error the service maps")

// TestEndpoints: typed requests and replies, the fast path, the service's
// one error mapping, and every error counted, by micro where it can and in
// the endpoint's stats data always.
func TestEndpoints(t *testing.T) {
	nc := testkit.Conn(t, testkit.NATS(t))
	callers := apikey.NewSet().Add(apikey.Gateway, []string{key}).Add(apikey.Operator, []string{operatorKey})
	svc, err := natsx.NewService(nc, natsx.ServiceConfig{
		Name: "echo", Version: "1.0.0", Callers: callers,
		Errors: func(err error) error {
			if errors.Is(err, errDomain) {
				return messages.Errorf(messages.CodeNotActive, "mapped")
			}
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	fast := func(ctx context.Context, r echoReq, _ []byte) (echoReply, bool, error) {
		if natsx.CallerOf(ctx).Principal != apikey.Gateway {
			return echoReply{}, true, errors.New("the fast path does not know its caller")
		}
		switch r.Name {
		case "fast":
			return echoReply{Hello: "fast " + r.Name}, true, nil
		case "fast-fail":
			return echoReply{}, true, errDomain
		}
		return echoReply{}, false, nil
	}
	slow := func(ctx context.Context, r echoReq) (echoReply, error) {
		if c := natsx.CallerOf(ctx); c.Principal != apikey.Gateway || c.KeyID == "" {
			return echoReply{}, errors.New("the handler does not know its caller")
		}
		switch r.Name {
		case "slow-fail":
			return echoReply{}, errDomain
		case "boom":
			panic("boom")
		case "unexpected":
			return echoReply{}, errors.New("detail that stays in the log")
		}
		return echoReply{Hello: r.Name}, nil
	}
	if err := natsx.FastEndpoint(svc, "v1.echo.say", fast, slow, natsx.For(apikey.Gateway), natsx.MaxBytes(256)); err != nil {
		t.Fatal(err)
	}
	if err := natsx.Endpoint(svc, "v1.echo.nobody", slow); err == nil {
		t.Fatal("an endpoint that serves no caller was registered")
	}
	client := &natsx.Client{NC: nc, Prefix: messages.DefaultPrefix, APIKey: key}
	call := func(body any, c *natsx.Client) (echoReply, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var out echoReply
		err := c.Request(ctx, "v1.echo.say", body, &out)
		return out, err
	}
	for _, tc := range []struct {
		name string
		body any
		c    *natsx.Client
		want string
		err  *messages.Error
	}{
		{"slow path", echoReq{Name: "world"}, client, "world", nil},
		{"fast path", echoReq{Name: "fast"}, client, "fast fast", nil},
		{"fast path error, mapped", echoReq{Name: "fast-fail"}, client, "", messages.ErrNotActive},
		{"slow path error, mapped", echoReq{Name: "slow-fail"}, client, "", messages.ErrNotActive},
		{"unknown field", map[string]string{"nmae": "x"}, client, "", messages.ErrInvalidRequest},
		{"panic", echoReq{Name: "boom"}, client, "", messages.ErrInternal},
		{"unexpected error", echoReq{Name: "unexpected"}, client, "", messages.ErrInternal},
		{"no key", echoReq{Name: "world"}, &natsx.Client{NC: nc}, "", messages.ErrUnauthorized},
		{"another principal's key", echoReq{Name: "world"}, &natsx.Client{NC: nc, Prefix: messages.DefaultPrefix, APIKey: operatorKey}, "", messages.ErrForbidden},
		{"too large", echoReq{Name: strings.Repeat("x", 300)}, client, "", messages.ErrInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := call(tc.body, tc.c)
			if tc.err == nil {
				if err != nil || got.Hello != tc.want {
					t.Fatalf("got %+v, %v; want %q", got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if tc.err.Code == messages.CodeInternal && err.(*messages.Error).Message != "internal error" {
				t.Fatalf("an internal error leaked its detail: %v", err)
			}
		})
	}

	// micro counts the errors answered inline (no key, another principal's
	// key, too large, unknown field, the fast path's); the endpoint's stats
	// data counts all eight by code.
	st := svc.Stats()
	if len(st.Endpoints) != 1 {
		t.Fatalf("stats: %+v", st)
	}
	ep := st.Endpoints[0]
	if ep.NumRequests != 10 || ep.NumErrors != 5 {
		t.Errorf("micro counted %d requests, %d errors; want 10 and 5", ep.NumRequests, ep.NumErrors)
	}
	var data natsx.EndpointStats
	if err := json.Unmarshal(ep.Data, &data); err != nil {
		t.Fatal(err)
	}
	want := map[messages.ErrorCode]int{messages.CodeNotActive: 2, messages.CodeInvalidRequest: 2, messages.CodeInternal: 2, messages.CodeUnauthorized: 1, messages.CodeForbidden: 1}
	if len(data.Errors) != len(want) {
		t.Errorf("errors by code %v, want %v", data.Errors, want)
	}
	for code, n := range want {
		if data.Errors[code] != n {
			t.Errorf("errors by code %v, want %v", data.Errors, want)
			break
		}
	}
}

// TestFastReplyBuffer: a fast path that builds its reply in the buffer it
// is given gets an empty buffer of ReplyBufferSize bytes, all zero (the
// reply of the request before, longer, is gone), and its reply goes out
// whole; one longer than the buffer outgrows it.
func TestFastReplyBuffer(t *testing.T) {
	nc := testkit.Conn(t, testkit.NATS(t))
	svc, err := natsx.NewService(nc, natsx.ServiceConfig{Name: "raw", Version: "1.0.0", Callers: apikey.NewSet().Add(apikey.Gateway, []string{key})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	fast := func(_ context.Context, r echoReq, buf []byte) (json.RawMessage, bool, error) {
		if len(buf) != 0 || cap(buf) != natsx.ReplyBufferSize {
			return nil, true, fmt.Errorf("buffer of length %d, capacity %d", len(buf), cap(buf))
		}
		if i := bytes.IndexFunc(buf[:cap(buf)], func(r rune) bool { return r != 0 }); i >= 0 {
			return nil, true, fmt.Errorf("the buffer still holds an earlier reply at %d", i)
		}
		buf = append(buf, `{"hello":"`...)
		buf = append(buf, r.Name...)
		return append(buf, `"}`...), true, nil
	}
	slow := func(context.Context, echoReq) (json.RawMessage, error) { return nil, errors.New("not the slow path") }
	if err := natsx.FastEndpoint(svc, "v1.raw.say", fast, slow, natsx.For(apikey.Gateway)); err != nil {
		t.Fatal(err)
	}
	client := &natsx.Client{NC: nc, Prefix: messages.DefaultPrefix, APIKey: key}
	for _, name := range []string{strings.Repeat("long-", 100), "short", strings.Repeat("x", natsx.ReplyBufferSize), "after"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var out echoReply
		err := client.Request(ctx, "v1.raw.say", echoReq{Name: name}, &out)
		cancel()
		if err != nil || out.Hello != name {
			t.Fatalf("reply for a name of %d bytes: %q, %v", len(name), out.Hello, err)
		}
	}
}

// TestUnencodableReply: a reply that cannot be encoded is answered
// internal, not left without an answer until the caller's deadline.
func TestUnencodableReply(t *testing.T) {
	nc := testkit.Conn(t, testkit.NATS(t))
	svc, err := natsx.NewService(nc, natsx.ServiceConfig{Name: "enc", Version: "1.0.0", Callers: apikey.NewSet().Add(apikey.Gateway, []string{key})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	h := func(context.Context, echoReq) (map[string]any, error) { return map[string]any{"f": func() {}}, nil }
	if err := natsx.Endpoint(svc, "v1.enc.say", h, natsx.For(apikey.Gateway)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out map[string]any
	err = (&natsx.Client{NC: nc, Prefix: messages.DefaultPrefix, APIKey: key}).Request(ctx, "v1.enc.say", echoReq{Name: "x"}, &out)
	if !errors.Is(err, messages.ErrInternal) {
		t.Fatalf("err = %v, want internal", err)
	}
}
