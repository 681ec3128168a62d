package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/secret"
)

// ErrSecretRequired: PutClient moves the token or revocation endpoint to
// another origin, where the stored client secret would start going, without
// the secret sent again.
var ErrSecretRequired = errors.New("store: the token or revocation endpoint moves to another origin: send client_secret again")

// MovedError: the token or revocation endpoint moves to another origin
// while connections hold grants of the old one. Their refresh tokens (and,
// for consents in flight, codes and PKCE verifiers) would go to the new
// origin, whatever client secret comes with the change: whoever holds an
// operator key could otherwise collect every user's refresh token.
type MovedError struct {
	ProviderID  string
	Connections int
}

func (e *MovedError) Error() string {
	return fmt.Sprintf("provider %s: the token or revocation endpoint moves to another origin while %d pending, active or attention_required connection(s) hold grants of the old one", e.ProviderID, e.Connections)
}

// moves reports whether a registration going from old to c sends secrets
// to an origin they did not go to before: the token endpoint's origin
// changes, or a revocation endpoint is added or moves. Static providers
// send nothing.
func moves(old, c Client) bool {
	if c.Type == messages.ProviderStatic {
		return false
	}
	return origin(old.TokenEndpoint) != origin(c.TokenEndpoint) ||
		(c.RevocationEndpoint != "" && origin(old.RevocationEndpoint) != origin(c.RevocationEndpoint))
}

// origin is scheme://host[:port] as written: any difference counts as a move.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Scheme + "://" + u.Host
}

// PutClient creates or replaces a provider's client registration. An empty
// ClientSecret keeps the stored one. A change that moves the endpoints needs
// the secret again (ErrSecretRequired) and no live connection of the
// provider (*MovedError); both are decided under the registration's row
// lock, which consents starting meanwhile wait for. It returns the
// registration without its secret, ClientSecretSet telling whether one is
// held.
func (s *Store) PutClient(ctx context.Context, c Client) (Client, error) {
	secret, err := s.seal(clientSecretPlace(c.ProviderID), c.ClientSecret)
	if err != nil {
		return Client{}, err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Client{}, err
	}
	defer rollback(ctx, tx)
	var (
		old       Client
		typ       string
		secretSet bool
	)
	err = tx.QueryRow(ctx, `select type, token_endpoint, revocation_endpoint, client_secret is not null
		from vault.provider_clients where provider_id = $1 for update`, c.ProviderID).Scan(&typ, &old.TokenEndpoint, &old.RevocationEndpoint, &secretSet)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return Client{}, err
	case messages.ProviderType(typ) != messages.ProviderStatic && moves(old, c):
		if c.ClientSecret.IsZero() && secretSet {
			return Client{}, ErrSecretRequired
		}
		var n int
		if err := tx.QueryRow(ctx, `select count(*) from vault.connections where provider_id = $1
			and status in ('pending', 'active', 'attention_required')`, c.ProviderID).Scan(&n); err != nil {
			return Client{}, err
		}
		if n > 0 {
			return Client{}, &MovedError{ProviderID: c.ProviderID, Connections: n}
		}
	}
	now := s.clock()
	c.ClientSecret = ""
	var schema any // NULL unless set
	if len(c.CredentialSchema) > 0 {
		schema = c.CredentialSchema
	}
	var quirks any // NULL unless set
	if c.Quirks != nil {
		quirks = c.Quirks
	}
	// A changed registration is the operator's fix: whatever the token
	// endpoint said of the old one is no longer known to hold.
	var wasMisconfigured bool
	err = tx.QueryRow(ctx, `with old as (select health_code from vault.provider_clients where provider_id = $1)
		insert into vault.provider_clients (provider_id, provider_name, type, client_id, client_secret, client_auth_method,
		issuer, token_endpoint, revocation_endpoint, jwks_uri, strategy, default_token_lifetime_seconds, credential_schema, verification, created_at, updated_at, aliases, quirks)
		values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $13, $14, $15, $12, $12, $16, $17)
		on conflict (provider_id) do update set provider_name = excluded.provider_name, type = excluded.type,
			client_id = excluded.client_id, client_secret = coalesce(excluded.client_secret, provider_clients.client_secret),
			client_auth_method = excluded.client_auth_method, issuer = excluded.issuer, token_endpoint = excluded.token_endpoint,
			revocation_endpoint = excluded.revocation_endpoint, jwks_uri = excluded.jwks_uri, strategy = excluded.strategy,
			default_token_lifetime_seconds = excluded.default_token_lifetime_seconds,
			credential_schema = excluded.credential_schema, verification = excluded.verification, updated_at = excluded.updated_at,
			aliases = excluded.aliases, quirks = excluded.quirks, health_code = null, health_since = null
		returning client_secret is not null, created_at, updated_at, coalesce((select health_code is not null from old), false)`,
		c.ProviderID, c.ProviderName, string(c.Type), c.ClientID, secret, c.ClientAuthMethod,
		c.Issuer, c.TokenEndpoint, c.RevocationEndpoint, c.JWKSURI, c.Strategy, now, c.DefaultTokenLifetimeSeconds,
		schema, c.Verification, aliases(c.Aliases), quirks).Scan(&c.ClientSecretSet, &c.CreatedAt, &c.UpdatedAt, &wasMisconfigured)
	if err != nil {
		return Client{}, err
	}
	// A changed registration is worth trying at once: its connections'
	// backoffs after failures of the old one end.
	if _, err := tx.Exec(ctx, `update vault.connections set retry_not_before = null
		where provider_id = $1 and retry_not_before is not null`, c.ProviderID); err != nil {
		return Client{}, err
	}
	events := 0
	if wasMisconfigured {
		if err := insertProviderEvent(ctx, tx, c, messages.ProviderEventRecovered, &messages.Reason{Code: "registration_changed",
			Message: "The provider's registration was changed; the broker will use it from now on."}, now); err != nil {
			return Client{}, err
		}
		events++
	}
	c.Health = &messages.ProviderHealth{Status: messages.ProviderHealthy}
	// Its connections' cached replies carry the old strategy and name.
	change := Change{ProviderID: c.ProviderID}
	if err := notifyChange(ctx, tx, change); err != nil {
		return Client{}, err
	}
	if err := commit(ctx, tx); err != nil {
		return Client{}, err
	}
	s.committed(change, events)
	return c, nil
}

// GetClient returns a provider's client registration with its secret opened.
func (s *Store) GetClient(ctx context.Context, providerID string) (Client, error) {
	var (
		c           Client
		typ         string
		sealed      []byte
		healthCode  *string
		healthSince *time.Time
	)
	err := s.pool.QueryRow(ctx, `select provider_id, provider_name, type, client_id, client_secret, client_auth_method, issuer,
		token_endpoint, revocation_endpoint, jwks_uri, strategy, default_token_lifetime_seconds, credential_schema, verification, created_at, updated_at,
		quirks, health_code, health_since
		from vault.provider_clients where provider_id = $1`, providerID).Scan(
		&c.ProviderID, &c.ProviderName, &typ, &c.ClientID, &sealed, &c.ClientAuthMethod, &c.Issuer,
		&c.TokenEndpoint, &c.RevocationEndpoint, &c.JWKSURI, &c.Strategy, &c.DefaultTokenLifetimeSeconds,
		&c.CredentialSchema, &c.Verification, &c.CreatedAt, &c.UpdatedAt, &c.Quirks, &healthCode, &healthSince)
	if errors.Is(err, pgx.ErrNoRows) {
		return Client{}, ErrProviderNotFound
	}
	if err != nil {
		return Client{}, err
	}
	c.Type = messages.ProviderType(typ)
	c.ClientSecretSet = sealed != nil
	if healthCode != nil {
		c.Health = &messages.ProviderHealth{Status: messages.ProviderMisconfigured, Code: *healthCode, Since: utc(healthSince)}
	}
	var secret secret.Value
	if secret, err = s.open(clientSecretPlace(c.ProviderID), sealed); err != nil {
		return Client{}, err
	}
	c.ClientSecret = secret
	return c, nil
}

// DeleteClient removes a provider's client registration. It refuses, with an
// *InUseError, while pending, active or attention_required connections use
// it. Deleting a registration that does not exist is not an error.
func (s *Store) DeleteClient(ctx context.Context, providerID string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer rollback(ctx, tx)
	// Lock the row first: a concurrent CreateConnection (for share) waits.
	var exists bool
	if err := tx.QueryRow(ctx, "select true from vault.provider_clients where provider_id = $1 for update", providerID).Scan(&exists); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	}
	var n int
	if err := tx.QueryRow(ctx, `select count(*) from vault.connections where provider_id = $1
		and status in ('pending', 'active', 'attention_required')`, providerID).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return &InUseError{ProviderID: providerID, Connections: n}
	}
	if _, err := tx.Exec(ctx, "delete from vault.provider_clients where provider_id = $1", providerID); err != nil {
		return err
	}
	return commit(ctx, tx)
}

// aliases is never NULL in the database.
func aliases(a []string) []string {
	if a == nil {
		return []string{}
	}
	return a
}
