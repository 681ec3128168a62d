package registry

import (
	"context"
	"encoding/base64"
	"strings"

	"github.com/nexus-broker/nexus/messages"
)

// Get returns the provider named by id, name or alias.
func (r *Registry) Get(ctx context.Context, ref messages.ProviderRef) (messages.Provider, error) {
	if err := requireRef(ref.Provider); err != nil {
		return messages.Provider{}, err
	}
	p, err := r.store.Get(ctx, ref.Provider)
	return p, storeErr(err, ref.Provider)
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
		return messages.ListProvidersReply{}, err
	}
	reply := messages.ListProvidersReply{Providers: page}
	if len(page) > limit {
		reply.Providers = page[:limit]
		reply.NextCursor = encodeCursor(page[limit-1].ID)
	}
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
