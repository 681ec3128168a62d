package registry

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/nexus-broker/nexus/messages"
)

// fromTemplate fills the members a create request leaves out from the
// catalog template it names, if it names one. The request's own members
// win whole (its scopes replace the template's, they are not added to
// them); a request without a name gets the template's. It returns the
// document to create and the params' values, defaults included, which is
// what the provider records.
func (r *Registry) fromTemplate(doc json.RawMessage) (json.RawMessage, map[string]string, error) {
	ms, err := members(doc, "the provider document")
	if err != nil {
		return nil, nil, err
	}
	var (
		name   string
		params map[string]string
		sent   = map[string]bool{}
	)
	for _, m := range ms {
		sent[m.name] = true
		switch m.name {
		case "template":
			if json.Unmarshal(m.value, &name) != nil {
				return nil, nil, messages.Errorf(messages.CodeInvalidRequest, "invalid provider: template: must be a string (a name from providers.templates.list)")
			}
		case "params":
			if json.Unmarshal(m.value, &params) != nil {
				return nil, nil, messages.Errorf(messages.CodeInvalidRequest, "invalid provider: params: must be an object of strings")
			}
		}
	}
	if name == "" {
		return doc, nil, nil
	}
	rendered, values, err := r.catalog.Render(name, params)
	if err != nil {
		return nil, nil, err
	}
	filled, err := members(rendered, "the template")
	if err != nil {
		return nil, nil, fmt.Errorf("template %s: %w", name, err) // the catalog was checked at start: internal
	}
	var b bytes.Buffer
	write := func(name string, v json.RawMessage) {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	for _, m := range ms {
		write(m.name, m.value)
	}
	if !sent["name"] {
		n, _ := json.Marshal(name)
		write("name", n)
	}
	for _, m := range filled {
		if !sent[m.name] {
			write(m.name, m.value)
		}
	}
	return append(append([]byte{'{'}, b.Bytes()...), '}'), values, nil
}

// CheckTemplate validates a catalog template's document, rendered with
// sample params, as Create would a provider made from it with nothing but a
// client id and secret: everything except OIDC discovery, which needs the
// provider's own server (its endpoints are not required here for that).
func CheckTemplate(name string, doc json.RawMessage) error {
	p, ps, err := decodeDocument(doc)
	if err != nil {
		return err
	}
	p.Name = name
	oauth := isOAuth(p.Type)
	if oauth {
		p.ClientID = "sample-client-id"
	}
	normalize(&p)
	return append(ps, validate(p, urlRule(nil), oauth, false, p.Type == messages.ProviderOIDC)...).err()
}
