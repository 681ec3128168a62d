package messages

// Limits on the scopes a consent may ask for.
const (
	MaxScopes   = 100
	MaxScopeLen = 256
)

// ValidScope reports whether s is an RFC 6749 scope-token
// (1*( %x21 / %x23-5B / %x5D-7E )) of at most MaxScopeLen bytes.
func ValidScope(s string) bool {
	if s == "" || len(s) > MaxScopeLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
