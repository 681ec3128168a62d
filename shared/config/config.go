// Package config reads a service's configuration from the environment and
// reports every problem at once, naming the variable.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Loader collects values and problems. Use its methods for each variable, then
// call Err once: it lists every problem found.
type Loader struct {
	lookup   func(string) (string, bool)
	problems []string
}

// New reads from the process environment.
func New() *Loader { return &Loader{lookup: os.LookupEnv} }

// FromMap reads from a map, for tests and for the all-in-one launcher.
func FromMap(m map[string]string) *Loader {
	return &Loader{lookup: func(k string) (string, bool) { v, ok := m[k]; return v, ok }}
}

// FromFunc reads through any lookup function.
func FromFunc(f func(string) (string, bool)) *Loader { return &Loader{lookup: f} }

func (l *Loader) get(name string) (string, bool) {
	v, ok := l.lookup(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// Problem records a problem found by the caller's own checks.
func (l *Loader) Problem(name, format string, args ...any) {
	l.problems = append(l.problems, name+": "+fmt.Sprintf(format, args...))
}

// String returns the variable or def when unset.
func (l *Loader) String(name, def string) string {
	if v, ok := l.get(name); ok {
		return v
	}
	return def
}

// Required returns the variable and records a problem when it is unset.
func (l *Loader) Required(name, what string) string {
	v, ok := l.get(name)
	if !ok {
		l.Problem(name, "is required (%s)", what)
	}
	return v
}

// Key32 reads a required 32-byte key given in standard or URL-safe base64.
// The key's value never appears in a problem.
func (l *Loader) Key32(name string) []byte {
	v, ok := l.get(name)
	if !ok {
		l.Problem(name, "is required (32 random bytes, base64; make one with: openssl rand -base64 32)")
		return nil
	}
	k, err := DecodeKey(v)
	if err != nil {
		l.Problem(name, "%v", err)
	}
	return k
}

// Keys32 reads an optional comma-separated list of 32-byte base64 keys.
func (l *Loader) Keys32(name string) [][]byte {
	v, ok := l.get(name)
	if !ok {
		return nil
	}
	var keys [][]byte
	for i, part := range strings.Split(v, ",") {
		k, err := DecodeKey(strings.TrimSpace(part))
		if err != nil {
			l.Problem(name, "entry %d: %v", i+1, err)
			continue
		}
		keys = append(keys, k)
	}
	return keys
}

// DecodeKey decodes a base64 (standard or URL-safe, padded or not) 32-byte key.
func DecodeKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != 32 {
				return nil, fmt.Errorf("must decode to 32 bytes, got %d", len(k))
			}
			return k, nil
		}
	}
	return nil, errors.New("is not valid base64")
}

// List reads a comma-separated list, dropping empty entries.
func (l *Loader) List(name string, def []string) []string {
	v, ok := l.get(name)
	if !ok {
		return def
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// URL reads an absolute URL with one of the given schemes.
func (l *Loader) URL(name, def string, schemes ...string) *url.URL {
	v := l.String(name, def)
	if v == "" {
		l.Problem(name, "is required")
		return nil
	}
	if p := URLProblem(v); p != "" {
		l.Problem(name, "is not a valid URL: %s", p)
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		l.Problem(name, "is not an absolute URL")
		return nil
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return u
		}
	}
	l.Problem(name, "scheme must be one of %v", schemes)
	return nil
}

// File reads an optional path to a file that must exist and be readable.
func (l *Loader) File(name string) string {
	v, ok := l.get(name)
	if !ok {
		return ""
	}
	f, err := os.Open(v)
	if err != nil {
		l.Problem(name, "cannot read %s: %v", v, errors.Unwrap(err))
		return v
	}
	f.Close()
	return v
}

// Duration reads a Go duration ("90s", "5m").
func (l *Loader) Duration(name string, def time.Duration) time.Duration {
	v, ok := l.get(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		l.Problem(name, "is not a duration such as 30s or 5m")
		return def
	}
	return d
}

// Int reads an integer no smaller than min.
func (l *Loader) Int(name string, def, min int) int {
	v, ok := l.get(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min {
		l.Problem(name, "must be an integer >= %d", min)
		return def
	}
	return n
}

// Err returns every problem found, one per line, or nil.
func (l *Loader) Err() error {
	if len(l.problems) == 0 {
		return nil
	}
	return fmt.Errorf("invalid configuration:\n  - %s", strings.Join(l.problems, "\n  - "))
}
