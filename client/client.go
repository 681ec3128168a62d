// Package client is a Go client for the Gateway: one typed method per
// subject of the broker's contract the Gateway may call, errors as the
// contract's codes, retries of unavailable answers with backoff, and a
// durable consumer of the connections' lifecycle events.
//
// Requests and replies are the types of the messages module; Gateways in
// other languages read the same contract as JSON Schemas in
// messages/schema (index.json names each subject's request and reply).
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/nexus-broker/nexus/messages"
)

// Client calls the broker as the Gateway. It is safe for concurrent use.
type Client struct {
	nc      *nats.Conn
	apiKey  string
	prefix  string
	timeout time.Duration
	// Backoff between attempts; retry false makes every call one attempt.
	initial, max time.Duration
	retry        bool
	notify       func(subject string, err error, wait time.Duration)
}

// Option configures a Client.
type Option func(*Client)

// WithPrefix sets the first token of every subject, the broker's
// NEXUS_SUBJECT_PREFIX (messages.DefaultPrefix, "nexus", when not given).
func WithPrefix(prefix string) Option { return func(c *Client) { c.prefix = prefix } }

// WithTimeout bounds a call whose context has no deadline, retries
// included (default 10s). A context's own deadline always wins.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithBackOff sets the exponential backoff between attempts of a request
// answered unavailable: the first wait about initial, then doubling up to
// max, each randomised by half (defaults 100ms and 2s).
func WithBackOff(initial, max time.Duration) Option {
	return func(c *Client) { c.initial, c.max = initial, max }
}

// WithoutRetry makes every call a single attempt.
func WithoutRetry() Option {
	return func(c *Client) { c.retry = false }
}

// WithRetryNotify calls f before each wait for another attempt, with the
// unavailable error the last attempt got: for the Gateway's logs and
// metrics.
func WithRetryNotify(f func(subject string, err error, wait time.Duration)) Option {
	return func(c *Client) { c.notify = f }
}

// New returns a Client that presents apiKey (the broker's API_KEY) on every
// request over nc. Under the broker's NATS permissions nc must be connected
// as the Gateway's user with its inbox prefix:
//
//	nats.Connect(url, nats.UserInfo("gateway", password), nats.CustomInboxPrefix("_INBOX.gateway"))
func New(nc *nats.Conn, apiKey string, opts ...Option) (*Client, error) {
	c := &Client{nc: nc, apiKey: apiKey, prefix: messages.DefaultPrefix, timeout: 10 * time.Second, initial: 100 * time.Millisecond, max: 2 * time.Second, retry: true}
	for _, o := range opts {
		o(c)
	}
	var problems []string
	if nc == nil {
		problems = append(problems, "no NATS connection")
	}
	if apiKey == "" {
		problems = append(problems, "no API key")
	}
	if c.prefix == "" || strings.ContainsAny(c.prefix, " \t\r\n*>") || strings.HasPrefix(c.prefix, ".") || strings.HasSuffix(c.prefix, ".") {
		problems = append(problems, fmt.Sprintf("prefix %q is not a subject prefix", c.prefix))
	}
	if c.timeout <= 0 {
		problems = append(problems, "the timeout must be positive")
	}
	if c.initial <= 0 || c.max < c.initial {
		problems = append(problems, fmt.Sprintf("the backoff must start above zero and not exceed its maximum (%s, %s)", c.initial, c.max))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("nexus client: %s", strings.Join(problems, "; "))
	}
	return c, nil
}

// backoff is a call's schedule of waits between attempts.
func (c *Client) backoff() backoff.BackOff {
	if !c.retry {
		return &backoff.StopBackOff{}
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.Multiplier = c.initial, c.max, 2 // doubling, as WithBackOff says
	return b
}

// call sends req to subject, retrying while the answer is unavailable and
// the next attempt can start before the deadline, and decodes the reply
// into reply. A retry never waits past the context's deadline: when the
// next wait would end after it, the last unavailable error is returned at
// once.
func (c *Client) call(ctx context.Context, subject string, req, reply any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("nexus %s: encode request: %w", subject, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	b := c.backoff()
	for {
		err := c.attempt(ctx, subject, body, reply)
		if !errors.Is(err, ErrUnavailable) {
			return err
		}
		wait := b.NextBackOff()
		if wait == backoff.Stop || !startsBefore(ctx, wait) {
			return err
		}
		if c.notify != nil {
			c.notify(subject, err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err // cancelled while waiting: the last answer is the news
		}
	}
}

// startsBefore reports whether an attempt after wait starts before ctx's deadline.
func startsBefore(ctx context.Context, wait time.Duration) bool {
	deadline, _ := ctx.Deadline()
	return time.Now().Add(wait).Before(deadline)
}

// attempt is one request and its decoded reply.
func (c *Client) attempt(ctx context.Context, subject string, body []byte, reply any) error {
	msg := nats.NewMsg(messages.Subject(c.prefix, subject))
	msg.Data = body
	msg.Header.Set(messages.HeaderAPIKey, c.apiKey)
	// The caller's trace, if it has one, goes on in W3C traceparent (the
	// broker's spans join it); with OpenTelemetry not set up this writes
	// nothing.
	// Keys as the propagator writes them (traceparent, lower case): NATS
	// headers keep their case.
	trace := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, trace)
	for k, v := range trace {
		msg.Header.Set(k, v)
	}
	resp, err := c.nc.RequestMsgWithContext(ctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return unanswered(subject, "no service is answering", err)
	case errors.Is(err, context.DeadlineExceeded):
		return unanswered(subject, "no answer before the deadline", err)
	case err != nil:
		return fmt.Errorf("nexus %s: %w", subject, err)
	}
	return decode(subject, resp, reply)
}

// decode turns a reply into reply, or into an *Error when it is an error
// reply (the NATS micro convention: the Nats-Service-Error-Code header, and
// the body {"error":{"code","message"}}).
func decode(subject string, resp *nats.Msg, reply any) error {
	if resp.Header.Get(messages.HeaderErrorCode) != "" {
		var body messages.ErrorBody
		if err := json.Unmarshal(resp.Data, &body); err != nil || body.Error == nil || body.Error.Code == "" {
			return &Error{Subject: subject, Code: messages.CodeInternal, Message: resp.Header.Get(messages.HeaderError)}
		}
		return fromReply(subject, body.Error)
	}
	if err := json.Unmarshal(resp.Data, reply); err != nil {
		return fmt.Errorf("nexus %s: decode reply: %w", subject, err)
	}
	return nil
}
