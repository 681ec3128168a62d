-- Users recover from their own mistakes (issue 10).

-- pending_until: when a consent that is still pending becomes expired. The
-- handshake names its flow's expiry (VaultCreateConnection.expires_at); the
-- vault adds a grace for a code exchange in flight (store.ExpiryGrace).
-- Rows pending before this migration keep the fixed lifetime they had
-- (store.PendingLifetime after their last change).
alter table vault.connections
    add column pending_until timestamptz,
    -- when the connection failed or expired (failure_code, failure_message)
    add column failure_since timestamptz,
    -- what the Gateway needs to call the provider that is not a secret
    -- (messages.Connection.Config): not sealed, and merged by every writer
    add column config jsonb not null default '{}',
    -- the config a consent waiting for confirmation brought, put in place
    -- with its credentials
    add column staged_config jsonb;

update vault.connections set pending_until = updated_at + interval '65 minutes' where status = 'pending';
update vault.connections set failure_since = updated_at where status in ('failed', 'expired');

-- The expiry sweep reads only pending rows, by their deadline.
drop index vault.connections_pending;
create index connections_pending_until on vault.connections (pending_until) where status = 'pending';
