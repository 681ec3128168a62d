package config

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Connection URLs (NATS_URL, DATABASE_URL, REDIS_URL) carry passwords, and
// the libraries that read them quote the URL, or pieces of it, in their
// errors: url.Parse's error holds the whole URL, and a password with an
// unencoded "/" or "#" ends up as a "port" or a "database" in the next
// message. The helpers here describe and print such URLs without their
// userinfo, so that no error path can show a password.

// mask replaces a password (or a NATS token) wherever a URL is shown.
const mask = "xxxxx"

// RedactURL hides the password of every URL in a comma-separated list
// (NATS accepts several servers), keeping the user name and hosts. A lone
// user name is hidden too: NATS reads it as a token. A URL that does not
// parse cleanly loses its whole userinfo. Password query parameters are
// hidden as well.
func RedactURL(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		parts[i] = redactOne(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

// queryPassword is a password URL query parameter (pgx reads password and
// sslpassword there).
var queryPassword = regexp.MustCompile(`(?i)([?&](?:ssl)?password=)[^&]*`)

func redactOne(raw string) string {
	return queryPassword.ReplaceAllString(redactUserinfo(raw), "${1}"+mask)
}

func redactUserinfo(raw string) string {
	scheme, _, host, hasUser := splitUserinfo(raw)
	u, err := url.Parse(raw)
	if err != nil || scheme == "" || (hasUser && u.User == nil) || strayAt(u) {
		if !hasUser {
			return raw // no "@": there is no userinfo to hide
		}
		return scheme + mask + "@" + host
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), mask)
		} else if u.User.Username() != "" {
			u.User = url.User(mask)
		}
	}
	return u.String()
}

// strayAt reports an "@" url.Parse did not read as the end of the userinfo:
// a password with an unencoded "/", "?" or "#" moves it into the path,
// query or fragment, and the password's first part into the host.
func strayAt(u *url.URL) bool {
	return strings.Contains(u.Opaque+u.Path+u.RawQuery+u.Fragment, "@")
}

// splitUserinfo cuts raw into the scheme with its "://" (or ""), the
// userinfo and the rest, at the last "@". A password comes before the "@"
// that ends it, so whatever the password holds, nothing of it is in host.
func splitUserinfo(raw string) (scheme, userinfo, host string, ok bool) {
	after := raw
	if i := strings.Index(raw, "://"); i >= 0 {
		scheme, after = raw[:i+3], raw[i+3:]
	}
	at := strings.LastIndex(after, "@")
	if at < 0 {
		return scheme, "", after, false
	}
	return scheme, after[:at], after[at+1:], true
}

// URLProblem says, without quoting the user name or password, why raw is
// not a URL that url.Parse reads as its author meant, or returns "". The
// usual problem is a password with a character that must be
// percent-encoded: "/", "#", "?", "%", a space.
func URLProblem(raw string) string {
	scheme, userinfo, host, hasUser := splitUserinfo(raw)
	check := raw
	if hasUser {
		if p := userinfoProblem(userinfo); p != "" {
			return p
		}
		check = scheme + mask + "@" + host
	}
	if _, err := url.Parse(check); err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err.Error()
		}
		return "is not a URL"
	}
	return ""
}

// userinfoProblem checks the user name and password are percent-encoded as
// a URL's userinfo must be (RFC 3986 section 3.2.1).
func userinfoProblem(userinfo string) string {
	user, pass, hasPass := strings.Cut(userinfo, ":")
	var out []string
	if p := encodingProblem(user); p != "" {
		out = append(out, "the user name "+p)
	}
	if hasPass {
		if p := encodingProblem(pass); p != "" {
			out = append(out, "the password "+p)
		}
	}
	return strings.Join(out, "; ")
}

// encodingProblem names the characters of s that must be percent-encoded
// in a userinfo. Only punctuation is named; anything else is described.
func encodingProblem(s string) string {
	var (
		chars   []string
		escapes []string
		other   bool
		badPct  bool
	)
	seen := map[rune]bool{}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("-._~!$&'()*+,;=:@", r):
			// Allowed by url.Parse (":" only in the password, which Cut
			// already split off; "@" because the last one ends the userinfo).
		case r == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				badPct = true
			}
		case r > ' ' && r < 0x7f || r == ' ':
			if !seen[r] {
				seen[r] = true
				chars = append(chars, fmt.Sprintf("%q", string(r)))
				escapes = append(escapes, fmt.Sprintf("%%%02X", r))
			}
		default:
			other = true
		}
	}
	var out []string
	if len(chars) > 0 {
		out = append(out, fmt.Sprintf("contains %s, which must be percent-encoded (%s)", strings.Join(chars, ", "), strings.Join(escapes, ", ")))
	}
	if badPct {
		out = append(out, `contains "%" not followed by two hex digits (a literal "%" is %25)`)
	}
	if other {
		out = append(out, "contains a control or non-ASCII character, which must be percent-encoded (as UTF-8 bytes)")
	}
	return strings.Join(out, " and ")
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// NATSServers splits a NATS_URL as the NATS client does: comma-separated,
// blanks dropped, "nats://" assumed when a server has no scheme.
func NATSServers(list string) []string {
	var out []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		out = append(out, s)
	}
	return out
}

// NATSURLProblems checks every server of a NATS_URL, one problem per bad
// server, each naming the server without its password.
func NATSURLProblems(list string) []string {
	var out []string
	for _, s := range NATSServers(list) {
		if p := URLProblem(s); p != "" {
			out = append(out, RedactURL(s)+": "+p)
		}
	}
	return out
}

// URLSecrets lists the passwords (and NATS tokens: a lone user name) of the
// URLs in a comma-separated list, as written and percent-decoded, for
// HideSecrets.
func URLSecrets(list string) []string {
	var out []string
	for _, s := range strings.Split(list, ",") {
		_, userinfo, _, ok := splitUserinfo(strings.TrimSpace(s))
		if !ok {
			continue
		}
		user, pass, hasPass := strings.Cut(userinfo, ":")
		secret := pass
		if !hasPass {
			secret = user
		}
		if secret == "" {
			continue
		}
		out = append(out, secret)
		if dec, err := url.PathUnescape(secret); err == nil && dec != secret {
			out = append(out, dec)
		}
	}
	return out
}

// HideSecrets returns err with every occurrence of each secret in its text
// replaced by xxxxx; errors.Is and errors.As still see err. It is for the
// errors of libraries that were handed a password, so that a message they
// build cannot carry it. nil stays nil.
func HideSecrets(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	return &hiddenError{msg: hide(err.Error(), secrets), err: err}
}

func hide(s string, secrets []string) string {
	// Longest first, so a secret that contains another is replaced whole.
	sorted := slices.Clone(secrets)
	slices.SortFunc(sorted, func(a, b string) int { return len(b) - len(a) })
	for _, sec := range sorted {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, mask)
		}
	}
	return s
}

type hiddenError struct {
	msg string
	err error
}

func (e *hiddenError) Error() string { return e.msg }
func (e *hiddenError) Unwrap() error { return e.err }
