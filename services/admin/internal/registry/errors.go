package registry

import (
	"errors"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/admin/internal/store"
	"github.com/nexus-broker/nexus/shared/pg"
)

// notFound is the reply for a reference that names no provider.
func notFound(ref string) error {
	return messages.Errorf(messages.CodeNotFound, "no provider has the id, name or alias %q", ref)
}

// storeErr turns store errors into the contract's errors: a name or alias
// another provider holds is a conflict (409), not an invalid document. Errors that are
// already *messages.Error (the vault's, through a push) pass unchanged; a
// database that does not answer is unavailable; anything else is internal.
func storeErr(err error, ref string) error {
	var (
		e      *messages.Error
		inUse  *store.NameInUseError
		issuer *store.IssuerInUseError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return e
	case errors.As(err, &issuer):
		return messages.Errorf(messages.CodeConflict, "issuer %q is already provider %q's, at other endpoints; no two servers may claim one issuer, so that every response is tied to its server", issuer.Issuer, issuer.Provider)
	case errors.Is(err, store.ErrNotFound):
		return notFound(ref)
	case errors.As(err, &inUse) && inUse.Name != "":
		return messages.Errorf(messages.CodeConflict, "name or alias already in use: %q", inUse.Name)
	case errors.Is(err, store.ErrNameInUse):
		return messages.Errorf(messages.CodeConflict, "name or alias already in use")
	case errors.Is(err, store.ErrStale):
		return messages.Errorf(messages.CodeUnavailable, "the provider is being changed by another request; try again")
	case pg.Unavailable(err):
		return messages.Errorf(messages.CodeUnavailable, "the provider registry's database did not answer; try again")
	}
	return err
}

// requireRef checks a request names a provider.
func requireRef(ref string) error {
	if ref == "" {
		return messages.Errorf(messages.CodeInvalidRequest, "provider is required (an id, name or alias)")
	}
	return nil
}
