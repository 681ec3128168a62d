-- Tables are schema-qualified: shared/pg.Migrate runs this with the default search_path.
-- The admin schema holds only public provider configuration. Client secrets
-- live in the vault; client_secret_set mirrors what the vault last reported.

create table admin.providers (
    id                     text primary key,
    name                   text not null unique,
    type                   text not null check (type in ('oidc', 'oauth2', 'static')),
    issuer                 text not null default '',
    authorization_endpoint text not null default '',
    token_endpoint         text not null default '',
    revocation_endpoint    text not null default '',
    jwks_uri               text not null default '',
    client_id              text not null default '',
    client_auth_method     text not null default '',
    scopes                 text[] not null default '{}',
    authorization_params   jsonb not null default '{}',
    credential_schema      jsonb,
    strategy               jsonb,
    client_secret_set      boolean not null default false,
    created_at             timestamptz not null,
    updated_at             timestamptz not null
);

-- list filters by type and pages by id.
create index providers_type_id on admin.providers (type, id);

-- Aliases share one namespace with names (and ids); the store checks that
-- under a transaction-scoped advisory lock, and these keys catch the rest.
create table admin.provider_aliases (
    alias       text primary key,
    provider_id text not null references admin.providers (id) on delete cascade
);

create index provider_aliases_provider_id on admin.provider_aliases (provider_id);
