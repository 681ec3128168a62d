package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/admin/internal/secretdigest"
)

// Apply's exit codes: nothing changed (nothing would, with -dry-run), or
// something did (would).
const (
	exitUnchanged = 0
	exitChanged   = 2
)

// errChanged is apply's answer when it changed something (exit 2).
var errChanged = errors.New("changed")

// action is what apply does to one provider.
type action string

const (
	actCreate    action = "create"
	actUpdate    action = "update"
	actUnchanged action = "unchanged"
	actDelete    action = "delete"
)

// step is one line of the plan.
type step struct {
	action action
	name   string
	doc    *document
	// changed names the fields an update sets (client_secret with where it
	// comes from); secret is the value to send, read from its source.
	changed []string
	patch   []member
	secret  string
	stored  messages.Provider
}

// String is the plan's line: the action, the provider, what changes.
// Never a value.
func (s step) String() string {
	line := fmt.Sprintf("%-9s %s", s.action, s.name)
	if len(s.changed) > 0 {
		line += " (" + strings.Join(s.changed, ", ") + ")"
	}
	return line
}

// brokerFields are set by the broker: a document that names one is wrong
// (it was copied from get without being cleaned).
var brokerFields = []string{"id", "client_secret_set", "client_secret_digest", "callback_path", "health", "created_at", "updated_at"}

// apply makes admin's providers what the documents under path describe:
// it plans (create, update, unchanged; with prune, delete the providers no
// document names), prints the plan, and carries it out unless dryRun.
func (c *cli) apply(ctx context.Context, a api, path string, prune, dryRun bool) error {
	docs, err := loadDocuments(path)
	if err != nil {
		return err
	}
	stored, err := allProviders(ctx, a)
	if err != nil {
		return err
	}
	plan, err := c.plan(docs, stored, prune)
	if err != nil {
		return err
	}
	counts := map[action]int{}
	for _, s := range plan {
		counts[s.action]++
		fmt.Fprintln(c.stdout, s)
	}
	changes := len(plan) - counts[actUnchanged]
	fmt.Fprintf(c.stdout, "plan: %d to create, %d to update, %d to delete, %d unchanged\n",
		counts[actCreate], counts[actUpdate], counts[actDelete], counts[actUnchanged])
	if changes == 0 {
		return nil
	}
	if dryRun {
		return errChanged
	}
	for i, s := range plan {
		if err := carryOut(ctx, a, s); err != nil {
			return fmt.Errorf("%s: %s: %w (%d of %d changes applied before it)", s.where(), s.action, err, applied(plan[:i]), changes)
		}
	}
	fmt.Fprintf(c.stdout, "applied: %d created, %d updated, %d deleted\n", counts[actCreate], counts[actUpdate], counts[actDelete])
	return errChanged
}

func applied(done []step) int {
	n := 0
	for _, s := range done {
		if s.action != actUnchanged {
			n++
		}
	}
	return n
}

func (s step) where() string {
	if s.doc != nil {
		return s.doc.where
	}
	return fmt.Sprintf("provider %q", s.name)
}

// allProviders reads every page of providers.list.
func allProviders(ctx context.Context, a api) ([]messages.Provider, error) {
	var out []messages.Provider
	req := messages.ListProvidersRequest{Limit: messages.MaxListLimit}
	for {
		page, err := a.listProviders(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("listing the providers: %w", err)
		}
		out = append(out, page.Providers...)
		if page.NextCursor == "" {
			return out, nil
		}
		req.Cursor = page.NextCursor
	}
}

// plan compares each document with the provider of its name, in document
// order, then lists the deletions prune asks for.
func (c *cli) plan(docs []document, stored []messages.Provider, prune bool) ([]step, error) {
	byName := map[string]messages.Provider{}
	for _, p := range stored {
		byName[p.Name] = p
	}
	var plan []step
	named := map[string]bool{}
	for i := range docs {
		d := &docs[i]
		named[d.name] = true
		s, err := c.planOne(d, byName)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.where, err)
		}
		plan = append(plan, s)
	}
	if prune {
		for _, p := range stored {
			if !named[p.Name] {
				plan = append(plan, step{action: actDelete, name: p.Name, stored: p})
			}
		}
	}
	return plan, nil
}

func (c *cli) planOne(d *document, byName map[string]messages.Provider) (step, error) {
	for _, m := range d.members {
		if slices.Contains(brokerFields, m.name) {
			return step{}, fmt.Errorf("%s is set by the broker; leave it out of the document", m.name)
		}
	}
	s := step{doc: d, name: d.name}
	if d.secret != nil {
		v, err := d.secret.read(c.getenv)
		if err != nil {
			return step{}, err
		}
		s.secret = v
	}
	cur, exists := byName[d.name]
	if !exists {
		s.action = actCreate
		return s, nil
	}
	s.stored = cur
	have, err := fieldsOf(cur)
	if err != nil {
		return step{}, err
	}
	for _, m := range d.members {
		if same(m.name, m.value, have[m.name]) {
			continue
		}
		if m.name == "template" || m.name == "params" {
			return step{}, fmt.Errorf("%s differs from the provider's, which it was created with and keeps; "+
				"delete the provider (its connections go with it) to create it anew, or describe the fields themselves", m.name)
		}
		s.changed = append(s.changed, m.name)
		s.patch = append(s.patch, m)
	}
	// The secret is write-only: the stored digest says whether the one
	// read from its source is the one the vault holds.
	if s.secret != "" && !secretdigest.Matches(cur.ClientSecretDigest, s.secret) {
		s.changed = append(s.changed, "client_secret from "+d.secret.String())
	}
	s.action = actUpdate
	if len(s.changed) == 0 {
		s.action, s.secret = actUnchanged, ""
	}
	return s, nil
}

// carryOut makes one change. An update sends the updated_at it compared
// against, so a provider changed since is a conflict, not overwritten.
func carryOut(ctx context.Context, a api, s step) error {
	switch s.action {
	case actCreate:
		_, err := a.createProvider(ctx, body(withSecret(s.doc.members, s.secret)))
		return err
	case actUpdate:
		at, err := json.Marshal(s.stored.UpdatedAt)
		if err != nil {
			return err
		}
		patch := append(slices.Clone(s.patch), member{"updated_at", at})
		if s.secret != "" && slices.ContainsFunc(s.changed, func(f string) bool { return strings.HasPrefix(f, "client_secret") }) {
			patch = withSecret(patch, s.secret)
		}
		_, err = a.updateProvider(ctx, s.stored.ID, body(patch))
		return err
	case actDelete:
		_, err := a.deleteProvider(ctx, s.stored.ID)
		return err
	}
	return nil
}

func withSecret(members []member, secret string) []member {
	if secret == "" {
		return members
	}
	v, _ := json.Marshal(secret) // a string always encodes
	return append(slices.Clone(members), member{"client_secret", v})
}

// fieldsOf is the stored provider's document, member by member.
func fieldsOf(p messages.Provider) (map[string]json.RawMessage, error) {
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	var out map[string]json.RawMessage
	return out, json.Unmarshal(raw, &out)
}

// same reports whether a document's value for a field is what the broker
// stores: equal as JSON, an empty value (null, "", [], {}, 0, false) the
// same as none, aliases in any order (the broker keeps them sorted), and
// params compared only for those the document names (the stored ones
// include the template's defaults).
func same(field string, want, have json.RawMessage) bool {
	w, h := decodeAny(want), decodeAny(have)
	switch field {
	case "aliases":
		ws, hs := stringList(w), stringList(h)
		slices.Sort(ws)
		slices.Sort(hs)
		return slices.Equal(ws, hs)
	case "params":
		wm, _ := w.(map[string]any)
		hm, _ := h.(map[string]any)
		for k, v := range wm {
			if hm[k] != v {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(w, h)
}

// decodeAny decodes JSON with numbers kept exact and empty values (null,
// "", [], {}, 0, false) as nil, in objects too (their members dropped).
func decodeAny(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil && !errors.Is(err, io.EOF) {
		return string(raw)
	}
	return dropEmpty(v)
}

func dropEmpty(v any) any {
	switch x := v.(type) {
	case string:
		if x == "" {
			return nil
		}
	case bool:
		if !x {
			return nil
		}
	case json.Number:
		if x == "0" {
			return nil
		}
	case []any:
		if len(x) == 0 {
			return nil
		}
		for i := range x {
			x[i] = dropEmpty(x[i])
		}
	case map[string]any:
		for k, e := range x {
			if x[k] = dropEmpty(e); x[k] == nil {
				delete(x, k)
			}
		}
		if len(x) == 0 {
			return nil
		}
	}
	return v
}

// stringList is a JSON array of strings as a slice.
func stringList(v any) []string {
	items, _ := v.([]any)
	out := make([]string, 0, len(items))
	for _, it := range items {
		s, _ := it.(string)
		out = append(out, s)
	}
	return out
}
