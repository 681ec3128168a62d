package registry

import (
	"context"
	"errors"

	"github.com/nexus-broker/nexus/messages"
)

// Delete removes a provider. The vault's client registration goes first; if
// the vault refuses (connections still use the provider) its error is the
// reply and the provider stays. The reply is the deleted provider.
func (r *Registry) Delete(ctx context.Context, ref messages.ProviderRef) (messages.Provider, error) {
	if err := requireRef(ref.Provider); err != nil {
		return messages.Provider{}, err
	}
	out, err := r.store.Delete(ctx, ref.Provider, func(ctx context.Context, p messages.Provider) error {
		ctx, cancel := context.WithTimeout(ctx, vaultTimeout)
		defer cancel()
		err := r.vault.DeleteClient(ctx, p.ID)
		if err == nil || errors.Is(err, messages.ErrNotFound) { // nothing registered: nothing to remove
			return nil
		}
		return r.vaultErr(err)
	}, audit(ctx, messages.SubjectProvidersDelete, nil))
	if err != nil {
		return messages.Provider{}, storeErr(err, ref.Provider)
	}
	r.log.Info("provider deleted", "provider_id", out.ID, "name", out.Name)
	return out, nil
}
