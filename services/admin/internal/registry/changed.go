package registry

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/admin/internal/store"
	"github.com/nexus-broker/nexus/shared/apikey"
)

// audit is the record of a change by the caller of ctx (an operator, with
// the key id it presented; never the key).
func audit(ctx context.Context, action string, changed []string) store.Audit {
	c := apikey.CallerOf(ctx)
	return store.Audit{Principal: c.Principal, KeyID: c.KeyID, Action: action, Changed: changed}
}

// unaudited are the broker's own fields of a provider document, and the
// write-only secret (which changed reports by newSecret alone).
var unaudited = map[string]bool{"id": true, "client_secret": true, "client_secret_set": true, "client_secret_digest": true, "created_at": true, "updated_at": true}

// changed names the fields of a provider document whose values differ
// between before and after (the zero Provider before a create), in document
// order, then client_secret when a new secret was sent. Only names: no
// value, old or new, is in what it returns.
func changed(before, after messages.Provider, newSecret bool) []string {
	b, a := fieldValues(before), fieldValues(after)
	out := []string{}
	for _, name := range documentFields {
		if !unaudited[name] && !bytes.Equal(b[name], a[name]) {
			out = append(out, name)
		}
	}
	if newSecret {
		out = append(out, "client_secret")
	}
	return out
}

// fieldValues are p's fields as compact JSON, an empty value (null, "",
// [], {}, 0, false) as nothing, so that an absent and an empty field are
// the same.
func fieldValues(p messages.Provider) map[string][]byte {
	raw, err := json.Marshal(p)
	var fields map[string]json.RawMessage
	if err == nil {
		err = json.Unmarshal(raw, &fields)
	}
	out := map[string][]byte{}
	if err != nil {
		return out
	}
	for name, v := range fields {
		var c bytes.Buffer
		if json.Compact(&c, v) != nil {
			c.Reset()
			c.Write(v)
		}
		switch c.String() {
		case "null", `""`, "[]", "{}", "0", "false":
			continue
		}
		out[name] = c.Bytes()
	}
	return out
}
