package provider

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/nexus-broker/nexus/messages"
)

// Providers bend RFC 6749 section 5 in ways x/oauth2 does not read: a
// Slack error is {"ok": false, "error": ...} on HTTP 200, its user token
// sits under "authed_user", some count expires_in in milliseconds, and
// x/oauth2 reads an expires_in of 0 as if there were none. normalizer
// rewrites each token response, as the provider's quirks describe, into
// the shape RFC 6749 gives it before x/oauth2 parses it, and notes what
// x/oauth2 does not keep (reading). The quirks are data
// (messages.Quirks), never code per provider.

// tokenFields are the members a token response's token object carries;
// with a TokenPath they are taken from that object, and none of them is
// ever kept as config.
var tokenFields = []string{"access_token", "refresh_token", "token_type", "expires_in", "scope", "refresh_token_expires_in", "refresh_expires_in", "id_token"}

// maxConfigValue bounds one config value taken from a response.
const maxConfigValue = 2048

// reading is what a token response said that x/oauth2 does not keep.
type reading struct {
	// expiresIn is expires_in in seconds when the response had one.
	expiresIn *int64
	config    map[string]string
}

type normalizer struct {
	base   http.RoundTripper
	quirks messages.Quirks
	got    *reading
}

func (n *normalizer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Accept") == "" {
		// GitHub answers a form body without it; every provider reads it.
		req = req.Clone(req.Context())
		req.Header.Set("Accept", "application/json")
	}
	resp, err := n.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err // the egress cap's error, which classify names
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch mt {
	case "application/x-www-form-urlencoded", "text/plain":
		// x/oauth2 reads these itself (GitHub without an Accept header).
		if vals, err := url.ParseQuery(string(body)); err == nil {
			m := make(map[string]any, len(vals))
			for k := range vals {
				m[k] = vals.Get(k)
			}
			n.read(m, m)
		}
	default:
		var root map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if dec.Decode(&root) == nil && root != nil {
			if out, status, ok := n.normalize(root, resp.StatusCode); ok {
				body, resp.StatusCode = out, status
				resp.Header.Set("Content-Type", "application/json")
			}
		}
	}
	resp.Header.Del("Content-Length")
	resp.ContentLength = int64(len(body))
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// normalize rewrites a JSON token response; ok is false when it is left as
// it came.
func (n *normalizer) normalize(root map[string]any, status int) (out []byte, newStatus int, ok bool) {
	q := n.quirks
	if q.OKField && status/100 == 2 {
		// Only an "ok" that is there and not true: a success that leaves
		// it out is still read as one.
		if v, present := root["ok"]; present && v != true {
			code, _ := root["error"].(string)
			if code == "" {
				code = "provider_error"
			}
			// A refusal, as RFC 6749 writes one: x/oauth2 then returns a
			// RetrieveError with the code, and classify decides.
			b, _ := json.Marshal(map[string]string{"error": code})
			return b, http.StatusBadRequest, true
		}
	}
	if status/100 != 2 {
		return nil, 0, false
	}
	tok := root
	if q.TokenPath != "" {
		nested, isObject := lookup(root, q.TokenPath).(map[string]any)
		if !isObject {
			nested = map[string]any{} // x/oauth2 then says no access_token came
		}
		tok = make(map[string]any, len(root))
		for k, v := range root {
			tok[k] = v
		}
		for _, k := range tokenFields {
			delete(tok, k) // never mix another token's fields in (Slack's bot token)
			if v, has := nested[k]; has {
				tok[k] = v
			}
		}
	}
	for _, k := range []string{"expires_in", "refresh_token_expires_in", "refresh_expires_in"} {
		v, has := tok[k]
		if !has {
			continue
		}
		secs, isNumber := seconds(v, q.ExpiresInUnit == "ms")
		if !isNumber {
			delete(tok, k) // unreadable: as if absent
			continue
		}
		tok[k] = secs
	}
	n.read(root, tok)
	b, err := json.Marshal(tok)
	if err != nil {
		return nil, 0, false
	}
	return b, status, true
}

// read notes expires_in from the token object and config from the root.
func (n *normalizer) read(root, tok map[string]any) {
	if v, has := tok["expires_in"]; has {
		if secs, ok := seconds(v, false); ok {
			n.got.expiresIn = &secs
		}
	}
	n.got.config = configValues(root, n.quirks.ConfigFromToken)
}

// maxLifetime bounds a lifetime read from a provider (ten years), so that a
// hostile number cannot overflow a time.Duration.
const maxLifetime = 10 * 365 * 24 * 3600

// seconds reads a lifetime given as a JSON number or a string of digits,
// in milliseconds when millis; negative values are not lifetimes.
func seconds(v any, millis bool) (int64, bool) {
	var f float64
	switch x := v.(type) {
	case json.Number:
		var err error
		if f, err = x.Float64(); err != nil {
			return 0, false
		}
	case float64:
		f = x
	case int64:
		f = float64(x)
	case string:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(x), 64); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	if millis {
		f /= 1000
	}
	if f < 0 || f != f {
		return 0, false
	}
	return int64(min(f, maxLifetime)), true
}

// lookup follows a dotted path of object members; a numeric segment
// indexes an array.
func lookup(root any, path string) any {
	cur := root
	for _, seg := range strings.Split(path, ".") {
		switch v := cur.(type) {
		case map[string]any:
			cur = v[seg]
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(v) {
				return nil
			}
			cur = v[i]
		default:
			return nil
		}
	}
	return cur
}

// configValues reads the values paths name from an answer: strings,
// numbers and booleans as text, at most maxConfigValue bytes each, never a
// path that names a token or a secret.
func configValues(root any, paths map[string]string) map[string]string {
	var out map[string]string
	for key, path := range paths {
		if secretPath(path) {
			continue
		}
		var s string
		switch v := lookup(root, path).(type) {
		case string:
			s = v
		case json.Number:
			s = v.String()
		case bool:
			s = strconv.FormatBool(v)
		}
		if s != "" && len(s) <= maxConfigValue {
			if out == nil {
				out = map[string]string{}
			}
			out[key] = s
		}
	}
	return out
}

// secretPath: a path whose last member is a token or a secret is never
// kept as config, whatever a registration says.
func secretPath(path string) bool {
	last := path[strings.LastIndex(path, ".")+1:]
	switch last {
	case "access_token", "refresh_token", "id_token", "code":
		return true
	}
	return strings.Contains(last, "secret") || strings.Contains(last, "password")
}
