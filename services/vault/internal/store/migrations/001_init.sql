-- Tables are schema-qualified: shared/pg.Migrate runs this with the default search_path.
-- The vault's schema. Every secret column holds a keyring ciphertext bound
-- to its row and field; see internal/keyring.

-- A sealed known value that proves, at start-up, that ENCRYPTION_KEY opens
-- this database.
create table vault.canary (
    id         int primary key check (id = 1),
    sealed     bytea not null,
    created_at timestamptz not null default now(),
    rotated_at timestamptz
);

-- What the vault needs to talk to a provider's token and revocation
-- endpoints. The endpoints live next to the sealed secret so the secret is
-- only ever sent where it was registered to go.
create table vault.provider_clients (
    provider_id         text primary key,
    provider_name       text not null,
    type                text not null check (type in ('oidc', 'oauth2', 'static')),
    client_id           text not null default '',
    client_secret       bytea,
    client_auth_method  text not null default '',
    issuer              text not null default '',
    token_endpoint      text not null default '',
    revocation_endpoint text not null default '',
    jwks_uri            text not null default '',
    strategy            jsonb,
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now()
);
create index provider_clients_name on vault.provider_clients (provider_name);

create table vault.connections (
    id                 uuid primary key,
    provider_id        text not null,
    workspace_id       text not null,
    status             text not null check (status in ('pending', 'active', 'attention_required', 'revoked', 'failed', 'expired')),
    scopes             text[] not null default '{}',
    -- the scopes asked for by the consent in progress (the granted ones go
    -- to scopes when the provider does not say what it granted)
    requested_scopes   text[] not null default '{}',
    metadata           jsonb not null default '{}',
    access_token       bytea,
    refresh_token      bytea,
    token_type         text not null default '',
    -- bumped on every new token, so a refresher that waited for the row lock
    -- can tell that another one already did the work
    token_version      bigint not null default 0,
    expires_at         timestamptz,
    refresh_expires_at timestamptz,
    last_refreshed_at  timestamptz,
    attention_code     text,
    attention_message  text,
    attention_since    timestamptz,
    failure_code       text,
    failure_message    text,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now()
);
create index connections_workspace on vault.connections (workspace_id, id);
create index connections_provider on vault.connections (provider_id, id);
-- the refresher's scan: O(due connections)
create index connections_due on vault.connections (expires_at) where status = 'active';

-- Transactional outbox: every lifecycle change inserts its event in the same
-- transaction; a relay publishes unpublished rows to JetStream with
-- Nats-Msg-Id = id.
create table vault.outbox (
    id            uuid primary key,
    connection_id uuid not null,
    type          text not null,
    payload       jsonb not null,
    created_at    timestamptz not null default now(),
    published_at  timestamptz
);
create index outbox_unpublished on vault.outbox (created_at) where published_at is null;
