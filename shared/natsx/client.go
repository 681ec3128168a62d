package natsx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nexus-broker/nexus/messages"
)

// Client calls other services' request/reply subjects with an API key.
type Client struct {
	NC     *nats.Conn
	Prefix string
	APIKey string
}

// ErrNoAnswer is in the chain of Request's error when no reply came (no
// responder, or none in time), as opposed to an error the service
// answered: a caller may then tell a service that died from one that said
// unavailable.
var ErrNoAnswer = errors.New("no answer")

// noAnswerError is messages.ErrUnavailable that is also ErrNoAnswer.
type noAnswerError struct{ err *messages.Error }

func (e noAnswerError) Error() string   { return e.err.Error() }
func (e noAnswerError) Unwrap() []error { return []error{e.err, ErrNoAnswer} }

// Request sends req (JSON) to prefix+"."+subject and decodes the reply into
// reply. An error reply comes back as a *messages.Error; no responder, or
// no reply in time, as messages.ErrUnavailable and ErrNoAnswer. With tracing
// on, the request is a span and carries its trace context in its headers.
func (c *Client) Request(ctx context.Context, subject string, req, reply any) (err error) {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode %s request: %w", subject, err)
	}
	msg := nats.NewMsg(messages.Subject(c.Prefix, subject))
	msg.Data = body
	if c.APIKey != "" {
		msg.Header.Set(messages.HeaderAPIKey, c.APIKey)
	}
	ctx, span := startRequest(ctx, msg.Subject, msg.Header)
	if span != nil {
		defer func() { endSpan(span, "", errorCode(err)) }()
	}
	return c.exchange(ctx, subject, msg, reply)
}

// errorCode is err's contract code for a span: "" for none, internal for
// an error that is not the contract's.
func errorCode(err error) string {
	var me *messages.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &me):
		return string(me.Code)
	default:
		return string(messages.CodeInternal)
	}
}

// exchange sends msg and reads the reply.
func (c *Client) exchange(ctx context.Context, subject string, msg *nats.Msg, reply any) error {
	resp, err := c.NC.RequestMsgWithContext(ctx, msg)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			return noAnswerError{messages.Errorf(messages.CodeUnavailable, "%s did not answer", subject)}
		}
		return fmt.Errorf("%s: %w", subject, err)
	}
	return DecodeReply(resp, reply)
}

// RequestWithin is Request bounded by d as well as by ctx; d <= 0 means
// fallback.
func (c *Client) RequestWithin(ctx context.Context, d, fallback time.Duration, subject string, req, reply any) error {
	if d <= 0 {
		d = fallback
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return c.Request(ctx, subject, req, reply)
}

// DecodeReply turns a reply into either the decoded value or a *messages.Error.
func DecodeReply(resp *nats.Msg, reply any) error {
	if resp.Header.Get(messages.HeaderErrorCode) != "" {
		var body messages.ErrorBody
		if err := json.Unmarshal(resp.Data, &body); err == nil && body.Error != nil {
			return body.Error
		}
		return &messages.Error{Code: messages.CodeInternal, Message: resp.Header.Get(messages.HeaderError)}
	}
	if reply == nil {
		return nil
	}
	if err := json.Unmarshal(resp.Data, reply); err != nil {
		return fmt.Errorf("decode reply: %w", err)
	}
	return nil
}
