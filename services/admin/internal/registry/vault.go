package registry

import (
	"context"
	"errors"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// vaultTimeout bounds each call to the vault.
const vaultTimeout = 5 * time.Second

// NATSVault talks to the vault's clients.* subjects and reads its audit
// records. The natsx.Client presents admin's first API key.
type NATSVault struct{ Client *natsx.Client }

var _ Vault = NATSVault{}

// PutClient creates or replaces a provider's client registration.
func (v NATSVault) PutClient(ctx context.Context, c messages.VaultClient) (messages.VaultClientReply, error) {
	var reply messages.VaultClientReply
	err := v.Client.Request(ctx, messages.SubjectVaultClientsPut, c, &reply)
	return reply, err
}

// DeleteClient removes a provider's client registration.
func (v NATSVault) DeleteClient(ctx context.Context, providerID string) error {
	var reply messages.VaultClientReply
	return v.Client.Request(ctx, messages.SubjectVaultClientsDelete, messages.VaultClientRef{ProviderID: providerID}, &reply)
}

// Health says whether the providers' token endpoints accept their
// registrations.
func (v NATSVault) Health(ctx context.Context, providerIDs []string) (map[string]messages.ProviderHealth, error) {
	var reply messages.VaultClientsHealthReply
	err := v.Client.Request(ctx, messages.SubjectVaultClientsHealth, messages.VaultClientsHealth{ProviderIDs: providerIDs}, &reply)
	return reply.Health, err
}

// ListAudit reads a page of the vault's audit records (admin's audit.list
// merges them with its own).
func (v NATSVault) ListAudit(ctx context.Context, r messages.AuditListRequest) (messages.AuditListReply, error) {
	var reply messages.AuditListReply
	err := v.Client.Request(ctx, messages.SubjectVaultAuditList, r, &reply)
	return reply, err
}

// vaultClient is what the vault needs of p; sec is empty when the vault
// should keep the secret it holds.
func vaultClient(p messages.Provider, sec secret) messages.VaultClient {
	return messages.VaultClient{
		ProviderID:         p.ID,
		ProviderName:       p.Name,
		Aliases:            p.Aliases,
		Type:               p.Type,
		ClientID:           p.ClientID,
		ClientSecret:       string(sec),
		ClientAuthMethod:   p.ClientAuthMethod,
		Issuer:             p.Issuer,
		TokenEndpoint:      p.TokenEndpoint,
		RevocationEndpoint: p.RevocationEndpoint,
		JWKSURI:            p.JWKSURI,
		Strategy:           p.Strategy,
		CredentialSchema:   p.CredentialSchema,
		Verification:       p.Verification,
		Quirks:             p.Quirks,

		DefaultTokenLifetimeSeconds: p.DefaultTokenLifetimeSeconds,
	}
}

// put hands p's client registration to the vault and returns whether the
// vault holds a client secret.
func (r *Registry) put(ctx context.Context, p messages.Provider, sec secret) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, vaultTimeout)
	defer cancel()
	reply, err := r.vault.PutClient(ctx, vaultClient(p, sec))
	if err != nil {
		return false, r.vaultErr(err)
	}
	return reply.ClientSecretSet, nil
}

// forget removes a client registration the vault accepted for a provider
// whose creation then failed. Best effort: a leftover is logged.
func (r *Registry) forget(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), vaultTimeout)
	defer cancel()
	if err := r.vault.DeleteClient(ctx, id); err != nil {
		r.log.Warn("could not remove the vault client of a provider that was not created", "provider_id", id, "err", err)
	}
}

// vaultErr passes the vault's own error replies on as they are; anything
// else means the vault could not be reached.
func (r *Registry) vaultErr(err error) error {
	var e *messages.Error
	if errors.As(err, &e) {
		return e
	}
	r.log.Warn("vault request failed", "err", err)
	return messages.Errorf(messages.CodeUnavailable, "the vault could not be reached; nothing was changed")
}
