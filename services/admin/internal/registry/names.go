package registry

import "strings"

// MaxNameLen bounds names and aliases.
const MaxNameLen = 64

// nameProblem says what is wrong with a provider name or alias, or "" when
// it is fine: 1-64 of a-z, 0-9, '-', '_', '.', and not starting with the id
// prefix (names, aliases and ids share one namespace).
func nameProblem(n string) string {
	if n == "" {
		return "is required"
	}
	if len(n) > MaxNameLen {
		return "must be at most 64 characters"
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return "may contain only lowercase letters, digits, '-', '_' and '.'"
		}
	}
	if strings.HasPrefix(n, IDPrefix) {
		return "must not start with " + IDPrefix + " (reserved for provider ids)"
	}
	return ""
}
