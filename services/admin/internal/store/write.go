package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus-broker/nexus/messages"
)

// Push is called inside the write's transaction, after the rows are written
// and before commit: the registry hands the client registration to the vault
// there, so a vault failure rolls everything back. It returns whether the
// vault holds a client secret.
type Push = func(ctx context.Context) (clientSecretSet bool, err error)

// Create inserts p (its ID set by the caller) with its aliases, calls push,
// records what the vault reported and the audit record a, and commits. It
// returns the stored provider. p.ClientSecret is never stored.
func (s *Store) Create(ctx context.Context, p messages.Provider, push Push, a Audit) (messages.Provider, error) {
	now := s.clock()
	var out messages.Provider
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockNames(ctx, tx); err != nil {
			return err
		}
		if err := checkNames(ctx, tx, p.ID, append([]string{p.Name}, p.Aliases...)); err != nil {
			return err
		}
		if err := checkIssuer(ctx, tx, p); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `insert into admin.providers (id, name, type, issuer, authorization_endpoint, token_endpoint,
			revocation_endpoint, jwks_uri, client_id, client_auth_method, scopes, authorization_params, credential_schema,
			strategy, verification, client_secret_set, created_at, updated_at, default_token_lifetime_seconds,
			iss_parameter_supported, shared_callback, quirks, template, params, client_secret_digest)
			values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $16, false, $15, $15, $17, $18, $19, $20, $21, $22, $23)`,
			columns(p, now)...)
		if err != nil {
			return uniqueViolation(err)
		}
		if err := finish(ctx, tx, p, push, &out); err != nil {
			return err
		}
		return writeAudit(ctx, tx, a, out, now)
	})
	return out, err
}

// Update replaces the provider p.ID with p, provided it still has the
// updated_at the caller read (readAt; ErrStale otherwise), calls push,
// records the audit record a, and commits. p.ClientSecret is never stored.
func (s *Store) Update(ctx context.Context, p messages.Provider, readAt time.Time, push Push, a Audit) (messages.Provider, error) {
	var out messages.Provider
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockNames(ctx, tx); err != nil {
			return err
		}
		var cur time.Time
		err := tx.QueryRow(ctx, "select updated_at from admin.providers where id = $1 for update", p.ID).Scan(&cur)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if !cur.Equal(readAt) {
			return ErrStale
		}
		now := s.clock()
		if !now.After(cur) {
			now = cur.Add(time.Microsecond) // updated_at always moves, so ErrStale is reliable
		}
		if err := checkNames(ctx, tx, p.ID, append([]string{p.Name}, p.Aliases...)); err != nil {
			return err
		}
		if err := checkIssuer(ctx, tx, p); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `update admin.providers set name = $2, type = $3, issuer = $4, authorization_endpoint = $5,
			token_endpoint = $6, revocation_endpoint = $7, jwks_uri = $8, client_id = $9, client_auth_method = $10,
			scopes = $11, authorization_params = $12, credential_schema = $13, strategy = $14, updated_at = $15,
			verification = $16, default_token_lifetime_seconds = $17, iss_parameter_supported = $18, shared_callback = $19,
			quirks = $20, template = $21, params = $22, client_secret_digest = $23
			where id = $1`, columns(p, now)...)
		if err != nil {
			return uniqueViolation(err)
		}
		if _, err := tx.Exec(ctx, "delete from admin.provider_aliases where provider_id = $1", p.ID); err != nil {
			return err
		}
		if err := finish(ctx, tx, p, push, &out); err != nil {
			return err
		}
		return writeAudit(ctx, tx, a, out, now)
	})
	return out, err
}

// Delete removes the provider whose id, name or alias is ref. push runs
// first, with the provider row locked; if it fails, nothing is deleted.
// The audit record a is written with the deletion. It returns the deleted
// provider.
func (s *Store) Delete(ctx context.Context, ref string, push func(context.Context, messages.Provider) error, a Audit) (messages.Provider, error) {
	var out messages.Provider
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		p, err := get(ctx, tx, ref, true)
		if err != nil {
			return err
		}
		if err := push(ctx, p); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "delete from admin.providers where id = $1", p.ID); err != nil {
			return err
		}
		out = p
		return writeAudit(ctx, tx, a, p, s.clock())
	})
	return out, err
}

// finish writes the aliases, pushes to the vault, records its answer and
// reads the provider back as stored.
func finish(ctx context.Context, tx pgx.Tx, p messages.Provider, push Push, out *messages.Provider) error {
	if len(p.Aliases) > 0 {
		if _, err := tx.Exec(ctx, "insert into admin.provider_aliases (alias, provider_id) select unnest($1::text[]), $2",
			p.Aliases, p.ID); err != nil {
			return uniqueViolation(err)
		}
	}
	set, err := push(ctx)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "update admin.providers set client_secret_set = $2 where id = $1", p.ID, set); err != nil {
		return err
	}
	*out, err = get(ctx, tx, p.ID, false)
	return err
}

// columns are the values of $1..$23 in Create and Update. Note what is not
// here: the client secret (only its digest).
func columns(p messages.Provider, now time.Time) []any {
	params := p.AuthorizationParams
	if params == nil {
		params = map[string]string{}
	}
	values := p.Params
	if values == nil {
		values = map[string]string{}
	}
	scopes := p.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	var schema any
	if len(p.CredentialSchema) > 0 {
		schema = string(p.CredentialSchema)
	}
	return []any{p.ID, p.Name, string(p.Type), p.Issuer, p.AuthorizationEndpoint, p.TokenEndpoint,
		p.RevocationEndpoint, p.JWKSURI, p.ClientID, p.ClientAuthMethod, scopes, params, schema, p.Strategy, now, p.Verification,
		p.DefaultTokenLifetimeSeconds, p.IssParameterSupported, p.SharedCallback, p.Quirks, p.Template, values, p.ClientSecretDigest}
}

// nameLockKey names the transaction-scoped advisory lock that serialises
// changes to the shared namespace of names and aliases.
const nameLockKey = "nexus-admin-provider-names"

func lockNames(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "select pg_advisory_xact_lock(hashtext($1))", nameLockKey)
	return err
}

// checkNames fails with a *NameInUseError when one of names is the name,
// an alias or the id of a provider other than id.
func checkNames(ctx context.Context, tx pgx.Tx, id string, names []string) error {
	var taken string
	err := tx.QueryRow(ctx, `select n from unnest($2::text[]) as n
		where exists (select 1 from admin.providers p where p.id <> $1 and (p.id = n or p.name = n))
		   or exists (select 1 from admin.provider_aliases a where a.provider_id <> $1 and a.alias = n)
		limit 1`, id, names).Scan(&taken)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return &NameInUseError{Name: taken}
}

// checkIssuer fails with an *IssuerInUseError when another provider has p's
// issuer but another server: a response is tied to its server by its
// issuer, so no two servers may claim one (two client registrations at one
// server, with the same authorization and token endpoints, may share it).
// Runs under the names lock.
func checkIssuer(ctx context.Context, tx pgx.Tx, p messages.Provider) error {
	if p.Issuer == "" {
		return nil
	}
	var other string
	err := tx.QueryRow(ctx, `select name from admin.providers where issuer = $1 and id <> $2
		and (authorization_endpoint <> $3 or token_endpoint <> $4) limit 1`,
		p.Issuer, p.ID, p.AuthorizationEndpoint, p.TokenEndpoint).Scan(&other)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return &IssuerInUseError{Issuer: p.Issuer, Provider: other}
}
