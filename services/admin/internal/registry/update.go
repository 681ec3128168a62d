package registry

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/admin/internal/store"
)

// maxUpdateAttempts bounds the re-reads when another request changes the
// provider between our read and our write. A merge patch applies as well to
// the newer document, so retrying is safe.
const maxUpdateAttempts = 3

// Update applies an RFC 7396 merge patch to a stored provider, validates the
// result as on create, and pushes the client registration to the vault. A
// client_secret in the patch is a new secret; without one the vault keeps
// the secret it holds.
//
// For oidc providers discovery runs again when the issuer or the type
// changes, or when the patch sets an endpoint to null. On an issuer change,
// the stored endpoints are dropped and rediscovered, except those the patch
// sets explicitly to new values (which override discovery, as on create).
//
// The broker's fields (id, created_at, updated_at, client_secret_set,
// client_secret_digest) may
// be in the patch with the values they have, so a document from get can be
// edited and sent back whole; an updated_at other than the stored one is a
// conflict (the provider changed since it was read).
func (r *Registry) Update(ctx context.Context, u messages.ProviderUpdate) (messages.Provider, error) {
	if err := requireRef(u.Provider); err != nil {
		return messages.Provider{}, err
	}
	patch, err := parsePatch(u.Patch)
	if err != nil {
		return messages.Provider{}, err
	}
	schemaPatch := rawMember(u.Patch, "credential_schema")
	for attempt := 1; ; attempt++ {
		cur, err := r.store.Get(ctx, u.Provider)
		if err != nil {
			return messages.Provider{}, storeErr(err, u.Provider)
		}
		next, sec, err := r.prepare(ctx, cur, patch, schemaPatch)
		if err != nil {
			return messages.Provider{}, err
		}
		out, err := r.store.Update(ctx, next, cur.UpdatedAt, func(ctx context.Context) (bool, error) {
			return r.put(ctx, next, sec)
		}, audit(ctx, messages.SubjectProvidersUpdate, changed(cur, next, sec != "")))
		if errors.Is(err, store.ErrStale) && attempt < maxUpdateAttempts {
			continue
		}
		if err != nil {
			return messages.Provider{}, storeErr(err, u.Provider)
		}
		r.log.Info("provider updated", "provider_id", out.ID, "name", out.Name, "new_client_secret", sec != "")
		return out, nil
	}
}

// prepare builds and validates the patched document, and takes its new
// client secret out of it. schemaPatch is the patch's credential_schema as
// sent, merged again so that the schema keeps its key order.
func (r *Registry) prepare(ctx context.Context, cur messages.Provider, patch map[string]any, schemaPatch json.RawMessage) (messages.Provider, secret, error) {
	newSecret, _ := patch["client_secret"].(string)
	ps, err := checkFixed(cur, patch, newSecret != "")
	if err != nil {
		return messages.Provider{}, "", err
	}
	next, decoded, err := applyPatch(cur, patch)
	if err != nil {
		return messages.Provider{}, "", err
	}
	ps = append(ps, decoded...)
	if len(schemaPatch) > 0 && len(next.CredentialSchema) > 0 {
		if merged, err := orderedMerge(cur.CredentialSchema, schemaPatch); err == nil {
			next.CredentialSchema = merged
		}
	}
	sec := takeSecret(&next)
	normalize(&next)
	discover := next.Type == messages.ProviderOAuth2 && (cur.Type != next.Type || next.Issuer != cur.Issuer)
	if next.Type == messages.ProviderOIDC {
		reissued := cur.Type != messages.ProviderOIDC || next.Issuer != cur.Issuer
		discover = reissued
		for _, f := range discoveredFields {
			v, inPatch := patch[f]
			if inPatch && v == nil {
				discover = true
			}
			// With a new issuer, an endpoint the patch does not set, or
			// sets to the stored value (a document read with get and sent
			// back with its issuer edited), is the old issuer's: it goes,
			// and discovery fills it in.
			if reissued && (!inPatch || v == *endpoint(&cur, f)) {
				*endpoint(&next, f) = ""
			}
		}
	}
	ps = append(ps, r.check(ctx, &next, sec != "", cur.ClientSecretSet, discover)...)
	if err := ps.err(); err != nil {
		return messages.Provider{}, "", err
	}
	if sec != "" {
		if next.ClientSecretDigest, err = sec.digest(); err != nil {
			return messages.Provider{}, "", err
		}
	}
	return next, sec, nil
}

// endpoint points at the field of p named by one of discoveredFields.
func endpoint(p *messages.Provider, field string) *string {
	switch field {
	case "authorization_endpoint":
		return &p.AuthorizationEndpoint
	case "token_endpoint":
		return &p.TokenEndpoint
	case "revocation_endpoint":
		return &p.RevocationEndpoint
	default:
		return &p.JWKSURI
	}
}

// rawMember is the member name of a JSON object as sent, or nil.
func rawMember(raw json.RawMessage, name string) json.RawMessage {
	var members map[string]json.RawMessage
	if json.Unmarshal(raw, &members) != nil {
		return nil
	}
	return members[name]
}
