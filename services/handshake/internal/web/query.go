package web

import (
	"errors"
	"net/url"
	"strings"
	"unicode"
)

// Limits on what the callback reads from its query.
const (
	maxQuery       = 8 << 10
	maxErrorCode   = 64
	maxDescription = 256
)

// callbackQuery is what a provider's redirect carries (RFC 6749 4.1.2,
// RFC 9207).
type callbackQuery struct {
	Code             string
	State            string
	Error            string // sanitised: [a-z0-9_.-], at most 64
	ErrorDescription string // sanitised: printable, at most 256 runes
	Iss              string
	HasIss           bool
}

var errQuery = errors.New("malformed callback query")

// parseCallbackQuery reads raw (the URL's RawQuery). A parameter given twice
// is refused (RFC 6749 3.1: parameters must not be repeated).
func parseCallbackQuery(raw string) (callbackQuery, error) {
	if len(raw) > maxQuery {
		return callbackQuery{}, errQuery
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		return callbackQuery{}, errQuery
	}
	for _, k := range []string{"code", "state", "error", "error_description", "iss"} {
		if len(v[k]) > 1 {
			return callbackQuery{}, errQuery
		}
	}
	q := callbackQuery{
		Code:             v.Get("code"),
		State:            v.Get("state"),
		Error:            sanitizeCode(v.Get("error")),
		ErrorDescription: sanitizeText(v.Get("error_description"), maxDescription),
		Iss:              v.Get("iss"),
		HasIss:           v.Has("iss"),
	}
	if v.Has("error") && q.Error == "" {
		q.Error = "provider_error"
	}
	return q, nil
}

// sanitizeCode keeps an error code to the characters RFC 6749 error codes use
// in practice, lower-cased.
func sanitizeCode(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if b.Len() >= maxErrorCode {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// sanitizeText drops control and invalid characters and truncates to n runes.
func sanitizeText(s string, n int) string {
	var b strings.Builder
	count := 0
	for _, r := range s {
		if count >= n {
			b.WriteString("...")
			break
		}
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			if unicode.IsSpace(r) {
				r = ' '
			} else {
				continue
			}
		}
		b.WriteRune(r)
		count++
	}
	return strings.TrimSpace(b.String())
}
