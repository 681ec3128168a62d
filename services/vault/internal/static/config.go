package static

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/nexus-broker/nexus/messages"
)

// secretWords mark a property as a secret by its name, as the hosted form
// masks it (services/handshake/internal/form).
var secretWords = []string{"secret", "password", "passwd", "key", "token"}

// Config returns the credentials that become the connection's non-secret
// config: the properties of the schema that the strategy does not apply
// and that are not secret, as text. A property is secret, and never config,
// when the hosted form masks it: "writeOnly": true, "format": "password",
// or a name containing secret, password, passwd, key or token (any case),
// unless the schema says "writeOnly": false. Properties the schema does not
// declare are never config: nothing says what they are.
func Config(schema json.RawMessage, st messages.Strategy, creds map[string]any) map[string]string {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil
	}
	top, _ := doc.(map[string]any)
	props, _ := top["properties"].(map[string]any)
	applied := st.Fields()
	out := map[string]string{}
	for name, v := range creds {
		p, ok := props[name].(map[string]any)
		if !ok || isSecret(name, p) || slices.ContainsFunc(applied, func(f messages.StrategyField) bool { return f.Name == name }) {
			continue
		}
		switch x := v.(type) {
		case string:
			out[name] = x
		case json.Number:
			out[name] = x.String()
		case bool:
			out[name] = "false"
			if x {
				out[name] = "true"
			}
		}
	}
	return out
}

// isSecret is the hosted form's rule (Config).
func isSecret(name string, p map[string]any) bool {
	if w, ok := p["writeOnly"].(bool); ok {
		return w
	}
	if p["format"] == "password" {
		return true
	}
	lower := strings.ToLower(name)
	return slices.ContainsFunc(secretWords, func(w string) bool { return strings.Contains(lower, w) })
}
