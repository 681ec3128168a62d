package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/nexus-broker/nexus/messages"
)

// documentFields are the provider document's member names in the order of
// messages.Provider, which is the order problems are reported in;
// fieldIndex maps each to its struct field.
var documentFields, fieldIndex = providerFields()

func providerFields() ([]string, map[string]int) {
	t := reflect.TypeFor[messages.Provider]()
	names := make([]string, 0, t.NumField())
	index := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		names = append(names, name)
		index[name] = i
	}
	return names, index
}

// maxNameShown bounds a member name quoted back in a reply.
const maxNameShown = 64

// member is one member of a JSON object, as sent.
type member struct {
	name  string
	value json.RawMessage
}

// members reads raw as a JSON object, keeping its members in order.
func members(raw []byte, what string) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	notObject := messages.Errorf(messages.CodeInvalidRequest, "%s must be a JSON object", what)
	if tok, err := dec.Token(); err != nil {
		return nil, messages.Errorf(messages.CodeInvalidRequest, "%s is not valid JSON", what)
	} else if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, notObject
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, messages.Errorf(messages.CodeInvalidRequest, "%s is not valid JSON", what)
		}
		name, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, messages.Errorf(messages.CodeInvalidRequest, "%s is not valid JSON", what)
		}
		out = append(out, member{name, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, messages.Errorf(messages.CodeInvalidRequest, "%s is not valid JSON", what)
	}
	if _, err := dec.Token(); err == nil {
		return nil, messages.Errorf(messages.CodeInvalidRequest, "%s holds more than one JSON value", what)
	}
	return out, nil
}

// decodeDocument reads a provider document member by member, so that one
// reply can name every member it cannot use: names that are not fields of
// the document (exact names: "Name" is not "name") and values of the wrong
// type. The error is for a body that is not a JSON object at all.
func decodeDocument(raw []byte) (messages.Provider, problems, error) {
	var p messages.Provider
	ms, err := members(raw, "the provider document")
	if err != nil {
		return p, nil, err
	}
	var ps problems
	doc := reflect.ValueOf(&p).Elem()
	for _, m := range ms {
		i, ok := fieldIndex[m.name]
		if !ok {
			ps.unknownMember(m.name)
			continue
		}
		f := doc.Field(i)
		v := reflect.New(f.Type())
		dec := json.NewDecoder(bytes.NewReader(m.value))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v.Interface()); err != nil {
			ps.unreadable(m.name, f.Type(), err)
			continue
		}
		f.Set(v.Elem())
	}
	return p, ps, nil
}

// unknownMember records a member that is not a field of the document,
// suggesting the field it differs from only by case.
func (ps *problems) unknownMember(name string) {
	text := fmt.Sprintf("unknown field %s", quoteName(name))
	for _, f := range documentFields {
		if strings.EqualFold(f, name) {
			text += fmt.Sprintf(" (did you mean %q?)", f)
			break
		}
	}
	*ps = append(*ps, problem{text: text, unknown: true})
}

// unreadable records a member whose value does not fit its field, saying
// what JSON it takes; the value itself is never quoted (it may be a secret).
func (ps *problems) unreadable(name string, t reflect.Type, err error) {
	var (
		te *json.UnmarshalTypeError
		p  = problem{field: name, unread: true}
	)
	switch {
	case errors.As(err, &te) && te.Field != "":
		p.text = fmt.Sprintf("%s.%s: must be %s", name, te.Field, jsonKind(te.Type))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		inner := strings.TrimPrefix(err.Error(), "json: unknown field ")
		if unq, err := strconv.Unquote(inner); err == nil {
			inner = unq
		}
		p.text = fmt.Sprintf("%s: unknown field %s", name, quoteName(inner))
	default:
		p.text = fmt.Sprintf("%s: must be %s", name, jsonKind(t))
	}
	*ps = append(*ps, p)
}

func quoteName(name string) string {
	if len(name) > maxNameShown {
		name = name[:maxNameShown] + "..."
	}
	return strconv.Quote(name)
}

// jsonKind says in JSON terms what a value of Go type t is written as.
func jsonKind(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[time.Time]():
		return "a timestamp (RFC 3339)"
	case t == reflect.TypeFor[json.RawMessage]():
		return "JSON"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return jsonKind(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.String {
			return "an array of strings"
		}
		return "an array"
	case reflect.Map:
		if t.Elem().Kind() == reflect.String {
			return "an object of strings"
		}
		return "an object"
	}
	return "an object"
}
