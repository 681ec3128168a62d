// Package static checks, selects and tries out static credentials (API keys,
// username and password, AWS keys ...): it validates them against a
// provider's JSON Schema and strategy, picks the fields the Gateway is given,
// and makes a provider's verification request with them applied.
//
// Nothing here returns or logs a credential value: problems name fields,
// verification failures carry an HTTP status only.
package static

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// schemaURL names the one resource of every compiled schema.
const schemaURL = "urn:nexus:credential-schema"

// maxProblems bounds how many problems one InvalidError reports.
const maxProblems = 20

// InvalidError says why credentials were refused: each problem names a field
// and what is wrong with it, never its value.
type InvalidError struct {
	Problems []string
}

func (e *InvalidError) Error() string {
	return "credentials do not match what the provider expects: " + strings.Join(e.Problems, "; ")
}

func invalid(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	slices.Sort(problems)
	problems = slices.Compact(problems)
	if len(problems) > maxProblems {
		problems = append(problems[:maxProblems], "...")
	}
	return &InvalidError{Problems: problems}
}

// noLoader refuses every external reference: a credential schema is
// self-contained, and compiling one never reads a file or the network.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external references are not allowed (%s)", url)
}

// Compile compiles a credential schema (JSON Schema draft 2020-12, format
// assertions on, as the hosted form validates).
func Compile(raw json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, fmt.Errorf("not a JSON object")
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, err
	}
	return c.Compile(schemaURL)
}

// SchemaHash identifies a credential schema as stored (hex SHA-256 of its
// text), the same on every replica reading the same provider row.
func SchemaHash(raw json.RawMessage) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// maxSchemas bounds the compiled-schema cache; providers rarely number more.
const maxSchemas = 256

// Schemas compiles each credential schema once, keyed by its hash. It is
// safe for concurrent use.
type Schemas struct {
	mu sync.Mutex
	m  map[string]*jsonschema.Schema
}

// NewSchemas returns an empty cache.
func NewSchemas() *Schemas { return &Schemas{m: map[string]*jsonschema.Schema{}} }

// Get returns raw compiled, and its hash.
func (s *Schemas) Get(raw json.RawMessage) (*jsonschema.Schema, string, error) {
	h := SchemaHash(raw)
	s.mu.Lock()
	sch, ok := s.m[h]
	s.mu.Unlock()
	if ok {
		return sch, h, nil
	}
	sch, err := Compile(raw)
	if err != nil {
		return nil, h, err
	}
	s.mu.Lock()
	if len(s.m) >= maxSchemas {
		for k := range s.m { // drop any one: a miss only costs a compile
			delete(s.m, k)
			break
		}
	}
	s.m[h] = sch
	s.mu.Unlock()
	return sch, h, nil
}

// Decode reads a credentials object, keeping numbers exact (json.Number).
func Decode(raw []byte) (map[string]any, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, &InvalidError{Problems: []string{"credentials must be a JSON object"}}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &InvalidError{Problems: []string{"credentials must be a JSON object"}}
	}
	return m, nil
}

// Validate checks creds against sch. The *InvalidError it returns names
// each failing field and the rule it breaks, never a value.
func Validate(sch *jsonschema.Schema, creds map[string]any) error {
	err := sch.Validate(creds)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return invalid([]string{"credentials could not be checked against the provider's schema"})
	}
	var problems []string
	collect(ve, &problems)
	if len(problems) == 0 {
		problems = []string{"credentials do not match the provider's schema"}
	}
	return invalid(problems)
}

func collect(ve *jsonschema.ValidationError, out *[]string) {
	if len(ve.Causes) > 0 {
		for _, c := range ve.Causes {
			collect(c, out)
		}
		return
	}
	at := path(ve.InstanceLocation)
	switch k := ve.ErrorKind.(type) {
	case *kind.Required:
		for _, name := range k.Missing {
			*out = append(*out, path(append(slices.Clone(ve.InstanceLocation), name))+" is required")
		}
	case *kind.AdditionalProperties:
		*out = append(*out, fmt.Sprintf("%s has properties the provider's schema does not allow: %s", at, strings.Join(k.Properties, ", ")))
	case *kind.Type:
		*out = append(*out, fmt.Sprintf("%s must be of type %s", at, strings.Join(k.Want, " or ")))
	case *kind.MinLength:
		*out = append(*out, fmt.Sprintf("%s must have at least %d characters", at, k.Want))
	case *kind.MaxLength:
		*out = append(*out, fmt.Sprintf("%s must have at most %d characters", at, k.Want))
	case *kind.Format:
		*out = append(*out, fmt.Sprintf("%s must be a valid %s", at, k.Want))
	default:
		// The keyword, not the library's message: some of those quote the value.
		kw := "schema"
		if p := ve.ErrorKind.KeywordPath(); len(p) > 0 {
			kw = p[len(p)-1]
		}
		*out = append(*out, fmt.Sprintf("%s does not satisfy the provider's schema (%s)", at, kw))
	}
}

// path names a location inside the credentials: credentials.api_key.
func path(loc []string) string {
	if len(loc) == 0 {
		return "credentials"
	}
	return "credentials." + strings.Join(loc, ".")
}
