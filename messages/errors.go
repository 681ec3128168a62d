package messages

import (
	"errors"
	"fmt"
)

// ErrorCode is the contract's error code, carried in every error reply.
type ErrorCode string

const (
	CodeRateLimited       ErrorCode = "rate_limited"
	CodeInvalidRequest    ErrorCode = "invalid_request"
	CodeUnauthorized      ErrorCode = "unauthorized"
	CodeForbidden         ErrorCode = "forbidden"
	CodeNotFound          ErrorCode = "not_found"
	CodeConflict          ErrorCode = "conflict"
	CodeNotActive         ErrorCode = "not_active"
	CodeAttentionRequired ErrorCode = "attention_required"
	CodeProviderError     ErrorCode = "provider_error"
	CodeUnavailable       ErrorCode = "unavailable"
	CodeInternal          ErrorCode = "internal"
)

// ErrorCodes lists every error code (the JSON Schemas' enum, clients' sentinels).
var ErrorCodes = []ErrorCode{CodeInvalidRequest, CodeUnauthorized, CodeForbidden, CodeNotFound, CodeConflict, CodeNotActive, CodeAttentionRequired, CodeRateLimited, CodeProviderError, CodeUnavailable, CodeInternal}

// Status is the HTTP-like status that goes in the Nats-Service-Error-Code header.
func (c ErrorCode) Status() int {
	switch c {
	case CodeRateLimited:
		return 429
	case CodeInvalidRequest:
		return 400
	case CodeUnauthorized:
		return 401
	case CodeForbidden:
		return 403
	case CodeNotFound:
		return 404
	case CodeConflict, CodeNotActive, CodeAttentionRequired:
		return 409
	case CodeProviderError:
		return 502
	case CodeUnavailable:
		return 503
	default:
		return 500
	}
}

// Error is the body of an error reply: {"error":{"code":..., "message":...}}.
// It is also a Go error, so clients can branch with errors.Is(err, messages.ErrNotFound).
type Error struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
	// RetryAfterSeconds, on rate_limited, is how long to wait before the
	// same request can succeed.
	RetryAfterSeconds int `json:"retry_after_seconds,omitempty"`
}

// ErrorBody wraps Error as it travels on the wire.
type ErrorBody struct {
	Error *Error `json:"error"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return t.Code == e.Code
}

// Errorf builds an *Error with a code and a message a caller may show.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Sentinels for errors.Is.
var (
	ErrRateLimited       = &Error{Code: CodeRateLimited}
	ErrInvalidRequest    = &Error{Code: CodeInvalidRequest}
	ErrUnauthorized      = &Error{Code: CodeUnauthorized}
	ErrForbidden         = &Error{Code: CodeForbidden}
	ErrNotFound          = &Error{Code: CodeNotFound}
	ErrConflict          = &Error{Code: CodeConflict}
	ErrNotActive         = &Error{Code: CodeNotActive}
	ErrAttentionRequired = &Error{Code: CodeAttentionRequired}
	ErrProviderError     = &Error{Code: CodeProviderError}
	ErrUnavailable       = &Error{Code: CodeUnavailable}
	ErrInternal          = &Error{Code: CodeInternal}
)
