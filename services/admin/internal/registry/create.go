package registry

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nexus-broker/nexus/messages"
)

// Create validates a new provider document as sent (running OIDC
// discovery), reporting every problem at once, stores it and hands its
// client registration, secret included, to the vault, all or nothing. The
// reply never carries the secret. Of the broker's fields, id is refused;
// client_secret_set, client_secret_digest, created_at and updated_at are
// ignored, so a document
// read from another provider can be reused without its id. A document
// naming a catalog template is filled from it first (fromTemplate).
func (r *Registry) Create(ctx context.Context, doc json.RawMessage) (messages.Provider, error) {
	doc, params, err := r.fromTemplate(doc)
	if err != nil {
		return messages.Provider{}, err
	}
	p, ps, err := decodeDocument(doc)
	if err != nil {
		return messages.Provider{}, err
	}
	if p.Template != "" {
		p.Params = params
	}
	sec := takeSecret(&p)
	if p.ID != "" {
		ps.add("id", "is assigned by the broker; leave it out (to change an existing provider, update it)")
	}
	p.ClientSecretSet, p.CreatedAt, p.UpdatedAt, p.CallbackPath = false, time.Time{}, time.Time{}, ""
	normalize(&p)
	ps = append(ps, r.check(ctx, &p, sec != "", false, true)...)
	if err := ps.err(); err != nil {
		return messages.Provider{}, err
	}
	if p.ClientSecretDigest, err = sec.digest(); err != nil {
		return messages.Provider{}, err
	}
	p.ID = newID()
	pushed := false
	out, err := r.store.Create(ctx, p, func(ctx context.Context) (bool, error) {
		set, err := r.put(ctx, p, sec)
		pushed = err == nil
		return set, err
	}, audit(ctx, messages.SubjectProvidersCreate, changed(messages.Provider{}, p, sec != "")))
	if err != nil {
		if pushed {
			r.forget(ctx, p.ID)
		}
		return messages.Provider{}, storeErr(err, p.Name)
	}
	r.log.Info("provider created", "provider_id", out.ID, "name", out.Name, "type", out.Type)
	return out, nil
}
