package registry

import (
	"context"
	"time"

	"github.com/nexus-broker/nexus/messages"
)

// Create validates a new provider document (running OIDC discovery), stores
// it and hands its client registration, secret included, to the vault, all
// or nothing. The reply never carries the secret.
func (r *Registry) Create(ctx context.Context, p messages.Provider) (messages.Provider, error) {
	sec := takeSecret(&p)
	var ps problems
	if p.ID != "" {
		ps.add("id", "is assigned by the broker; leave it out")
	}
	p.ClientSecretSet, p.CreatedAt, p.UpdatedAt = false, time.Time{}, time.Time{}
	normalize(&p)
	ps = append(ps, r.check(ctx, &p, sec != "", false, true)...)
	if err := ps.err(); err != nil {
		return messages.Provider{}, err
	}
	p.ID = newID()
	pushed := false
	out, err := r.store.Create(ctx, p, func(ctx context.Context) (bool, error) {
		set, err := r.put(ctx, p, sec)
		pushed = err == nil
		return set, err
	})
	if err != nil {
		if pushed {
			r.forget(ctx, p.ID)
		}
		return messages.Provider{}, storeErr(err, p.Name)
	}
	r.log.Info("provider created", "provider_id", out.ID, "name", out.Name, "type", out.Type)
	return out, nil
}
