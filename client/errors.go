package client

import (
	"errors"
	"fmt"
	"time"

	"github.com/nexus-broker/nexus/messages"
)

// Error is the broker's answer that a request failed, with the contract's
// code (docs/ARCHITECTURE.md, section 4). Branch on it with errors.Is and the
// sentinels below, or read the code and the message with errors.As:
//
//	var e *client.Error
//	if errors.As(err, &e) && e.Code == messages.CodeRateLimited { wait(e.RetryAfter) }
//
// A request no service answered (no responder, or none before the context's
// deadline) is an Error with the code unavailable too; its cause
// (nats.ErrNoResponders, context.DeadlineExceeded) is in the chain.
type Error struct {
	// Subject is the request's subject relative to the prefix, e.g. "v1.tokens.get".
	Subject string
	Code    messages.ErrorCode
	// Message is the broker's words, fit to show the Gateway's operator.
	Message string
	// RetryAfter, on rate_limited, is how long to wait before the same
	// request can succeed.
	RetryAfter time.Duration

	cause error
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = string(e.Code)
	} else {
		msg = string(e.Code) + ": " + msg
	}
	if e.Subject == "" {
		return msg
	}
	return fmt.Sprintf("nexus %s: %s", e.Subject, msg)
}

// Is reports whether target is an *Error or a *messages.Error with the same
// code, so both client.ErrNotFound and messages.ErrNotFound match.
func (e *Error) Is(target error) bool {
	var ce *Error
	if errors.As(target, &ce) {
		return ce.Code == e.Code
	}
	var me *messages.Error
	if errors.As(target, &me) {
		return me.Code == e.Code
	}
	return false
}

// Unwrap is the transport's cause of an unanswered request, or nil.
func (e *Error) Unwrap() error { return e.cause }

// Sentinels, one per contract code, for errors.Is.
var (
	ErrInvalidRequest    = &Error{Code: messages.CodeInvalidRequest}
	ErrUnauthorized      = &Error{Code: messages.CodeUnauthorized}
	ErrForbidden         = &Error{Code: messages.CodeForbidden}
	ErrNotFound          = &Error{Code: messages.CodeNotFound}
	ErrConflict          = &Error{Code: messages.CodeConflict}
	ErrNotActive         = &Error{Code: messages.CodeNotActive}
	ErrAttentionRequired = &Error{Code: messages.CodeAttentionRequired}
	ErrRateLimited       = &Error{Code: messages.CodeRateLimited}
	ErrProviderError     = &Error{Code: messages.CodeProviderError}
	ErrUnavailable       = &Error{Code: messages.CodeUnavailable}
	ErrInternal          = &Error{Code: messages.CodeInternal}
)

// fromReply is the one place a broker's error body becomes an *Error.
func fromReply(subject string, body *messages.Error) *Error {
	return &Error{
		Subject:    subject,
		Code:       body.Code,
		Message:    body.Message,
		RetryAfter: time.Duration(body.RetryAfterSeconds) * time.Second,
	}
}

// unanswered is the Error of a request no service answered.
func unanswered(subject, why string, cause error) *Error {
	return &Error{Subject: subject, Code: messages.CodeUnavailable, Message: why, cause: cause}
}
