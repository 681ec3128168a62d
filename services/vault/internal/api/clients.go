package api

import (
	"context"
	"net/http"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/provider"
	"github.com/nexus-broker/nexus/services/vault/internal/secret"
	"github.com/nexus-broker/nexus/services/vault/internal/static"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
	"github.com/nexus-broker/nexus/shared/egress"
)

type clientStore interface {
	GetClient(ctx context.Context, providerID string) (store.Client, error)
	PutClient(ctx context.Context, c store.Client) (store.Client, error)
	DeleteClient(ctx context.Context, providerID string) error
	Health(ctx context.Context, ids []string) (map[string]messages.ProviderHealth, error)
}

// vault.clients.health: whether providers' token endpoints accept their
// registrations (misconfigured after invalid_client).
func (h *Handlers) clientsHealth(ctx context.Context, r messages.VaultClientsHealth) (messages.VaultClientsHealthReply, error) {
	if len(r.ProviderIDs) == 0 || len(r.ProviderIDs) > messages.MaxListLimit {
		return messages.VaultClientsHealthReply{}, messages.Errorf(messages.CodeInvalidRequest, "provider_ids is required (at most %d)", messages.MaxListLimit)
	}
	health, err := h.Store.Health(ctx, r.ProviderIDs)
	if err != nil {
		return messages.VaultClientsHealthReply{}, err
	}
	return messages.VaultClientsHealthReply{Health: health}, nil
}

// vault.clients.put: create or replace a provider's client registration.
func (h *Handlers) putClient(ctx context.Context, r messages.VaultClient) (messages.VaultClientReply, error) {
	if err := validateClient(&r, h.ProviderNetworks); err != nil {
		return messages.VaultClientReply{}, err
	}
	// The secret, and the connections' refresh tokens, may only go where
	// they were registered to go: PutClient refuses a move of the token or
	// revocation endpoint to another origin without the secret, and while
	// connections hold grants of the old one.
	c, err := h.Store.PutClient(ctx, store.Client{
		ProviderID: r.ProviderID, ProviderName: r.ProviderName, Aliases: r.Aliases, Type: r.Type, ClientID: r.ClientID,
		ClientSecret: secret.Value(r.ClientSecret), ClientAuthMethod: r.ClientAuthMethod, Issuer: r.Issuer,
		TokenEndpoint: r.TokenEndpoint, RevocationEndpoint: r.RevocationEndpoint, JWKSURI: r.JWKSURI, Strategy: r.Strategy,
		DefaultTokenLifetimeSeconds: r.DefaultTokenLifetimeSeconds,
		CredentialSchema:            r.CredentialSchema, Verification: r.Verification, Quirks: r.Quirks,
	})
	if err != nil {
		return messages.VaultClientReply{}, err
	}
	h.Log.Info("provider client stored", "client", r)
	return messages.VaultClientReply{ProviderID: c.ProviderID, ClientSecretSet: c.ClientSecretSet, Health: c.Health}, nil
}

// MaxDefaultTokenLifetimeSeconds bounds default_token_lifetime_seconds (a year).
const MaxDefaultTokenLifetimeSeconds = 365 * 24 * 3600

func validateClient(r *messages.VaultClient, private egress.Networks) error {
	bad := func(format string, args ...any) error {
		return messages.Errorf(messages.CodeInvalidRequest, format, args...)
	}
	if r.ProviderID == "" || len(r.ProviderID) > 200 {
		return bad("provider_id is required (at most 200 characters)")
	}
	if r.ProviderName == "" {
		return bad("provider_name is required")
	}
	if r.DefaultTokenLifetimeSeconds < 0 || r.DefaultTokenLifetimeSeconds > MaxDefaultTokenLifetimeSeconds {
		return bad("default_token_lifetime_seconds must be between 0 (the vault's default, %d) and %d",
			int(store.DefaultTokenLifetime.Seconds()), MaxDefaultTokenLifetimeSeconds)
	}
	if r.Quirks != nil {
		if ps := r.Quirks.Problems(); len(ps) > 0 {
			return bad("%s: %s", ps[0].Field, ps[0].Message)
		}
	}
	switch r.Type {
	case messages.ProviderStatic:
		if r.Quirks != nil {
			return bad("quirks are only for oauth2 and oidc providers")
		}
		return validateStatic(r, private)
	case messages.ProviderOAuth2, messages.ProviderOIDC:
	default:
		return bad("type must be oidc, oauth2 or static")
	}
	switch {
	case len(r.CredentialSchema) > 0:
		return bad("credential_schema is only for static providers")
	case r.Verification != nil:
		return bad("verification is only for static providers")
	case r.Strategy != nil && r.Strategy.Type != messages.StrategyOAuth2:
		return bad("strategy.type must be oauth2 for a %s provider", r.Type)
	}
	if r.ClientID == "" {
		return bad("client_id is required")
	}
	switch r.ClientAuthMethod {
	case "":
		r.ClientAuthMethod = messages.ClientSecretBasic
	case messages.ClientSecretBasic, messages.ClientSecretPost:
	default:
		return bad("client_auth_method must be %s or %s", messages.ClientSecretBasic, messages.ClientSecretPost)
	}
	urls := []struct {
		name, value string
		required    bool
	}{
		{"token_endpoint", r.TokenEndpoint, true},
		{"revocation_endpoint", r.RevocationEndpoint, false},
		{"issuer", r.Issuer, r.Type == messages.ProviderOIDC},
		{"jwks_uri", r.JWKSURI, r.Type == messages.ProviderOIDC},
	}
	for _, u := range urls {
		if u.value == "" {
			if u.required {
				return bad("%s is required for a %s provider", u.name, r.Type)
			}
			continue
		}
		if err := provider.CheckURL(u.value, private); err != nil {
			return bad("%s: %v", u.name, err)
		}
	}
	if q := r.Quirks; q != nil && q.ConfigFromRequest != nil {
		// The request carries the user's access token: only where the
		// grant's tokens go already.
		if err := provider.CheckURL(q.ConfigFromRequest.URL, private); err != nil {
			return bad("quirks.config_from_request.url: %v", err)
		}
		if !provider.SameSite(q.ConfigFromRequest.URL, r.TokenEndpoint) {
			return bad("quirks.config_from_request.url must be on the token endpoint's site (the same registrable domain)")
		}
	}
	return nil
}

// MaxSchemaBytes bounds a static provider's credential schema.
const MaxSchemaBytes = 64 << 10

// validateStatic checks a static provider: a valid strategy, a credential
// schema that compiles (draft 2020-12), an optional verification request to
// a URL provider.CheckURL accepts, and no client secret.
func validateStatic(r *messages.VaultClient, private egress.Networks) error {
	bad := func(format string, args ...any) error {
		return messages.Errorf(messages.CodeInvalidRequest, format, args...)
	}
	if r.ClientSecret != "" {
		return bad("static providers have no client secret")
	}
	switch {
	case r.Strategy == nil:
		return bad("strategy is required for a static provider")
	case r.Strategy.Type == messages.StrategyOAuth2:
		return bad("strategy.type must be one of header, query_param, basic_auth, aws_sigv4, hmac_payload")
	}
	if err := r.Strategy.Validate(); err != nil {
		return bad("%v", err)
	}
	switch {
	case len(r.CredentialSchema) == 0 || string(r.CredentialSchema) == "null":
		return bad("credential_schema is required for a static provider (a JSON Schema object)")
	case len(r.CredentialSchema) > MaxSchemaBytes:
		return bad("credential_schema must be at most %d KiB", MaxSchemaBytes>>10)
	}
	if _, err := static.Compile(r.CredentialSchema); err != nil {
		return bad("credential_schema is not a valid JSON Schema (draft 2020-12): %v", err)
	}
	if v := r.Verification; v != nil {
		if v.URL == "" {
			return bad("verification.url is required")
		}
		if err := provider.CheckURL(v.URL, private); err != nil {
			return bad("verification.url: %v", err)
		}
		switch v.Method {
		case "", http.MethodGet, http.MethodPost, http.MethodHead:
		default:
			return bad("verification.method must be GET, POST or HEAD")
		}
		if v.ExpectStatus != 0 && (v.ExpectStatus < 100 || v.ExpectStatus > 599) {
			return bad("verification.expect_status must be an HTTP status between 100 and 599")
		}
	}
	return nil
}

// vault.clients.delete: refused while live connections use the client.
func (h *Handlers) deleteClient(ctx context.Context, r messages.VaultClientRef) (messages.VaultClientReply, error) {
	if r.ProviderID == "" {
		return messages.VaultClientReply{}, messages.Errorf(messages.CodeInvalidRequest, "provider_id is required")
	}
	if err := h.Store.DeleteClient(ctx, r.ProviderID); err != nil {
		return messages.VaultClientReply{}, err
	}
	return messages.VaultClientReply{ProviderID: r.ProviderID, ClientSecretSet: false}, nil
}
