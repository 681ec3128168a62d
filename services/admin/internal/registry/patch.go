package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nexus-broker/nexus/messages"
)

// fixedFields are set by the broker and cannot be patched.
var fixedFields = []string{"id", "created_at", "updated_at", "client_secret_set"}

// parsePatch reads a JSON merge patch, which must be a JSON object, and
// rejects one that touches a field the broker owns.
func parsePatch(raw json.RawMessage) (map[string]any, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil, messages.Errorf(messages.CodeInvalidRequest, "patch is required (a JSON merge patch object)")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return nil, messages.Errorf(messages.CodeInvalidRequest, "patch is not valid JSON")
	}
	patch, ok := v.(map[string]any)
	if !ok {
		return nil, messages.Errorf(messages.CodeInvalidRequest, "patch must be a JSON object (RFC 7396 merge patch)")
	}
	var ps problems
	for _, f := range fixedFields {
		if _, ok := patch[f]; ok {
			ps.add(f, "is set by the broker and cannot be changed")
		}
	}
	return patch, ps.err()
}

// mergePatch applies an RFC 7396 JSON merge patch to target.
func mergePatch(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
		} else {
			tm[k] = mergePatch(tm[k], v)
		}
	}
	return tm
}

// applyPatch returns cur with patch applied. Unknown fields and values of the
// wrong type are invalid_request. The broker-owned fields keep cur's values.
func applyPatch(cur messages.Provider, patch map[string]any) (messages.Provider, error) {
	cur.ClientSecret = ""
	raw, err := json.Marshal(cur)
	if err != nil {
		return messages.Provider{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return messages.Provider{}, err
	}
	merged, err := json.Marshal(mergePatch(doc, patch))
	if err != nil {
		return messages.Provider{}, err
	}
	var next messages.Provider
	dec = json.NewDecoder(bytes.NewReader(merged))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&next); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return messages.Provider{}, messages.Errorf(messages.CodeInvalidRequest, "invalid patch: field %q: expected %s", te.Field, te.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return messages.Provider{}, messages.Errorf(messages.CodeInvalidRequest, "invalid patch: %s", strings.TrimPrefix(err.Error(), "json: "))
		}
		return messages.Provider{}, messages.Errorf(messages.CodeInvalidRequest, "invalid patch: %s", fmt.Sprint(err))
	}
	next.ID, next.CreatedAt, next.UpdatedAt, next.ClientSecretSet = cur.ID, cur.CreatedAt, cur.UpdatedAt, cur.ClientSecretSet
	return next, nil
}
