// Package schema holds the JSON Schemas (draft 2020-12) of the broker's
// contract, generated from the messages types: every request, reply and
// event body, and the error body, one file per type, and index.json naming
// each subject's request and reply. They are for Gateways and readers of
// NEXUS_EVENTS written in other languages, and for validating messages.
// Regenerate them with `make schemas` (or go generate here); a test fails
// when they fall out of step with messages.
package schema

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/nexus-broker/nexus/messages/schema/internal/gen"
)

//go:generate go run ./cmd/nexus-schemas -dir . -messages ..

// FS holds every schema file and index.json.
//
//go:embed *.json
var FS embed.FS

// IndexFile is the index's name in FS.
const IndexFile = gen.IndexFile

// Index is index.json: the schema files of each subject's request and
// reply (subjects relative to the prefix), of each event subject's body,
// and of every error reply.
type Index = gen.Index

// Pair is a subject's request and reply schema files, and who may call it.
type Pair = gen.Pair

// ReadIndex reads index.json from FS.
func ReadIndex() (Index, error) {
	var idx Index
	b, err := FS.ReadFile(IndexFile)
	if err != nil {
		return idx, err
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, fmt.Errorf("%s: %w", IndexFile, err)
	}
	return idx, nil
}

// Validator checks documents against the schemas of FS, formats
// (date-time) included.
type Validator struct {
	schemas map[string]*jsonschema.Schema
}

// NewValidator compiles every schema of FS.
func NewValidator() (*Validator, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	files, err := fs.Glob(FS, "*.json")
	if err != nil {
		return nil, err
	}
	v := &Validator{schemas: map[string]*jsonschema.Schema{}}
	for _, f := range files {
		if f == IndexFile {
			continue
		}
		b, err := FS.ReadFile(f)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if err := c.AddResource(f, doc); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if v.schemas[f], err = c.Compile(f); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	return v, nil
}

// Validate checks the JSON document data against the schema file (e.g.
// "Credential.json").
func (v *Validator) Validate(file string, data []byte) error {
	s, ok := v.schemas[file]
	if !ok {
		return fmt.Errorf("no schema %s", file)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return s.Validate(doc)
}
