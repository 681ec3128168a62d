package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Sentinels for errors.Is.
var (
	// ErrRefused: the guard refused to connect (a *RefusedError).
	ErrRefused = errors.New("egress refused")
	// ErrBodyTooLarge: a response body went past the cap (a *BodyTooLargeError).
	ErrBodyTooLarge = errors.New("response body too large")
)

// RefusedError says which host the guard would not connect to and why, in
// words an operator can act on. It is decided before any connection is
// made, so it is the same whether anything listens there or not.
type RefusedError struct {
	Host string     // as the URL names it
	Addr netip.Addr // the address it resolved to (Host itself for an IP)
	// What kind of refused address Addr is ("a private address (RFC
	// 1918)"); "" for a public address refused because the request is
	// plain http.
	What      string
	PlainHTTP bool
}

func (e *RefusedError) Error() string {
	_, err := netip.ParseAddr(strings.Trim(e.Host, "[]"))
	literal := err == nil
	subject := e.Host + " resolves to " + e.Addr.String() + ","
	switch {
	case literal && strings.Trim(e.Host, "[]") == e.Addr.String():
		subject = e.Host + " is"
	case literal: // ::ffff:10.0.0.5 is 10.0.0.5
		subject = e.Host + " is " + e.Addr.String() + ","
	}
	switch {
	case e.What == "a cloud metadata address":
		return fmt.Sprintf("%s %s, refused unless %s lists that address alone (%s/%d)",
			subject, e.What, Variable, e.Addr, e.Addr.BitLen())
	case e.What != "":
		return fmt.Sprintf("%s %s; add its network to %s to allow it", subject, e.What, Variable)
	case literal:
		return fmt.Sprintf("plain http to %s refused: %s does not list it; use https (plain http goes only to the networks listed there)",
			e.Host, Variable)
	default:
		return fmt.Sprintf("plain http to %s refused: it resolves to %s, which %s does not list; use https (plain http goes only to the networks listed there)",
			e.Host, e.Addr, Variable)
	}
}

// Is matches ErrRefused.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// BodyTooLargeError: a response body went past the cap. Reading stops
// there with this error rather than handing on a truncated document.
type BodyTooLargeError struct {
	Host  string
	Limit int64
}

func (e *BodyTooLargeError) Error() string {
	return fmt.Sprintf("the response from %s is larger than %s, the most the broker reads from a provider", e.Host, size(e.Limit))
}

// Is matches ErrBodyTooLarge.
func (e *BodyTooLargeError) Is(target error) bool { return target == ErrBodyTooLarge }

// bodyTooLargeText is what every BodyTooLargeError message contains.
const bodyTooLargeText = ", the most the broker reads from a provider"

// IsBodyTooLarge reports whether err is, or quotes, a *BodyTooLargeError.
// Libraries that read a body for the caller may flatten the error into
// their own text (x/oauth2 formats it with %v), losing the chain errors.Is
// follows; the message, which never holds a secret, still says it.
func IsBodyTooLarge(err error) bool {
	return err != nil && (errors.Is(err, ErrBodyTooLarge) || strings.Contains(err.Error(), bodyTooLargeText))
}

func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
