package messages

import (
	"fmt"
	"sort"
	"strings"
)

// Strategy configurations, as the Gateway reads them. Each names the
// credential fields it uses; tokens.get returns those fields and no others.
//
//	header:       {"header": "X-Api-Key", "prefix": "Bearer ", "field": "api_key"}
//	query_param:  {"param": "api_key", "field": "api_key"}
//	basic_auth:   {"username_field": "username", "password_field": "password"}
//	aws_sigv4:    {"service": "s3", "region": "eu-west-1", "access_key_id_field": "access_key_id",
//	               "secret_access_key_field": "secret_access_key", "session_token_field": "session_token"}
//	hmac_payload: {"header": "X-Signature", "algorithm": "sha256", "encoding": "hex", "field": "secret", "prefix": ""}
//
// Field names default to the ones shown; "prefix", "session_token_field" and
// "encoding" are optional.
var strategyFieldDefaults = map[StrategyType]map[string]string{
	StrategyHeader:      {"field": "api_key"},
	StrategyQueryParam:  {"field": "api_key"},
	StrategyBasicAuth:   {"username_field": "username", "password_field": "password"},
	StrategyAWSSigV4:    {"access_key_id_field": "access_key_id", "secret_access_key_field": "secret_access_key", "session_token_field": "session_token"},
	StrategyHMACPayload: {"field": "secret"},
}

// optionalFields are field settings whose credential may be absent.
var optionalFields = map[string]bool{"session_token_field": true}

// publicFields are field settings whose credential identifies rather than
// authenticates (a user name, an access key id); every other field a
// strategy applies is a secret.
var publicFields = map[string]bool{"username_field": true, "access_key_id_field": true}

var strategyRequired = map[StrategyType][]string{
	StrategyHeader:      {"header"},
	StrategyQueryParam:  {"param"},
	StrategyBasicAuth:   nil,
	StrategyAWSSigV4:    {"service", "region"},
	StrategyHMACPayload: {"header", "algorithm"},
}

var strategyAllowed = map[StrategyType][]string{
	StrategyHeader:      {"header", "prefix", "field"},
	StrategyQueryParam:  {"param", "field"},
	StrategyBasicAuth:   {"username_field", "password_field"},
	StrategyAWSSigV4:    {"service", "region", "access_key_id_field", "secret_access_key_field", "session_token_field"},
	StrategyHMACPayload: {"header", "algorithm", "encoding", "field", "prefix"},
}

// StrategyField is one credential field a static strategy uses.
type StrategyField struct {
	Name     string // the credential's property name
	Optional bool   // may be absent (an AWS session token)
	Secret   bool   // authenticates (a key, a password), as opposed to a user name or key id
}

// Validate checks a static strategy's type and configuration, reporting
// every problem.
func (s Strategy) Validate() error {
	allowed, ok := strategyAllowed[s.Type]
	if !ok {
		return fmt.Errorf("strategy.type must be one of header, query_param, basic_auth, aws_sigv4, hmac_payload")
	}
	var problems []string
	for k, v := range s.Config {
		if !contains(allowed, k) {
			problems = append(problems, fmt.Sprintf("strategy.config.%s is not a setting of %s (allowed: %s)", k, s.Type, strings.Join(allowed, ", ")))
			continue
		}
		if str, ok := v.(string); !ok || (str == "" && k != "prefix") {
			problems = append(problems, fmt.Sprintf("strategy.config.%s must be a non-empty string", k))
		}
	}
	for _, k := range strategyRequired[s.Type] {
		if _, ok := s.Config[k]; !ok {
			problems = append(problems, fmt.Sprintf("strategy.config.%s is required for %s", k, s.Type))
		}
	}
	if s.Type == StrategyHMACPayload {
		if a, _ := s.Config["algorithm"].(string); a != "" && a != "sha256" && a != "sha512" {
			problems = append(problems, "strategy.config.algorithm must be sha256 or sha512")
		}
		if e, _ := s.Config["encoding"].(string); e != "" && e != "hex" && e != "base64" {
			problems = append(problems, "strategy.config.encoding must be hex or base64")
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// Fields lists the credential fields a static strategy uses, in a stable order.
func (s Strategy) Fields() []StrategyField {
	defaults := strategyFieldDefaults[s.Type]
	keys := make([]string, 0, len(defaults))
	for k := range defaults {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]StrategyField, 0, len(keys))
	for _, k := range keys {
		name := defaults[k]
		if v, ok := s.Config[k].(string); ok && v != "" {
			name = v
		}
		out = append(out, StrategyField{Name: name, Optional: optionalFields[k], Secret: !publicFields[k]})
	}
	return out
}

// Field is the credential field a strategy setting names ("field",
// "username_field", "session_token_field" ...), or its default; "" for a
// setting that names no field.
func (s Strategy) Field(setting string) string {
	def, ok := strategyFieldDefaults[s.Type][setting]
	if !ok {
		return ""
	}
	if v, ok := s.Config[setting].(string); ok && v != "" {
		return v
	}
	return def
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
