// Package returnurl decides where the browser may be sent back to after a
// consent: only to URLs under an entry of ALLOWED_RETURN_URLS.
package returnurl

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrNotAllowed: the return URL is malformed or under no allowlist entry.
var ErrNotAllowed = errors.New("return_url is not allowed")

// maxLen bounds a return URL.
const maxLen = 2048

// entry is one normalised allowlist entry.
type entry struct {
	scheme, host, port, path string
}

// Allowlist is a parsed ALLOWED_RETURN_URLS.
type Allowlist struct {
	entries []entry
}

// Parse builds an allowlist. Each entry must be an absolute http(s) URL with
// no userinfo, query or fragment. Every bad entry is reported.
func Parse(raw []string) (*Allowlist, error) {
	a := &Allowlist{}
	var errs []error
	for i, r := range raw {
		e, err := parseEntry(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("entry %d (%q): %w", i+1, r, err))
			continue
		}
		a.entries = append(a.entries, e)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(a.entries) == 0 {
		return nil, errors.New("no entries")
	}
	return a, nil
}

func parseEntry(raw string) (entry, error) {
	u, err := parseStrict(raw)
	if err != nil {
		return entry{}, err
	}
	if u.RawQuery != "" || u.ForceQuery {
		return entry{}, errors.New("must not have a query")
	}
	return entry{scheme: u.Scheme, host: strings.ToLower(u.Hostname()), port: port(u), path: u.Path}, nil
}

// Check returns the parsed return URL when raw is allowed, ErrNotAllowed
// (wrapped with a reason a caller may show) otherwise.
func (a *Allowlist) Check(raw string) (*url.URL, error) {
	u, err := parseStrict(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotAllowed, err)
	}
	host, p := strings.ToLower(u.Hostname()), port(u)
	for _, e := range a.entries {
		if u.Scheme == e.scheme && host == e.host && p == e.port && underPath(u.Path, e.path) {
			return u, nil
		}
	}
	return nil, fmt.Errorf("%w: it is not under any entry of ALLOWED_RETURN_URLS", ErrNotAllowed)
}

// parseStrict parses an absolute http(s) URL, refusing everything browsers
// and servers might read differently: userinfo, fragments, backslashes,
// control characters, percent-encoding in the authority, and encoded or
// literal dot segments and slashes in the path.
func parseStrict(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("is empty")
	}
	if len(raw) > maxLen {
		return nil, fmt.Errorf("is longer than %d characters", maxLen)
	}
	for _, r := range raw {
		if r <= 0x20 || r == 0x7f || r == '\\' || r > 0x7e {
			return nil, errors.New("contains a space, control, backslash or non-ASCII character")
		}
	}
	if strings.Contains(raw, "#") {
		return nil, errors.New("must not have a fragment")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("is not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errors.New("must be an absolute http or https URL")
	}
	if u.Opaque != "" || u.Host == "" || !strings.HasPrefix(raw[len(u.Scheme)+1:], "//") {
		return nil, errors.New("must be an absolute http or https URL")
	}
	if u.User != nil || strings.Contains(authority(raw, u.Scheme), "@") {
		return nil, errors.New("must not carry a user name or password")
	}
	if strings.Contains(authority(raw, u.Scheme), "%") {
		return nil, errors.New("must not percent-encode the host")
	}
	if u.Hostname() == "" {
		return nil, errors.New("has no host")
	}
	if u.Path == "" {
		u.Path = "/"
	}
	ep := strings.ToLower(u.EscapedPath())
	for _, bad := range []string{"%2e", "%2f", "%5c", "%00"} {
		if strings.Contains(ep, bad) {
			return nil, errors.New("must not percent-encode dots or slashes in the path")
		}
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return nil, errors.New("must not have . or .. path segments")
		}
	}
	return u, nil
}

// authority is the raw text between "scheme://" and the next "/", "?" or end.
func authority(raw, scheme string) string {
	rest := strings.TrimPrefix(raw[len(scheme)+1:], "//")
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// port is u's port, or its scheme's default.
func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// underPath reports whether p is entry or below it at a "/" boundary. An
// entry of "/" allows every path.
func underPath(p, entry string) bool {
	if entry == "" || entry == "/" {
		return true
	}
	if p == entry {
		return true
	}
	if !strings.HasSuffix(entry, "/") {
		entry += "/"
	}
	return strings.HasPrefix(p, entry)
}
