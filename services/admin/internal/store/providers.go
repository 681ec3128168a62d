package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus-broker/nexus/messages"
)

// querier is what reads need: the pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const selectProvider = `select p.id, p.name, p.type, p.issuer, p.authorization_endpoint, p.token_endpoint,
	p.revocation_endpoint, p.jwks_uri, p.client_id, p.client_auth_method, p.scopes, p.authorization_params,
	p.credential_schema, p.strategy, p.verification, p.client_secret_set, p.created_at, p.updated_at,
	p.default_token_lifetime_seconds, p.iss_parameter_supported, p.shared_callback, p.quirks, p.template, p.params,
	p.client_secret_digest, coalesce((select array_agg(a.alias order by a.alias) from admin.provider_aliases a where a.provider_id = p.id), '{}')
	from admin.providers p `

// byRef matches a provider by id, name or alias ($1).
const byRef = `where p.id = $1 or p.name = $1
	or p.id = (select a.provider_id from admin.provider_aliases a where a.alias = $1)`

// Get returns the provider whose id, name or alias is ref.
func (s *Store) Get(ctx context.Context, ref string) (messages.Provider, error) {
	return get(ctx, s.pool, ref, false)
}

func get(ctx context.Context, q querier, ref string, forUpdate bool) (messages.Provider, error) {
	sql := selectProvider + byRef
	if forUpdate {
		sql += " for update of p"
	}
	p, err := scanProvider(q.QueryRow(ctx, sql, ref))
	if errors.Is(err, pgx.ErrNoRows) {
		return messages.Provider{}, ErrNotFound
	}
	return p, err
}

// List returns up to limit providers with ids after the given one, in id
// order, optionally of one type only.
func (s *Store) List(ctx context.Context, typ messages.ProviderType, after string, limit int) ([]messages.Provider, error) {
	rows, err := s.pool.Query(ctx, selectProvider+`where ($1 = '' or p.type = $1) and p.id > $2 order by p.id limit $3`,
		string(typ), after, limit)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (messages.Provider, error) { return scanProvider(r) })
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []messages.Provider{}
	}
	return out, nil
}

func scanProvider(r pgx.Row) (messages.Provider, error) {
	var (
		p       messages.Provider
		typ     string
		params  map[string]string
		values  map[string]string
		schema  []byte
		created time.Time
		updated time.Time
	)
	err := r.Scan(&p.ID, &p.Name, &typ, &p.Issuer, &p.AuthorizationEndpoint, &p.TokenEndpoint,
		&p.RevocationEndpoint, &p.JWKSURI, &p.ClientID, &p.ClientAuthMethod, &p.Scopes, &params,
		&schema, &p.Strategy, &p.Verification, &p.ClientSecretSet, &created, &updated, &p.DefaultTokenLifetimeSeconds,
		&p.IssParameterSupported, &p.SharedCallback, &p.Quirks, &p.Template, &values, &p.ClientSecretDigest, &p.Aliases)
	if err != nil {
		return messages.Provider{}, err
	}
	p.Type = messages.ProviderType(typ)
	if len(params) > 0 {
		p.AuthorizationParams = params
	}
	if len(values) > 0 {
		p.Params = values
	}
	if schema != nil {
		p.CredentialSchema = json.RawMessage(schema)
	}
	if p.Scopes == nil {
		p.Scopes = []string{}
	}
	if p.Aliases == nil {
		p.Aliases = []string{}
	}
	p.CreatedAt, p.UpdatedAt = created.UTC(), updated.UTC()
	switch {
	case p.Type == messages.ProviderStatic:
	case p.SharedCallback:
		p.CallbackPath = messages.SharedCallbackPath
	default:
		p.CallbackPath = messages.ProviderCallbackPath(p.ID)
	}
	return p, nil
}
