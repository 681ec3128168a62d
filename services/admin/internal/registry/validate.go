package registry

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nexus-broker/nexus/messages"
)

// brokerParams are authorization request parameters the broker sets itself;
// a provider's authorization_params may not override them.
var brokerParams = []string{"state", "nonce", "code_challenge", "code_challenge_method", "redirect_uri", "client_id", "response_type", "scope"}

// problems collects every problem of a document, so one reply lists them
// all, in the order of the document's fields.
type problems []problem

type problem struct {
	field   string // the member it is about: "name", "aliases[1]", "strategy.config"; "" for an unknown member
	text    string // what the reply says, naming the field
	unread  bool   // the member's value could not be read (a wrong type)
	unknown bool   // the member is not a field of the document
}

// add records a problem of field, as "field: <message>".
func (ps *problems) add(field, format string, args ...any) {
	*ps = append(*ps, problem{field: field, text: field + ": " + fmt.Sprintf(format, args...)})
}

// addText records a problem of field whose text already names it (the
// strategy's own messages, discovery's).
func (ps *problems) addText(field, text string) {
	*ps = append(*ps, problem{field: field, text: text})
}

// err is the invalid_request listing every problem, or nil: unknown members
// first, in the order sent, then by the document's field order. A member
// whose value could not be read is reported for that alone, not also for
// what validating its zero value finds.
func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	unread := map[string]bool{}
	for _, p := range ps {
		if p.unread {
			unread[topField(p.field)] = true
		}
	}
	kept := make(problems, 0, len(ps))
	for _, p := range ps {
		if p.unread || p.unknown || !unread[topField(p.field)] {
			kept = append(kept, p)
		}
	}
	slices.SortStableFunc(kept, func(a, b problem) int { return a.rank() - b.rank() })
	return messages.Errorf(messages.CodeInvalidRequest, "invalid provider: %s", strings.Join(kept.texts(), "; "))
}

// texts are the problems' texts in the order recorded.
func (ps problems) texts() []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.text
	}
	return out
}

// rank orders problems: unknown members, then the document's fields in
// order, then anything else (a list request's limit or cursor).
func (p problem) rank() int {
	if p.unknown {
		return -1
	}
	if i := slices.Index(documentFields, topField(p.field)); i >= 0 {
		return i
	}
	return len(documentFields)
}

// topField is the document member a field path is in: "strategy" for
// "strategy.config.header", "aliases" for "aliases[1]".
func topField(path string) string {
	if i := strings.IndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return path
}

// normalize fills defaults: empty lists instead of null, client_secret_basic
// for OAuth types. (Aliases come back from the store sorted.)
func normalize(p *messages.Provider) {
	if p.Aliases == nil {
		p.Aliases = []string{}
	}
	if p.Scopes == nil {
		p.Scopes = []string{}
	}
	if len(p.AuthorizationParams) == 0 {
		p.AuthorizationParams = nil
	}
	if len(p.Params) == 0 {
		p.Params = nil
	}
	normalizeQuirks(p)
	if isOAuth(p.Type) && p.ClientAuthMethod == "" {
		p.ClientAuthMethod = messages.ClientSecretBasic
	}
}

func isOAuth(t messages.ProviderType) bool {
	return t == messages.ProviderOIDC || t == messages.ProviderOAuth2
}

// validate checks a normalized document. newSecret: the request carries a
// client secret; heldSecret: the vault already holds one. discoveryFailed
// suppresses "is required" for the fields discovery would have filled.
func validate(p messages.Provider, urls urlRule, newSecret, heldSecret, discoveryFailed bool) problems {
	var ps problems
	if prob := nameProblem(p.Name); prob != "" {
		ps.add("name", "%s", prob)
	}
	seen := map[string]bool{}
	for i, a := range p.Aliases {
		switch {
		case nameProblem(a) != "":
			ps.add(fmt.Sprintf("aliases[%d]", i), "%s", nameProblem(a))
		case a == p.Name:
			ps.add("aliases", "%q is the provider's own name", a)
		case seen[a]:
			ps.add("aliases", "%q is listed twice", a)
		}
		seen[a] = true
	}
	if p.Template == "" && len(p.Params) > 0 {
		ps.add("params", "are the values of a catalog template's placeholders: give template too")
	}
	switch p.Type {
	case messages.ProviderOIDC, messages.ProviderOAuth2:
		validateOAuth(&ps, p, urls, newSecret, heldSecret, discoveryFailed)
	case messages.ProviderStatic:
		validateStatic(&ps, p, urls, newSecret)
	case "":
		ps.add("type", "is required (oidc, oauth2 or static)")
	default:
		ps.add("type", "must be oidc, oauth2 or static")
	}
	return ps
}

func validateOAuth(ps *problems, p messages.Provider, urls urlRule, newSecret, heldSecret, discoveryFailed bool) {
	oidc := p.Type == messages.ProviderOIDC
	issuerOK := true
	switch {
	case p.Issuer == "" && oidc:
		ps.add("issuer", "is required for oidc providers")
		issuerOK = false
	case p.Issuer != "":
		if prob := urls.issuerProblem(p.Issuer); prob != "" {
			ps.add("issuer", "%s", prob)
			issuerOK = false
		}
	}
	// For oidc, a missing endpoint is discovery's fault, already reported.
	discovered := oidc && (!issuerOK || discoveryFailed)
	for _, f := range []struct {
		name, value string
		required    bool
	}{
		{"authorization_endpoint", p.AuthorizationEndpoint, true},
		{"token_endpoint", p.TokenEndpoint, true},
		{"revocation_endpoint", p.RevocationEndpoint, false},
		{"jwks_uri", p.JWKSURI, oidc},
	} {
		switch {
		case f.value == "" && f.required && !discovered:
			ps.add(f.name, "is required")
		case f.value != "":
			if prob := urls.problem(f.value); prob != "" {
				ps.add(f.name, "%s", prob)
			}
		}
	}
	if p.ClientID == "" {
		ps.add("client_id", "is required")
	}
	if !newSecret && !heldSecret {
		ps.add("client_secret", "is required")
	}
	if p.ClientAuthMethod != messages.ClientSecretBasic && p.ClientAuthMethod != messages.ClientSecretPost {
		ps.add("client_auth_method", "must be %s or %s", messages.ClientSecretBasic, messages.ClientSecretPost)
	}
	for i, s := range p.Scopes {
		if !validScope(s) {
			ps.add(fmt.Sprintf("scopes[%d]", i), "is not a valid scope token")
		}
	}
	keys := make([]string, 0, len(p.AuthorizationParams))
	for k := range p.AuthorizationParams {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch {
		case k == "":
			ps.add("authorization_params", "a parameter name is empty")
		case slices.Contains(brokerParams, strings.ToLower(k)):
			ps.add("authorization_params", "%q is set by the broker and cannot be configured", k)
		}
	}
	if p.DefaultTokenLifetimeSeconds < 0 || p.DefaultTokenLifetimeSeconds > 365*24*3600 {
		ps.add("default_token_lifetime_seconds", "must be between 0 (the vault's default, one hour) and one year")
	}
	if len(p.CredentialSchema) > 0 {
		ps.add("credential_schema", "is only for static providers")
	}
	if p.Verification != nil {
		ps.add("verification", "is only for static providers")
	}
	if p.Strategy != nil && !validStrategy(p.Strategy.Type) {
		ps.add("strategy.type", "is not a known strategy")
	}
	validateQuirks(ps, urls, p.Quirks)
}

// validateStatic checks a static provider: no OAuth settings, a credential
// schema the hosted form can render (schema.go), a strategy whose settings
// are valid and whose fields the schema requires, and an optional
// verification request.
func validateStatic(ps *problems, p messages.Provider, urls urlRule, newSecret bool) {
	if newSecret {
		ps.add("client_secret", "static providers have no client secret")
	}
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"issuer", p.Issuer != ""},
		{"authorization_endpoint", p.AuthorizationEndpoint != ""},
		{"token_endpoint", p.TokenEndpoint != ""},
		{"revocation_endpoint", p.RevocationEndpoint != ""},
		{"jwks_uri", p.JWKSURI != ""},
		{"client_id", p.ClientID != ""},
		{"client_auth_method", p.ClientAuthMethod != ""},
		{"scopes", len(p.Scopes) > 0},
		{"authorization_params", len(p.AuthorizationParams) > 0},
		{"quirks", p.Quirks != nil},
	} {
		if f.set {
			ps.add(f.name, "is not used by static providers")
		}
	}
	switch {
	case p.Strategy == nil:
		ps.add("strategy", "is required for static providers")
	case p.Strategy.Type == messages.StrategyOAuth2:
		ps.add("strategy.type", "must be one of header, query_param, basic_auth, aws_sigv4, hmac_payload")
	default:
		if err := p.Strategy.Validate(); err != nil {
			ps.addText("strategy", err.Error()) // its messages name their strategy.* field
		}
	}
	if len(p.CredentialSchema) == 0 {
		ps.add("credential_schema", "is required for static providers (a JSON Schema object)")
	} else {
		validateSchema(ps, p.CredentialSchema, p.Strategy)
	}
	validateVerification(ps, urls, p.Verification)
}

func validStrategy(t messages.StrategyType) bool {
	switch t {
	case messages.StrategyOAuth2, messages.StrategyHeader, messages.StrategyQueryParam, messages.StrategyBasicAuth,
		messages.StrategyAWSSigV4, messages.StrategyHMACPayload:
		return true
	}
	return false
}

// validScope: RFC 6749 section 3.3, scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
func validScope(s string) bool {
	if s == "" {
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
