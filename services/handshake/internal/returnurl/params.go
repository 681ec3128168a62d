package returnurl

import (
	"net/url"
	"strings"
)

// WithParams returns u with params added to its query. The existing query is
// kept as it was, except for pairs whose key params sets, which params
// replace; u itself is not changed.
func WithParams(u *url.URL, params url.Values) string {
	out := *u
	var kept []string
	if out.RawQuery != "" {
		for _, pair := range strings.Split(out.RawQuery, "&") {
			k, _, _ := strings.Cut(pair, "=")
			if uk, err := url.QueryUnescape(k); err == nil {
				if _, ours := params[uk]; ours {
					continue
				}
			}
			if pair != "" {
				kept = append(kept, pair)
			}
		}
	}
	if enc := params.Encode(); enc != "" {
		kept = append(kept, enc)
	}
	out.RawQuery = strings.Join(kept, "&")
	out.ForceQuery = false
	return out.String()
}
