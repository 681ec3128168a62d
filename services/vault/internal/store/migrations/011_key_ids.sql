-- Key rotation that cannot lie (internal/store/keys.go, rotate.go).

-- Every sealed column gets a key id column that PostgreSQL computes from the
-- ciphertext's header (internal/keyring: a format byte, then the 4-byte key
-- id, here in hex as keyring.KeyID.String prints it). No write can forget or
-- misstate it, and adding the column computes it for every existing row. The
-- checks keep anything but a keyring ciphertext (format 1 or 2, at least a
-- header and a tag) out of a sealed column, so the id is always one.
-- seal_format is the oldest format among a connection's sealed values: the
-- re-seal pass finds the rows written before format 2 by it.
alter table vault.connections
    add column access_token_key_id text generated always as (encode(substring(access_token from 2 for 4), 'hex')) stored,
    add column refresh_token_key_id text generated always as (encode(substring(refresh_token from 2 for 4), 'hex')) stored,
    add column static_credentials_key_id text generated always as (encode(substring(static_credentials from 2 for 4), 'hex')) stored,
    add column staged_access_token_key_id text generated always as (encode(substring(staged_access_token from 2 for 4), 'hex')) stored,
    add column staged_refresh_token_key_id text generated always as (encode(substring(staged_refresh_token from 2 for 4), 'hex')) stored,
    add column staged_static_credentials_key_id text generated always as (encode(substring(staged_static_credentials from 2 for 4), 'hex')) stored,
    add column seal_format smallint generated always as (least(get_byte(access_token, 0), get_byte(refresh_token, 0), get_byte(static_credentials, 0), get_byte(staged_access_token, 0), get_byte(staged_refresh_token, 0), get_byte(staged_static_credentials, 0))) stored,
    add constraint connections_access_token_sealed check (access_token is null or (length(access_token) >= 33 and get_byte(access_token, 0) in (1, 2))),
    add constraint connections_refresh_token_sealed check (refresh_token is null or (length(refresh_token) >= 33 and get_byte(refresh_token, 0) in (1, 2))),
    add constraint connections_static_credentials_sealed check (static_credentials is null or (length(static_credentials) >= 33 and get_byte(static_credentials, 0) in (1, 2))),
    add constraint connections_staged_access_token_sealed check (staged_access_token is null or (length(staged_access_token) >= 33 and get_byte(staged_access_token, 0) in (1, 2))),
    add constraint connections_staged_refresh_token_sealed check (staged_refresh_token is null or (length(staged_refresh_token) >= 33 and get_byte(staged_refresh_token, 0) in (1, 2))),
    add constraint connections_staged_static_credentials_sealed check (staged_static_credentials is null or (length(staged_static_credentials) >= 33 and get_byte(staged_static_credentials, 0) in (1, 2)));

-- What is sealed under a key, by column, in id order: the start-up check
-- finds the key ids in use by skipping through these, and the re-seal pass
-- walks the rows of one key in batches. Partial: rows without the value are
-- not in them (staged values are rare and short-lived).
create index connections_access_token_key on vault.connections (access_token_key_id, id) where access_token is not null;
create index connections_refresh_token_key on vault.connections (refresh_token_key_id, id) where refresh_token is not null;
create index connections_static_credentials_key on vault.connections (static_credentials_key_id, id) where static_credentials is not null;
create index connections_staged_access_token_key on vault.connections (staged_access_token_key_id, id) where staged_access_token is not null;
create index connections_staged_refresh_token_key on vault.connections (staged_refresh_token_key_id, id) where staged_refresh_token is not null;
create index connections_staged_static_credentials_key on vault.connections (staged_static_credentials_key_id, id) where staged_static_credentials is not null;
create index connections_seal_format on vault.connections (id) where seal_format < 2;

alter table vault.provider_clients
    add column client_secret_key_id text generated always as (encode(substring(client_secret from 2 for 4), 'hex')) stored,
    add constraint provider_clients_client_secret_sealed check (client_secret is null or (length(client_secret) >= 33 and get_byte(client_secret, 0) in (1, 2)));
create index provider_clients_client_secret_key on vault.provider_clients (client_secret_key_id) where client_secret is not null;

alter table vault.canary
    add column sealed_key_id text generated always as (encode(substring(sealed from 2 for 4), 'hex')) stored,
    add constraint canary_sealed check (length(sealed) >= 33 and get_byte(sealed, 0) in (1, 2));

-- The keys this database has been sealed with, in the order vaults started
-- sealing with them. The last one is what a rotation moves every value to;
-- a vault whose ENCRYPTION_KEY is an earlier one refuses to start, so no two
-- vaults re-seal towards different keys.
create table vault.keys (
    key_id       text primary key,
    -- when a vault first started sealing with it; null for the keys found
    -- when this table was made, which all came before
    activated_at timestamptz
);
-- Before this migration a rotation re-sealed the canary first, so the
-- canary's key is the newest; every other key in use came before it.
insert into vault.keys (key_id, activated_at) select sealed_key_id, now() from vault.canary;
insert into vault.keys (key_id)
select k from (
    select access_token_key_id as k from vault.connections where access_token is not null
    union
    select refresh_token_key_id as k from vault.connections where refresh_token is not null
    union
    select static_credentials_key_id as k from vault.connections where static_credentials is not null
    union
    select staged_access_token_key_id as k from vault.connections where staged_access_token is not null
    union
    select staged_refresh_token_key_id as k from vault.connections where staged_refresh_token is not null
    union
    select staged_static_credentials_key_id as k from vault.connections where staged_static_credentials is not null
    union
    select client_secret_key_id from vault.provider_clients where client_secret is not null
) used
on conflict (key_id) do nothing;

-- The vaults running now: the key each seals with and every key it holds.
-- Each renews its row every minute and deletes it when it stops, so the
-- database knows when no vault seals with a previous key any more (rows
-- not renewed for a while are left by vaults that died, and are ignored).
create table vault.replicas (
    id             uuid primary key,
    sealing_key_id text not null,
    key_ids        text[] not null,
    started_at     timestamptz not null default now(),
    seen_at        timestamptz not null default now()
);
