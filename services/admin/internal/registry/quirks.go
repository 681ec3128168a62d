package registry

import (
	"github.com/nexus-broker/nexus/messages"
)

// validateQuirks checks an OAuth provider's quirks (messages.Quirks.Problems).
func validateQuirks(ps *problems, q *messages.Quirks) {
	if q == nil {
		return
	}
	for _, p := range q.Problems() {
		ps.add(p.Field, "%s", p.Message)
	}
}

// normalizeQuirks drops empty quirks, so that a provider that follows RFC
// 6749 has none.
func normalizeQuirks(p *messages.Provider) {
	q := p.Quirks
	if q == nil {
		return
	}
	if len(q.PermanentErrors) == 0 {
		q.PermanentErrors = nil
	}
	if len(q.ConfigFromToken) == 0 {
		q.ConfigFromToken = nil
	}
	if len(q.ConfigFromCallback) == 0 {
		q.ConfigFromCallback = nil
	}
	if q.PermanentErrors == nil && q.ExpiresInUnit == "" && q.TokenPath == "" && !q.OKField &&
		q.ConfigFromToken == nil && q.ConfigFromCallback == nil && q.KeepAliveSeconds == 0 {
		p.Quirks = nil
	}
}
