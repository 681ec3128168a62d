package registry

import (
	"bytes"
	"encoding/json"
	"slices"
	"time"

	"github.com/nexus-broker/nexus/messages"
)

// fixedFields are set by the broker (template and params when the provider
// is created): a patch may carry them only with the values they have, so
// that a document read with get can be edited and sent back whole.
var fixedFields = []string{"id", "created_at", "updated_at", "client_secret_set", "client_secret_digest", "template", "params"}

// parsePatch reads a JSON merge patch, which must be a JSON object.
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
	return patch, nil
}

// checkFixed checks the broker's fields a patch carries against cur. Equal
// values are fine (a document read with get and sent back). An updated_at
// that is a timestamp but not cur's is a conflict: the provider changed
// since the document was read, and applying the patch would undo that
// change. Anything else is a problem. newSecret: the patch sets a client
// secret, so client_secret_set may say true.
func checkFixed(cur messages.Provider, patch map[string]any, newSecret bool) (problems, error) {
	var ps problems
	if v, ok := patch["id"]; ok && v != cur.ID {
		ps.add("id", "is set by the broker and cannot be changed")
	}
	if v, ok := patch["client_secret_set"]; ok {
		if b, isBool := v.(bool); !isBool || (b != cur.ClientSecretSet && !(b && newSecret)) {
			ps.add("client_secret_set", "is set by the broker (whether the vault holds a client secret); send client_secret to set one")
		}
	}
	if v, ok := patch["client_secret_digest"]; ok && v != cur.ClientSecretDigest && !(v == nil && cur.ClientSecretDigest == "") {
		ps.add("client_secret_digest", "is set by the broker (a digest of the client secret sent last); send client_secret to change it")
	}
	if v, ok := patch["callback_path"]; ok && v != cur.CallbackPath {
		ps.add("callback_path", "is set by the broker (from the provider's id, or /v1/callback with shared_callback)")
	}
	if v, ok := patch["template"]; ok && v != cur.Template && !(v == nil && cur.Template == "") {
		ps.add("template", "is the catalog template the provider was created from; change the fields themselves")
	}
	if v, ok := patch["params"]; ok && !sameParams(v, cur.Params) {
		ps.add("params", "are the values the provider's template was filled with at creation; change the fields themselves")
	}
	if v, ok := patch["created_at"]; ok {
		if t, ok := timestamp(v); !ok || !t.Equal(cur.CreatedAt) {
			ps.add("created_at", "is set by the broker and cannot be changed")
		}
	}
	if v, ok := patch["updated_at"]; ok {
		t, isTime := timestamp(v)
		switch {
		case !isTime:
			ps.add("updated_at", "is set by the broker; leave it out, or send the value read to change the provider only if it has not changed since")
		case !t.Equal(cur.UpdatedAt):
			return nil, messages.Errorf(messages.CodeConflict, "the provider changed at %s, after the document this patch was made from (updated_at %s); read it again and apply the change to that",
				cur.UpdatedAt.UTC().Format(time.RFC3339Nano), t.UTC().Format(time.RFC3339Nano))
		}
	}
	return ps, nil
}

// sameParams: a patch's params (a JSON value) are the stored ones.
func sameParams(v any, cur map[string]string) bool {
	if v == nil {
		return len(cur) == 0
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) != len(cur) {
		return false
	}
	for k, s := range m {
		if c, ok := cur[k]; !ok || s != c {
			return false
		}
	}
	return true
}

func timestamp(v any) (time.Time, bool) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
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

// applyPatch returns cur with patch applied (without the broker's fields,
// which checkFixed looks at and which keep cur's values), and the problems
// of the merged document's members: unknown names, values of the wrong type.
func applyPatch(cur messages.Provider, patch map[string]any) (messages.Provider, problems, error) {
	cur.ClientSecret = ""
	raw, err := json.Marshal(cur)
	if err != nil {
		return messages.Provider{}, nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return messages.Provider{}, nil, err
	}
	changes := make(map[string]any, len(patch))
	for k, v := range patch {
		if !slices.Contains(fixedFields, k) {
			changes[k] = v
		}
	}
	merged, err := json.Marshal(mergePatch(doc, changes))
	if err != nil {
		return messages.Provider{}, nil, err
	}
	next, ps, err := decodeDocument(merged)
	if err != nil {
		return messages.Provider{}, nil, err
	}
	next.ID, next.CreatedAt, next.UpdatedAt, next.ClientSecretSet = cur.ID, cur.CreatedAt, cur.UpdatedAt, cur.ClientSecretSet
	return next, ps, nil
}
