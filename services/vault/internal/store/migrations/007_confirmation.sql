-- Consents that wait for the Gateway's confirmation (handshake.begin with
-- require_confirmation): the provider's tokens, or the static credentials a
-- person typed, are kept aside, sealed like the live ones under their own
-- locations ("vault.connections/<id>/staged_access_token", ...), until
-- connections.confirm brings the one-time value whose SHA-256 is
-- confirmation_hash. A first consent stays pending meanwhile; a re-consent
-- keeps serving what it had. Past confirm_by, the staged secrets are wiped
-- and a pending connection fails.
alter table vault.connections
    add column staged_access_token       bytea,
    add column staged_refresh_token      bytea,
    add column staged_static_credentials bytea,
    add column staged_token_type         text,
    add column staged_expires_at         timestamptz,
    add column staged_refresh_expires_at timestamptz,
    add column staged_scopes             text[],
    add column staged_schema_hash        text,
    add column confirmation_hash         bytea,
    add column confirm_by                timestamptz;

create index connections_confirm_by on vault.connections (confirm_by) where confirmation_hash is not null;
