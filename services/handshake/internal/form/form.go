// Package form turns a static provider's credential schema (JSON Schema,
// draft 2020-12) into the hosted form a person fills in, and turns what the
// browser submits back into typed credentials validated against the schema.
//
// One input per property, in a stable order: properties with a numeric
// "x-order" first (ascending), then the others in the order the schema
// document lists them. Label: "title", or the property name. Help text:
// "description". Inputs: a select for "enum", a checkbox for boolean, a
// number input for number and integer, and otherwise a text input, or a
// password input for secrets.
//
// A property is a secret (masked, never pre-filled, never echoed back) when
// it is a string and has "writeOnly": true, or "format": "password", or a
// name containing "secret", "password", "passwd", "key" or "token" (any
// case) - unless the schema says "writeOnly": false, which marks it as not
// secret (an AWS access key id, say).
package form

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Kind is the HTML input a property becomes.
type Kind string

const (
	KindText     Kind = "text"
	KindPassword Kind = "password"
	KindNumber   Kind = "number"
	KindInteger  Kind = "integer" // a number input with step 1
	KindCheckbox Kind = "checkbox"
	KindSelect   Kind = "select"
)

// Option is one choice of an enum.
type Option struct {
	Value string // the value as the form submits it
	Label string
}

// Field is one input of the form.
type Field struct {
	Name     string // the property name
	Label    string
	Help     string
	Type     string // the schema type: string, number, integer or boolean
	Kind     Kind
	Required bool
	Secret   bool
	Options  []Option
	// Default is the schema's default as text, for fields that are not secret.
	Default   string
	MinLength int
	MaxLength int
	Min, Max  string // number bounds as text, when the schema has them
}

// Form is a credential schema ready to render and to validate against.
type Form struct {
	Fields []Field
	schema *jsonschema.Schema
}

// schemaURL is the base URI credential schemas are compiled under.
const schemaURL = "urn:nexus:credential-schema"

// noLoader refuses every external reference: a credential schema must be
// self-contained, and compiling one must never read a file or the network.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external reference %s not allowed", url)
}

// ErrUnusable: the schema cannot be compiled or rendered. Admin refuses such
// schemas at registration, so this means the registry and this service
// disagree.
var ErrUnusable = errors.New("form: unusable credential schema")

// Parse compiles raw (draft 2020-12, format assertions on) and builds the
// form. Properties named in secret (the secret fields the provider's
// strategy applies) are masked like any other secret, unless the schema says
// writeOnly: false.
func Parse(raw json.RawMessage, secret ...string) (*Form, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnusable, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnusable, err)
	}
	sch, err := c.Compile(schemaURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnusable, err)
	}
	top, _ := doc.(map[string]any)
	props, _ := top["properties"].(map[string]any)
	if len(props) == 0 {
		return nil, fmt.Errorf("%w: no properties", ErrUnusable)
	}
	order, err := propertyOrder(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnusable, err)
	}
	required := map[string]bool{}
	if list, ok := top["required"].([]any); ok {
		for _, r := range list {
			if s, ok := r.(string); ok {
				required[s] = true
			}
		}
	}
	f := &Form{schema: sch}
	for _, name := range order {
		p, _ := props[name].(map[string]any)
		field, err := newField(name, p, required[name], slices.Contains(secret, name))
		if err != nil {
			return nil, err
		}
		f.Fields = append(f.Fields, field)
	}
	sortByXOrder(f.Fields, props)
	return f, nil
}

func newField(name string, p map[string]any, required, strategyField bool) (Field, error) {
	typ, _ := p["type"].(string)
	f := Field{Name: name, Label: name, Type: typ, Required: required}
	if s, ok := p["title"].(string); ok && strings.TrimSpace(s) != "" {
		f.Label = s
	}
	f.Help, _ = p["description"].(string)
	switch typ {
	case "string":
		f.Kind = KindText
		f.Secret = isSecret(name, p, strategyField)
		if f.Secret {
			f.Kind = KindPassword
		}
		f.MinLength = intVal(p["minLength"])
		f.MaxLength = intVal(p["maxLength"])
	case "number":
		f.Kind = KindNumber
	case "integer":
		f.Kind = KindInteger
	case "boolean":
		f.Kind = KindCheckbox
		f.Required = false // an unchecked box submits false: there is always a value
	default:
		return Field{}, fmt.Errorf("%w: property %q has type %q, which the form cannot show", ErrUnusable, name, typ)
	}
	if f.Kind == KindNumber || f.Kind == KindInteger {
		f.Min = numText(p["minimum"])
		f.Max = numText(p["maximum"])
	}
	if list, ok := p["enum"].([]any); ok && typ != "boolean" {
		f.Kind = KindSelect
		for _, v := range list {
			s := scalarText(v)
			f.Options = append(f.Options, Option{Value: s, Label: s})
		}
	}
	if d, ok := p["default"]; ok && !f.Secret {
		f.Default = scalarText(d)
	}
	return f, nil
}

// secretWords mark a property as a secret by its name.
var secretWords = []string{"secret", "password", "passwd", "key", "token"}

// isSecret applies the rule in the package comment; a secret field the
// strategy applies is masked unless writeOnly: false says otherwise.
func isSecret(name string, p map[string]any, strategyField bool) bool {
	if w, ok := p["writeOnly"].(bool); ok {
		return w
	}
	if strategyField || p["format"] == "password" {
		return true
	}
	lower := strings.ToLower(name)
	return slices.ContainsFunc(secretWords, func(w string) bool { return strings.Contains(lower, w) })
}

// sortByXOrder puts properties with a numeric x-order first, ascending; the
// sort is stable, so the others keep document order.
func sortByXOrder(fields []Field, props map[string]any) {
	rank := func(f Field) (float64, bool) {
		p, _ := props[f.Name].(map[string]any)
		n, ok := p["x-order"].(json.Number)
		if !ok {
			return 0, false
		}
		v, err := n.Float64()
		return v, err == nil
	}
	slices.SortStableFunc(fields, func(a, b Field) int {
		ra, oka := rank(a)
		rb, okb := rank(b)
		switch {
		case oka && okb:
			if ra < rb {
				return -1
			}
			if ra > rb {
				return 1
			}
			return 0
		case oka:
			return -1
		case okb:
			return 1
		}
		return 0
	})
}

// propertyOrder reads the names of the top-level "properties" in document
// order (a Go map would lose it).
func propertyOrder(raw []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	var names []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		if k != "properties" {
			if err := skip(dec); err != nil {
				return nil, err
			}
			continue
		}
		if err := expectDelim(dec, '{'); err != nil {
			return nil, err
		}
		names = names[:0]
		seen := map[string]bool{}
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return nil, err
			}
			name, _ := t.(string)
			if !seen[name] {
				names = append(names, name)
				seen[name] = true
			}
			if err := skip(dec); err != nil {
				return nil, err
			}
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
	}
	return names, nil
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t != d {
		return fmt.Errorf("expected %v", d)
	}
	return nil
}

// skip reads past one JSON value.
func skip(dec *json.Decoder) error {
	var v json.RawMessage
	err := dec.Decode(&v)
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func intVal(v any) int {
	n, ok := v.(json.Number)
	if !ok {
		return 0
	}
	i, err := n.Int64()
	if err != nil || i < 0 || i > 1<<20 {
		return 0
	}
	return int(i)
}

func numText(v any) string {
	if n, ok := v.(json.Number); ok {
		return n.String()
	}
	return ""
}

func scalarText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		if x {
			return "true"
		}
		return "false"
	}
	return ""
}

// Credentials are typed values a person submitted. They print as
// [redacted] through slog and fmt.
type Credentials map[string]any

// LogValue implements slog.LogValuer.
func (Credentials) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// String implements fmt.Stringer.
func (Credentials) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer.
func (Credentials) GoString() string { return "[redacted]" }

// Format covers every other verb.
func (Credentials) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[redacted]")) }
