// Package gen makes the JSON Schemas of the contract from the messages
// types: one file per request, reply, event and error body, and an index
// naming each subject's request and reply.
package gen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/invopop/jsonschema"

	"github.com/nexus-broker/nexus/messages"
)

// IndexFile is the index's file name.
const IndexFile = "index.json"

// Index is index.json: which schema each subject's request and reply, each
// event subject's body, and every error reply follow. Subjects are relative
// to the prefix ("nexus" by default).
type Index struct {
	Comment  string            `json:"$comment"`
	Subjects map[string]Pair   `json:"subjects"`
	Events   map[string]string `json:"events"`
	Error    string            `json:"error"`
}

// Pair is a subject's request and reply schema files, and who may call it.
type Pair struct {
	Principal string `json:"principal"`
	Request   string `json:"request"`
	Reply     string `json:"reply"`
}

// emptyRequest names the schema of a request with no fields.
const emptyRequest = "Empty"

// providerCreate names the schema of providers.create's document.
const providerCreate = "ProviderCreate"

type subject struct {
	name, principal string
	req, reply      any // a messages value, or the name of a derived schema
}

// subjects is every request/reply subject of the contract (docs/ARCHITECTURE.md,
// section 4); the internal ones between the broker's services are not.
var subjects = []subject{
	{messages.SubjectHandshakeBegin, "gateway", messages.BeginRequest{}, messages.BeginReply{}},
	{messages.SubjectConnectionsGet, "gateway", messages.ConnectionRef{}, messages.Connection{}},
	{messages.SubjectConnectionsList, "gateway", messages.ListConnectionsRequest{}, messages.ListConnectionsReply{}},
	{messages.SubjectConnectionsRevoke, "gateway", messages.ConnectionRef{}, messages.Connection{}},
	{messages.SubjectConnectionsConfirm, "gateway", messages.ConfirmRequest{}, messages.Connection{}},
	{messages.SubjectTokensGet, "gateway", messages.TokenRequest{}, messages.Credential{}},
	{messages.SubjectTokensRefresh, "gateway", messages.TokenRequest{}, messages.Credential{}},
	{messages.SubjectProvidersCreate, "operator", providerCreate, messages.Provider{}},
	{messages.SubjectProvidersGet, "operator", messages.ProviderRef{}, messages.Provider{}},
	{messages.SubjectProvidersList, "operator", messages.ListProvidersRequest{}, messages.ListProvidersReply{}},
	{messages.SubjectProvidersUpdate, "operator", messages.ProviderUpdate{}, messages.Provider{}},
	{messages.SubjectProvidersDelete, "operator", messages.ProviderRef{}, messages.Provider{}},
	{messages.SubjectProvidersTemplatesList, "operator", emptyRequest, messages.ListTemplatesReply{}},
	{messages.SubjectProvidersTemplatesGet, "operator", messages.TemplateRef{}, messages.Template{}},
	{messages.SubjectAuditList, "operator", messages.AuditListRequest{}, messages.AuditListReply{}},
	{messages.SubjectKeysStatus, "operator", messages.KeysStatusRequest{}, messages.KeysStatus{}},
}

// events and the error body, with the subjects they travel on.
var (
	events = map[string]any{
		messages.EventSubjectPrefix + ">":         messages.Event{},
		messages.ProviderEventSubjectPrefix + ">": messages.ProviderEvent{},
	}
	errorBody = messages.ErrorBody{}
)

// enums are the string types whose values messages lists.
var enums = map[reflect.Type][]string{
	reflect.TypeFor[messages.ConnectionStatus](): values(messages.ConnectionStatuses),
	reflect.TypeFor[messages.ErrorCode]():        values(messages.ErrorCodes),
	reflect.TypeFor[messages.AuthType]():         values(messages.AuthTypes),
	reflect.TypeFor[messages.StrategyType]():     values(messages.StrategyTypes),
	reflect.TypeFor[messages.ProviderType]():     values(messages.ProviderTypes),
}

// alwaysSet are fields of a pointer type the broker never sends as null.
var alwaysSet = map[string]bool{"ErrorBody.error": true}

// typeEnums are the values of the "type" field of each event body.
var typeEnums = map[string][]string{
	"Event":         fullTypes(messages.EventTypes),
	"ProviderEvent": fullTypes(messages.ProviderEventTypes),
}

func values[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

func fullTypes[T interface{ FullType() string }](ts []T) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.FullType()
	}
	return out
}

// Files returns every schema file and the index, by file name. messagesDir
// is the messages package's source, whose doc comments become the
// schemas' descriptions.
func Files(messagesDir string) (map[string][]byte, error) {
	r := &jsonschema.Reflector{
		Mapper: func(t reflect.Type) *jsonschema.Schema {
			vs, ok := enums[t]
			if !ok {
				return nil
			}
			s := &jsonschema.Schema{Type: "string"}
			for _, v := range vs {
				s.Enum = append(s.Enum, v)
			}
			return s
		},
	}
	if err := addComments(r, messagesDir); err != nil {
		return nil, fmt.Errorf("doc comments of %s: %w", messagesDir, err)
	}
	schemas := map[string]*jsonschema.Schema{}
	add := func(v any) string {
		if name, ok := v.(string); ok {
			return name + ".json"
		}
		t := reflect.TypeOf(v)
		if _, ok := schemas[t.Name()]; !ok {
			schemas[t.Name()] = reflectType(r, t)
		}
		return t.Name() + ".json"
	}
	idx := Index{
		Comment:  "Generated from github.com/nexus-broker/nexus/messages by `make schemas`; do not edit. Subjects are relative to the prefix (\"nexus\" by default). Every request carries the caller's key in the Nexus-Api-Key header; an error reply has the Nats-Service-Error-Code header and the body of the error schema.",
		Subjects: map[string]Pair{},
		Events:   map[string]string{},
	}
	for _, s := range subjects {
		idx.Subjects[s.name] = Pair{Principal: s.principal, Request: add(s.req), Reply: add(s.reply)}
	}
	for subj, v := range events {
		idx.Events[subj] = add(v)
	}
	idx.Error = add(errorBody)
	schemas[emptyRequest] = &jsonschema.Schema{
		Version: jsonschema.Version, Title: emptyRequest, Description: "A request with no fields: {} (or an empty body).",
		Type: "object", AdditionalProperties: jsonschema.FalseSchema,
	}
	schemas[providerCreate] = createDocument(schemas["Provider"])

	files := map[string][]byte{}
	for name, s := range schemas {
		b, err := encode(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		files[name+".json"] = b
	}
	b, err := encode(idx)
	if err != nil {
		return nil, err
	}
	files[IndexFile] = b
	return files, nil
}

// addComments makes the messages package's doc comments the schemas'
// descriptions. jsonschema names a file's package after the directory as
// given (base joined with dir), so the keys are renamed to the package's
// import path.
func addComments(r *jsonschema.Reflector, dir string) error {
	const pkg = "github.com/nexus-broker/nexus/messages"
	if err := r.AddGoComments(pkg, dir); err != nil {
		return err
	}
	read := path.Join(pkg, filepath.ToSlash(dir)) + "."
	for k, v := range r.CommentMap {
		if rest, ok := strings.CutPrefix(k, read); ok {
			delete(r.CommentMap, k)
			r.CommentMap[pkg+"."+rest] = v
		}
	}
	return nil
}

// reflectType is t's schema: every struct strict (additionalProperties
// false, as the broker refuses an unknown field), a field without
// omitempty required, and one that Go writes as null when nil (a nil
// pointer, slice or map without omitempty) allowed to be null.
func reflectType(r *jsonschema.Reflector, t reflect.Type) *jsonschema.Schema {
	s := r.ReflectFromType(t)
	s.ID = "" // read from its file; no address serves it
	s.Title = t.Name()
	for _, st := range structs(t, nil) {
		def := s.Definitions[st.Name()]
		if def == nil {
			continue
		}
		for i := range st.NumField() {
			f := st.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" || !nullable(f.Type, opts) || alwaysSet[st.Name()+"."+name] {
				continue
			}
			if p, ok := def.Properties.Get(name); ok {
				def.Properties.Set(name, &jsonschema.Schema{Description: p.Description, OneOf: []*jsonschema.Schema{withoutDescription(p), {Type: "null"}}})
			}
		}
		if enum, ok := typeEnums[st.Name()]; ok {
			if p, ok := def.Properties.Get("type"); ok {
				for _, v := range enum {
					p.Enum = append(p.Enum, v)
				}
			}
		}
	}
	return s
}

// nullable reports whether encoding/json writes null for a nil value of a
// field of type t with these tag options.
func nullable(t reflect.Type, opts string) bool {
	if slices.Contains(strings.Split(opts, ","), "omitempty") || t == reflect.TypeFor[json.RawMessage]() {
		return false // left out; a RawMessage's schema already takes any JSON
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		return true
	}
	return false
}

func withoutDescription(s *jsonschema.Schema) *jsonschema.Schema {
	c := *s
	c.Description = ""
	return &c
}

// structs lists the named struct types t refers to, t included.
func structs(t reflect.Type, seen []reflect.Type) []reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map || t.Kind() == reflect.Array {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t.Name() == "" || t.PkgPath() != reflect.TypeFor[messages.Event]().PkgPath() || slices.Contains(seen, t) {
		return seen
	}
	seen = append(seen, t)
	for i := range t.NumField() {
		seen = structs(t.Field(i).Type, seen)
	}
	return seen
}

// createDocument is providers.create's document: a provider as an operator
// writes it, with no id (the broker assigns it; a Go client's zero value
// sends ""), and nothing required (the fields the broker sets itself are
// ignored, so a provider read back can be sent again). Which fields a type
// needs (issuer for oidc, endpoints for oauth2, credential_schema and
// strategy for static, or a template and its params) admin checks and
// reports by name.
func createDocument(provider *jsonschema.Schema) *jsonschema.Schema {
	b, _ := json.Marshal(provider)
	var c jsonschema.Schema
	_ = json.Unmarshal(b, &c)
	c.Title = providerCreate
	c.Description = "The body of providers.create: a provider document without id, which the broker assigns (the fields it sets itself, such as client_secret_set and created_at, are ignored). What each type needs, admin checks and reports by name."
	def := c.Definitions["Provider"]
	d := *def
	d.Properties = jsonschema.NewProperties()
	zero := uint64(0)
	for p := def.Properties.Oldest(); p != nil; p = p.Next() {
		if p.Key == "id" {
			d.Properties.Set(p.Key, &jsonschema.Schema{Type: "string", MaxLength: &zero, Description: "Assigned by the broker: left out, or empty."})
			continue
		}
		d.Properties.Set(p.Key, p.Value)
	}
	d.Required = nil
	c.Definitions[providerCreate] = &d
	delete(c.Definitions, "Provider")
	c.Ref = "#/$defs/" + providerCreate
	return &c
}

func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
