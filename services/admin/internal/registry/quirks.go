package registry

import (
	"github.com/nexus-broker/nexus/messages"
)

// validateQuirks checks an OAuth provider's quirks (messages.Quirks.Problems),
// and that a config request's URL follows the rule of provider URLs.
func validateQuirks(ps *problems, urls urlRule, q *messages.Quirks) {
	if q == nil {
		return
	}
	for _, p := range q.Problems() {
		ps.add(p.Field, "%s", p.Message)
	}
	if r := q.ConfigFromRequest; r != nil && r.URL != "" {
		if prob := urls.problem(r.URL); prob != "" {
			ps.add("quirks.config_from_request.url", "%s", prob)
		}
	}
}

// normalizeQuirks drops empty quirks, so that a provider that follows RFC
// 6749 has none.
func normalizeQuirks(p *messages.Provider) {
	if p.Quirks != nil && p.Quirks.IsZero() {
		p.Quirks = nil
	}
}
