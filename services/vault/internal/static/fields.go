package static

import (
	"fmt"

	"github.com/nexus-broker/nexus/messages"
)

// Select returns the credentials the strategy uses, and nothing else: what
// the Gateway is given. Every field the strategy needs must be a non-empty
// string (the Gateway applies strings); an optional field (an AWS session
// token) is left out when absent or empty. missing names each needed field
// that is absent or not text; when there are any, used must not be served.
func Select(st messages.Strategy, creds map[string]any) (used map[string]any, missing []string) {
	fields := st.Fields()
	used = make(map[string]any, len(fields))
	for _, f := range fields {
		switch v := creds[f.Name].(type) {
		case string:
			if v != "" {
				used[f.Name] = v
			} else if !f.Optional {
				missing = append(missing, f.Name)
			}
		case nil:
			if !f.Optional {
				missing = append(missing, f.Name)
			}
		default:
			missing = append(missing, f.Name) // present, so it must be usable, optional or not
		}
	}
	return used, missing
}

// Check is Select for new credentials: an *InvalidError naming each field
// the strategy cannot use, and why.
func Check(st messages.Strategy, creds map[string]any) error {
	_, missing := Select(st, creds)
	problems := make([]string, 0, len(missing))
	for _, name := range missing {
		switch creds[name].(type) {
		case nil, string:
			problems = append(problems, fmt.Sprintf("credentials.%s is required by the %s strategy", name, st.Type))
		default:
			problems = append(problems, fmt.Sprintf("credentials.%s must be a string (the %s strategy applies it as text)", name, st.Type))
		}
	}
	return invalid(problems)
}
