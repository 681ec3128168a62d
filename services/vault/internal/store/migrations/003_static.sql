-- Static credentials: API keys, username and password, AWS keys and any other
-- object a provider's JSON Schema describes, typed by a user in the hosted form.

-- What a static provider's credentials must look like (a JSON Schema, draft
-- 2020-12) and the optional request the vault makes with new credentials
-- before accepting them. The strategy that says how the Gateway applies them
-- is the existing strategy column.
alter table vault.provider_clients
    add column credential_schema jsonb,
    add column verification      jsonb;

-- The connection's static credentials: a JSON object, sealed like the tokens
-- (additional data "vault.connections/<id>/static_credentials"). The hash is
-- that of the provider's schema the credentials were validated against, so a
-- later schema update shows in the row; serving does not depend on it.
alter table vault.connections
    add column static_credentials     bytea,
    add column credential_schema_hash text;
