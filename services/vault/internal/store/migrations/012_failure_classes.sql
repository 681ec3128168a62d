-- Failure classes and provider health (internal/store/failures.go, health.go).

-- A connection's refusals: the provider's last 4xx refusal code, how many
-- times in a row it came and since when (the same refusal repeated over a
-- window means the grant is dead, whatever code the provider chose), and
-- when a refresh may call the provider again after a failure, so that
-- tokens.get of an expired token is not a refresh storm against a provider
-- that is already refusing.
alter table vault.connections
    add column refusal_code text,
    add column refusal_count integer not null default 0,
    add column refusal_since timestamptz,
    add column retry_not_before timestamptz;

-- A provider's quirks (messages.Quirks), and its health: set when the token
-- endpoint refused the client itself (invalid_client), cleared when a token
-- request succeeds or the registration changes.
alter table vault.provider_clients
    add column quirks jsonb,
    add column health_code text,
    add column health_since timestamptz;

-- Provider events go through the outbox too; they name no connection.
alter table vault.outbox alter column connection_id drop not null;
