-- Rate limits (shared/ratelimit, internal/store/ratelimit.go): one row per
-- limit (endpoint, scope and subject, such as
-- "tokens.refresh:workspace:ws-1") with the count of its current window,
-- updated by one upsert per request and shared by every replica. Rows of
-- windows long over are pruned by housekeeping.
create table vault.rate_limits (
    key          text primary key,
    window_start timestamptz not null,
    window_end   timestamptz not null,
    count        int not null
);
create index rate_limits_window_end on vault.rate_limits (window_end);

-- Ended connections (failed, expired, revoked) are deleted, with their
-- published events, once ENDED_CONNECTION_RETENTION has passed
-- (internal/store/retention.go): these indexes keep that from scanning the
-- tables.
create index connections_ended on vault.connections (updated_at) where status in ('failed', 'expired', 'revoked');
create index outbox_connection on vault.outbox (connection_id);
