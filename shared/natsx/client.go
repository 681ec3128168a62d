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

// Request sends req (JSON) to prefix+"."+subject and decodes the reply into
// reply. An error reply comes back as a *messages.Error; no responder as
// messages.ErrUnavailable.
func (c *Client) Request(ctx context.Context, subject string, req, reply any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode %s request: %w", subject, err)
	}
	msg := nats.NewMsg(messages.Subject(c.Prefix, subject))
	msg.Data = body
	if c.APIKey != "" {
		msg.Header.Set(messages.HeaderAPIKey, c.APIKey)
	}
	resp, err := c.NC.RequestMsgWithContext(ctx, msg)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			return messages.Errorf(messages.CodeUnavailable, "%s did not answer", subject)
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
