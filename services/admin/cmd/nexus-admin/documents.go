package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// document is one provider as an apply document describes it: its members
// in the order written (so that a credential schema keeps the order of its
// form's fields), without the client secret, which only its source names.
type document struct {
	where   string // "providers/google.yaml: document 1, item 2", for errors
	name    string // the provider's name (or its template's, which is then its name)
	members []member
	secret  *secretSource
}

// member is one member of a document, its value as JSON.
type member struct {
	name  string
	value json.RawMessage
}

// secretSource is where a client secret is read from: an environment
// variable or a file, never the document itself.
type secretSource struct {
	env, file string
}

// String says where the secret comes from, never what it is.
func (s secretSource) String() string {
	if s.env != "" {
		return "env " + s.env
	}
	return "file " + s.file
}

// read returns the secret, trimmed of surrounding white space (a file's
// final newline).
func (s secretSource) read(getenv func(string) string) (string, error) {
	var v string
	if s.env != "" {
		v = getenv(s.env)
	} else {
		b, err := os.ReadFile(s.file)
		if err != nil {
			return "", fmt.Errorf("client_secret: %w", err)
		}
		v = string(b)
	}
	if v = strings.TrimSpace(v); v == "" {
		return "", fmt.Errorf("client_secret: %s is empty", s)
	}
	return v, nil
}

// loadDocuments reads every provider under path: a file, or the .yaml,
// .yml and .json files of a directory and its subdirectories, in name
// order. A file holds YAML documents (JSON is YAML) separated by ---, each
// one provider or a list of them.
func loadDocuments(path string) ([]document, error) {
	files, err := documentFiles(path)
	if err != nil {
		return nil, err
	}
	var out []document
	seen := map[string]string{}
	for _, f := range files {
		docs, err := loadFile(f)
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			if first, dup := seen[d.name]; dup {
				return nil, fmt.Errorf("%s: provider %q is also described at %s", d.where, d.name, first)
			}
			seen[d.name] = d.where
			out = append(out, d)
		}
	}
	return out, nil
}

func documentFiles(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
			if !d.IsDir() {
				files = append(files, p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no .yaml, .yml or .json file", path)
	}
	slices.Sort(files)
	return files, nil
}

func loadFile(path string) ([]document, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := yaml.NewDecoder(io.LimitReader(f, 16<<20))
	var out []document
	for n := 1; ; n++ {
		var root yaml.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		where := fmt.Sprintf("%s: document %d", path, n)
		node := &root
		if node.Kind == yaml.DocumentNode && len(node.Content) == 1 {
			node = node.Content[0]
		}
		switch node.Kind {
		case yaml.MappingNode:
			d, err := newDocument(where, node)
			if err != nil {
				return nil, err
			}
			out = append(out, d)
		case yaml.SequenceNode:
			for i, item := range node.Content {
				d, err := newDocument(fmt.Sprintf("%s, item %d", where, i+1), item)
				if err != nil {
					return nil, err
				}
				out = append(out, d)
			}
		default:
			if node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
				continue // an empty document, as after a final ---
			}
			return nil, fmt.Errorf("%s: must be a provider (an object) or a list of them", where)
		}
	}
}

// newDocument reads one provider. Its client_secret must name a source;
// an inline value is refused, and never quoted.
func newDocument(where string, node *yaml.Node) (document, error) {
	d := document{where: where}
	if node.Kind != yaml.MappingNode {
		return d, fmt.Errorf("%s: must be a provider (an object)", where)
	}
	var secret *yaml.Node
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], node.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return d, fmt.Errorf("%s: line %d: a member's name must be a string", where, k.Line)
		}
		if k.Value == "client_secret" {
			secret = v
			continue
		}
		raw, err := nodeJSON(v)
		if err != nil {
			return d, fmt.Errorf("%s: %s: %w", where, k.Value, err)
		}
		d.members = append(d.members, member{k.Value, raw})
	}
	for _, name := range []string{"name", "template"} {
		if d.name = d.stringMember(name); d.name != "" {
			d.where = fmt.Sprintf("%s (provider %q)", where, d.name)
			break
		}
	}
	if secret != nil {
		src, err := secretFrom(secret)
		if err != nil {
			return d, fmt.Errorf("%s: client_secret: %w", d.where, err)
		}
		d.secret = &src
	}
	if d.name == "" {
		return d, fmt.Errorf("%s: a provider needs a name (or a template, whose name it then takes)", where)
	}
	return d, nil
}

// secretFrom reads {env: NAME} or {file: PATH}.
func secretFrom(v *yaml.Node) (secretSource, error) {
	refused := errors.New("an inline secret is refused (a document is kept in git); name its source: {env: NAME} or {file: PATH}")
	if v.Kind != yaml.MappingNode || len(v.Content) != 2 || v.Content[1].Kind != yaml.ScalarNode {
		return secretSource{}, refused
	}
	key, val := v.Content[0].Value, v.Content[1].Value
	switch {
	case val == "":
		return secretSource{}, fmt.Errorf("{%s: ...} names nothing", key)
	case key == "env":
		return secretSource{env: val}, nil
	case key == "file":
		return secretSource{file: val}, nil
	}
	return secretSource{}, refused
}

// stringMember is the member's value when it is a JSON string.
func (d document) stringMember(name string) string {
	for _, m := range d.members {
		var s string
		if m.name == name && json.Unmarshal(m.value, &s) == nil {
			return s
		}
	}
	return ""
}

// body is the document as JSON with the members given, in their order.
func body(members []member) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(m.name))
		b.WriteByte(':')
		b.Write(m.value)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// nodeJSON turns a YAML node into JSON, keeping the order of mappings.
func nodeJSON(n *yaml.Node) (json.RawMessage, error) {
	switch n.Kind {
	case yaml.AliasNode:
		return nodeJSON(n.Alias)
	case yaml.MappingNode:
		var ms []member
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: a member's name must be a string", n.Content[i].Line)
			}
			v, err := nodeJSON(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			ms = append(ms, member{n.Content[i].Value, v})
		}
		return body(ms), nil
	case yaml.SequenceNode:
		items := make([]json.RawMessage, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := nodeJSON(c)
			if err != nil {
				return nil, err
			}
			items = append(items, v)
		}
		return json.Marshal(items)
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return json.Marshal(v)
	}
	return nil, fmt.Errorf("line %d: not a JSON value", n.Line)
}
