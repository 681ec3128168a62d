package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/nexus-broker/nexus/messages"
)

// Limits on a credential schema: the hosted form shows one input per
// property, and every flow carries the schema.
const (
	maxSchemaBytes      = 32 << 10
	maxSchemaProperties = 64
	maxPropertyNameLen  = 128
)

// draft2020 is the only meta-schema a credential schema may name.
const draft2020 = "https://json-schema.org/draft/2020-12/schema"

// schemaURL is the base URI credential schemas are compiled under.
const schemaURL = "urn:nexus:credential-schema"

// formTypes are the property types the hosted form can render.
var formTypes = []string{"string", "number", "integer", "boolean"}

// noLoader refuses every external reference: a credential schema must be
// self-contained, and compiling one must never read a file or the network
// (the library's default loader reads file:// URLs).
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external references are not allowed (%s); a credential schema must be self-contained", url)
}

// compileSchema compiles doc as a JSON Schema, draft 2020-12.
func compileSchema(doc any) error {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return err
	}
	_, err := c.Compile(schemaURL)
	return err
}

// validateSchema checks a static provider's credential schema: it must
// compile as draft 2020-12, be an object schema whose properties the hosted
// form can render, and cover every credential field the strategy uses.
func validateSchema(ps *problems, raw json.RawMessage, st *messages.Strategy) {
	const field = "credential_schema"
	if len(raw) > maxSchemaBytes {
		ps.add(field, "must be at most %d KiB", maxSchemaBytes>>10)
		return
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		ps.add(field, "must be a JSON object (a JSON Schema)")
		return
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		ps.add(field, "must be a JSON object (a JSON Schema)")
		return
	}
	if s, ok := obj["$schema"]; ok && s != draft2020 {
		ps.add(field, "$schema must be %s (or left out)", draft2020)
		return
	}
	if err := compileSchema(doc); err != nil {
		ps.add(field, "is not a valid JSON Schema (draft 2020-12): %s", schemaErr(err))
		return
	}
	if obj["type"] != "object" {
		ps.add(field, `must have "type": "object"`)
	}
	props, ok := obj["properties"].(map[string]any)
	switch {
	case !ok || len(props) == 0:
		ps.add(field, `must have "properties", one per field the user fills in`)
		return
	case len(props) > maxSchemaProperties:
		ps.add(field, "may have at most %d properties", maxSchemaProperties)
		return
	}
	names := make([]string, 0, len(props))
	for name := range props {
		names = append(names, name)
	}
	slices.Sort(names)
	types := make(map[string]string, len(props))
	for _, name := range names {
		types[name] = propertyProblem(ps, name, props[name])
	}
	required := map[string]bool{}
	if list, ok := obj["required"].([]any); ok { // the compiler checked it is an array of strings
		for _, r := range list {
			name, _ := r.(string)
			required[name] = true
			if _, ok := props[name]; !ok {
				ps.add(field, "required lists %q, which is not in properties, so the form could never supply it", name)
			}
		}
	}
	if st == nil || st.Validate() != nil {
		return // the strategy's own problems are reported with it
	}
	for _, f := range st.Fields() {
		typ, isProp := types[f.Name]
		switch {
		case !isProp && !f.Optional:
			ps.add(field, "the %s strategy uses the credential field %q: it must be a property and listed in required", st.Type, f.Name)
		case !isProp:
			// An optional field (an AWS session token) may be left out of the schema.
		case !f.Optional && !required[f.Name]:
			ps.add(field, "the %s strategy uses the credential field %q: it must be listed in required", st.Type, f.Name)
		}
		if isProp && typ != "" && typ != "string" {
			ps.add(field+".properties."+f.Name, "the %s strategy applies it as text, so its type must be string", st.Type)
		}
	}
}

// propertyProblem checks that one property can be rendered as one form
// input, reporting problems, and returns its type ("" when unusable).
func propertyProblem(ps *problems, name string, v any) string {
	field := "credential_schema.properties." + name
	if name == "" || len(name) > maxPropertyNameLen || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		field = fmt.Sprintf("credential_schema.properties[%q]", name)
		ps.add(field, "property names must be 1-%d printable characters", maxPropertyNameLen)
		return ""
	}
	prop, ok := v.(map[string]any)
	if !ok {
		ps.add(field, "must be an object schema with a type (string, number, integer or boolean)")
		return ""
	}
	var typ string
	switch t := prop["type"].(type) {
	case nil:
		ps.add(field, "needs a type (string, number, integer or boolean): the hosted form renders one input per property")
		return ""
	case string:
		typ = t
	default:
		ps.add(field, "type must be one type name (string, number, integer or boolean), not a list")
		return ""
	}
	if !slices.Contains(formTypes, typ) {
		ps.add(field, "type %q cannot be shown in the hosted form: nested objects and arrays are not supported; use string, number, integer or boolean", typ)
		return ""
	}
	if e, ok := prop["enum"]; ok {
		list, _ := e.([]any) // the compiler checked it is an array
		if len(list) == 0 {
			ps.add(field, "enum must list at least one value")
		}
		for _, item := range list {
			if !enumFits(typ, item) {
				ps.add(field, "enum value %s is not of type %s", compact(item), typ)
				break
			}
		}
	}
	return typ
}

func enumFits(typ string, v any) bool {
	switch typ {
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		_, err := n.Int64()
		return err == nil
	default: // number
		_, ok := v.(json.Number)
		return ok
	}
}

func compact(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

// schemaErr is the library's message, made single-line for the reply.
func schemaErr(err error) string {
	var sv *jsonschema.SchemaValidationError
	msg := err.Error()
	if errors.As(err, &sv) {
		msg = sv.Err.Error()
	}
	msg = strings.Join(strings.Fields(msg), " ")
	return strings.ReplaceAll(msg, schemaURL, "the schema")
}

// validateVerification checks the optional verification request.
func validateVerification(ps *problems, urls urlRule, v *messages.Verification) {
	if v == nil {
		return
	}
	if v.URL == "" {
		ps.add("verification.url", "is required")
	} else if prob := urls.problem(v.URL); prob != "" {
		ps.add("verification.url", "%s", prob)
	}
	switch v.Method {
	case "", "GET", "POST", "HEAD":
	default:
		ps.add("verification.method", "must be GET, POST or HEAD")
	}
	if v.ExpectStatus != 0 && (v.ExpectStatus < 100 || v.ExpectStatus > 599) {
		ps.add("verification.expect_status", "must be an HTTP status between 100 and 599")
	}
}
