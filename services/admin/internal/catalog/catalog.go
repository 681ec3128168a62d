// Package catalog is the provider catalog: one template per provider
// (templates/<name>.json, a messages.Template) embedded in the binary. Every
// template is checked when the catalog is loaded, so that a broken entry
// stops admin at start and fails make test, never an operator's create.
// A template's strings hold placeholders ({{param}}); a value replaces one
// only after matching its param's pattern, so that an operator's value
// cannot move a URL to another host than the template intends.
package catalog

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/nexus-broker/nexus/messages"
)

//go:embed templates/*.json
var embedded embed.FS

// DefaultPattern is what a param's value must match when its template sets
// no pattern: a host name or one label of it. It has no '/', '@', '?', '#'
// or ':', which are what would let a value end a URL's host early.
const DefaultPattern = `[A-Za-z0-9][A-Za-z0-9.-]{0,252}`

// maxValueLen bounds a param's value whatever its pattern.
const maxValueLen = 253

// placeholder is one {{param}} in a template's string.
var placeholder = regexp.MustCompile(`\{\{([^{}]*)\}\}`)

// paramName is the form of a param's name.
var paramName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// reserved are the provider document's members a template may not set: the
// operator's (the client), and the broker's.
var reserved = []string{"id", "name", "aliases", "client_id", "client_secret", "client_secret_set", "client_secret_digest", "callback_path",
	"template", "params", "health", "created_at", "updated_at"}

// samples are the values tried, in order, for a param without a default
// when a template is checked: the first its pattern accepts.
var samples = []string{"example.com", "example", "https://example.com"}

// Check validates a template's document rendered with sample params, as
// the registry would a provider created from it (the registry's
// CheckTemplate).
type Check func(name string, doc json.RawMessage) error

// Catalog is a loaded, checked set of templates.
type Catalog struct {
	list   []messages.Template // by name
	byName map[string]entry
}

type entry struct {
	tpl      messages.Template
	patterns map[string]*regexp.Regexp
}

// Load reads and checks the embedded catalog.
func Load(check Check) (*Catalog, error) {
	return Parse(embedded, "templates", check)
}

// Parse reads and checks every <name>.json in dir of fsys, reporting every
// problem of every file at once.
func Parse(fsys fs.FS, dir string, check Check) (*Catalog, error) {
	files, err := fs.Glob(fsys, path.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("catalog: no templates in %s", dir)
	}
	c := &Catalog{byName: map[string]entry{}}
	var errs []error
	for _, f := range files {
		e, err := parseFile(fsys, f, check)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
			continue
		}
		if _, dup := c.byName[e.tpl.Name]; dup {
			errs = append(errs, fmt.Errorf("%s: template %q is defined twice", f, e.tpl.Name))
			continue
		}
		c.byName[e.tpl.Name] = e
		c.list = append(c.list, e.tpl)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	slices.SortFunc(c.list, func(a, b messages.Template) int { return strings.Compare(a.Name, b.Name) })
	return c, nil
}

func parseFile(fsys fs.FS, file string, check Check) (entry, error) {
	raw, err := fs.ReadFile(fsys, file)
	if err != nil {
		return entry{}, err
	}
	var t messages.Template
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return entry{}, fmt.Errorf("not a template: %v", err)
	}
	if dec.More() {
		return entry{}, errors.New("holds more than one JSON value")
	}
	var problems []string
	if want := strings.TrimSuffix(path.Base(file), ".json"); t.Name != want {
		problems = append(problems, fmt.Sprintf("name %q must be the file's name, %q", t.Name, want))
	}
	if t.DisplayName == "" {
		problems = append(problems, "display_name is required")
	}
	e := entry{tpl: t, patterns: map[string]*regexp.Regexp{}}
	for i, p := range t.Params {
		problems = append(problems, e.addParam(i, p)...)
	}
	problems = append(problems, e.checkDocument()...)
	if len(problems) == 0 {
		sample, err := e.sampleParams()
		if err == nil {
			var doc json.RawMessage
			if doc, _, err = e.render(sample); err == nil {
				err = filled(doc)
			}
			if err == nil {
				err = check(t.Name, doc)
			}
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("rendered with sample params %v: %v", sample, err))
		}
	}
	if len(problems) > 0 {
		return entry{}, errors.New(strings.Join(problems, "; "))
	}
	return e, nil
}

// addParam checks the i-th param and compiles its pattern.
func (e *entry) addParam(i int, p messages.TemplateParam) []string {
	var problems []string
	field := fmt.Sprintf("params[%d]", i)
	switch {
	case !paramName.MatchString(p.Name):
		return append(problems, fmt.Sprintf("%s: name %q must match %s", field, p.Name, paramName))
	case e.patterns[p.Name] != nil:
		return append(problems, fmt.Sprintf("%s: %q is declared twice", field, p.Name))
	}
	if p.Description == "" {
		problems = append(problems, fmt.Sprintf("params.%s: description is required", p.Name))
	}
	if p.Required == (p.Default != "") {
		problems = append(problems, fmt.Sprintf("params.%s: must have a default or be required, not both", p.Name))
	}
	pattern := p.Pattern
	if pattern == "" {
		pattern = DefaultPattern
	}
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		return append(problems, fmt.Sprintf("params.%s: pattern does not compile: %v", p.Name, err))
	}
	e.patterns[p.Name] = re
	if p.Default != "" && !re.MatchString(p.Default) {
		problems = append(problems, fmt.Sprintf("params.%s: the default does not match the pattern", p.Name))
	}
	return problems
}

// checkDocument checks the provider document is an object that sets none of
// the reserved members, and that its placeholders are well formed, in
// values only, each a declared param, and every param used.
func (e *entry) checkDocument() []string {
	var doc map[string]any
	if err := json.Unmarshal(e.tpl.Provider, &doc); err != nil || doc == nil {
		return []string{"provider must be a JSON object (a provider document)"}
	}
	var problems []string
	for _, m := range reserved {
		if _, ok := doc[m]; ok {
			problems = append(problems, fmt.Sprintf("provider.%s: is not for a template to set", m))
		}
	}
	used := map[string]bool{}
	walk("provider", doc, func(where, s string, key bool) {
		rest := placeholder.ReplaceAllStringFunc(s, func(m string) string {
			name := m[2 : len(m)-2]
			switch {
			case key:
				problems = append(problems, fmt.Sprintf("%s: a placeholder may not be in a member name", where))
			case e.patterns[name] == nil:
				problems = append(problems, fmt.Sprintf("%s: placeholder %s is not a declared param", where, m))
			}
			used[name] = true
			return ""
		})
		if strings.Contains(rest, "{{") || strings.Contains(rest, "}}") {
			problems = append(problems, fmt.Sprintf("%s: a placeholder is not well formed (write {{param}})", where))
		}
	})
	for _, p := range e.tpl.Params {
		if e.patterns[p.Name] != nil && !used[p.Name] {
			problems = append(problems, fmt.Sprintf("params.%s: is declared but no placeholder uses it", p.Name))
		}
	}
	return problems
}

// walk calls f with every string of v, member names included (key true),
// and where it is.
func walk(where string, v any, f func(where, s string, key bool)) {
	switch v := v.(type) {
	case string:
		f(where, v, false)
	case []any:
		for i, item := range v {
			walk(fmt.Sprintf("%s[%d]", where, i), item, f)
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			f(where, k, true)
			walk(where+"."+k, v[k], f)
		}
	}
}

// filled checks a rendered document has no placeholder left (one written
// with JSON escapes, which rendering does not see).
func filled(doc json.RawMessage) error {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return err
	}
	var left error
	walk("provider", v, func(where, s string, _ bool) {
		if strings.Contains(s, "{{") && left == nil {
			left = fmt.Errorf("%s: a placeholder is left after rendering (write it without JSON escapes)", where)
		}
	})
	return left
}

// sampleParams are the values a template is checked with: each param's
// default, or the first sample its pattern accepts.
func (e *entry) sampleParams() (map[string]string, error) {
	out := map[string]string{}
	for _, p := range e.tpl.Params {
		v := p.Default
		for _, s := range samples {
			if v != "" {
				break
			}
			if e.patterns[p.Name].MatchString(s) {
				v = s
			}
		}
		if v == "" {
			return nil, fmt.Errorf("params.%s: no sample value (%s) matches its pattern; give it a default", p.Name, strings.Join(samples, ", "))
		}
		out[p.Name] = v
	}
	return out, nil
}

// render checks params against the template's and fills its placeholders,
// returning the provider document and every param's value (defaults
// included). Values go into JSON strings escaped, and placeholders are only
// ever in strings, so a value can change no more than the string it is in,
// and only as its pattern allows.
func (e *entry) render(params map[string]string) (json.RawMessage, map[string]string, error) {
	var problems []string
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if e.patterns[k] == nil {
			problems = append(problems, fmt.Sprintf("params: template %q has no param %s%s", e.tpl.Name, quote(k), e.takes()))
		}
	}
	values := map[string]string{}
	for _, p := range e.tpl.Params {
		v := params[p.Name]
		if v == "" {
			v = p.Default
		}
		switch {
		case v == "":
			problems = append(problems, fmt.Sprintf("params.%s: is required (%s)", p.Name, p.Description))
		case len(v) > maxValueLen || !e.patterns[p.Name].MatchString(v):
			// The value is not quoted back: it is whatever was sent.
			problems = append(problems, fmt.Sprintf("params.%s: must match %s", p.Name, e.patterns[p.Name]))
		default:
			values[p.Name] = v
		}
	}
	if len(problems) > 0 {
		return nil, nil, messages.Errorf(messages.CodeInvalidRequest, "invalid provider: %s", strings.Join(problems, "; "))
	}
	doc := placeholder.ReplaceAllFunc(e.tpl.Provider, func(m []byte) []byte {
		quoted, _ := json.Marshal(values[string(m[2:len(m)-2])])
		return quoted[1 : len(quoted)-1]
	})
	if len(values) == 0 {
		values = nil
	}
	return doc, values, nil
}

// takes lists the template's params, for a reply naming an unknown one.
func (e *entry) takes() string {
	if len(e.tpl.Params) == 0 {
		return " (it takes none)"
	}
	names := make([]string, len(e.tpl.Params))
	for i, p := range e.tpl.Params {
		names[i] = p.Name
	}
	return " (it takes " + strings.Join(names, ", ") + ")"
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// Render fills template name's placeholders with params (defaults for those
// left out), returning the provider document and every param's value. An
// unknown template is not_found, as an unknown provider is; a missing,
// unknown or refused param is invalid_request naming it.
func (c *Catalog) Render(name string, params map[string]string) (json.RawMessage, map[string]string, error) {
	e, ok := c.byName[name]
	if !ok {
		return nil, nil, notFound(name)
	}
	return e.render(params)
}

// List answers providers.templates.list: the whole catalog, by name.
func (c *Catalog) List(context.Context, struct{}) (messages.ListTemplatesReply, error) {
	return messages.ListTemplatesReply{Templates: c.list}, nil
}

// Get answers providers.templates.get.
func (c *Catalog) Get(_ context.Context, ref messages.TemplateRef) (messages.Template, error) {
	if ref.Template == "" {
		return messages.Template{}, messages.Errorf(messages.CodeInvalidRequest, "template is required (a name from providers.templates.list)")
	}
	e, ok := c.byName[ref.Template]
	if !ok {
		return messages.Template{}, notFound(ref.Template)
	}
	return e.tpl, nil
}

func notFound(name string) error {
	return messages.Errorf(messages.CodeNotFound, "the catalog has no template %s (providers.templates.list lists them)", quote(name))
}
