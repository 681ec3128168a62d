package registry

import (
	"context"
	"encoding/base64"
	"strings"

	"github.com/nexus-broker/nexus/messages"
)

// Get returns the provider named by id, name or alias, with what the vault
// says of its health (an operator's read).
func (r *Registry) Get(ctx context.Context, ref messages.ProviderRef) (messages.Provider, error) {
	p, err := r.Find(ctx, ref)
	if err != nil {
		return messages.Provider{}, err
	}
	ps := []messages.Provider{p}
	r.withHealth(ctx, ps)
	return ps[0], nil
}

// Find returns the provider named by id, name or alias, as admin stores it:
// the handshake's read at every handshake.begin, which needs no vault call.
func (r *Registry) Find(ctx context.Context, ref messages.ProviderRef) (messages.Provider, error) {
	if err := requireRef(ref.Provider); err != nil {
		return messages.Provider{}, err
	}
	p, err := r.store.Get(ctx, ref.Provider)
	return p, storeErr(err, ref.Provider)
}

// withHealth fills in what the vault says of each provider's registration
// (misconfigured after its token endpoint refused the client). A vault
// that does not answer leaves it out: the read does not fail for it.
func (r *Registry) withHealth(ctx context.Context, ps []messages.Provider) {
	if len(ps) == 0 {
		return
	}
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	ctx, cancel := context.WithTimeout(ctx, vaultTimeout)
	defer cancel()
	health, err := r.vault.Health(ctx, ids)
	if err != nil {
		r.log.Warn("the vault did not say how the providers' registrations are; providers are listed without their health", "err", err)
		return
	}
	for i := range ps {
		if h, ok := health[ps[i].ID]; ok {
			ps[i].Health = &h
		}
	}
}

// List returns one page of providers in id order, optionally of one type.
func (r *Registry) List(ctx context.Context, req messages.ListProvidersRequest) (messages.ListProvidersReply, error) {
	var ps problems
	switch req.Type {
	case "", messages.ProviderOIDC, messages.ProviderOAuth2, messages.ProviderStatic:
	default:
		ps.add("type", "must be oidc, oauth2 or static")
	}
	limit := req.Limit
	switch {
	case limit < 0:
		ps.add("limit", "must not be negative")
	case limit == 0:
		limit = messages.DefaultListLimit
	case limit > messages.MaxListLimit:
		limit = messages.MaxListLimit
	}
	after, ok := decodeCursor(req.Cursor)
	if !ok {
		ps.add("cursor", "is not a cursor from a previous page")
	}
	if len(ps) > 0 {
		return messages.ListProvidersReply{}, messages.Errorf(messages.CodeInvalidRequest, "invalid list request: %s", strings.Join(ps.texts(), "; "))
	}
	page, err := r.store.List(ctx, req.Type, after, limit+1)
	if err != nil {
		return messages.ListProvidersReply{}, storeErr(err, "")
	}
	reply := messages.ListProvidersReply{Providers: page}
	if len(page) > limit {
		reply.Providers = page[:limit]
		reply.NextCursor = encodeCursor(page[limit-1].ID)
	}
	r.withHealth(ctx, reply.Providers)
	return reply, nil
}

// Cursors are opaque to callers: the last id of a page, versioned and
// base64url-encoded.
const cursorVersion = "c1:"

func encodeCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorVersion + id))
}

func decodeCursor(c string) (string, bool) {
	if c == "" {
		return "", true
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", false
	}
	id, ok := strings.CutPrefix(string(b), cursorVersion)
	return id, ok && id != ""
}
