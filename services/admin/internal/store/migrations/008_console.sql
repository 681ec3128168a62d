-- The operator console's sessions (internal/console): the SHA-256 of each
-- session cookie, never the cookie itself, so a read of this table opens no
-- session; the synchronizer token its forms carry; the operator key's id
-- (never the key); and when it ends. Every admin replica reads the same
-- table, so a session works on all of them and a logout ends it on all.
create table admin.console_sessions (
    id_hash    bytea primary key,
    csrf_token text not null,
    key_id     text not null,
    created_at timestamptz not null,
    expires_at timestamptz not null
);
create index console_sessions_expires_at on admin.console_sessions (expires_at);

-- Login attempts per client address and window (shared/ratelimit's Counter),
-- as vault.rate_limits.
create table admin.rate_limits (
    key          text primary key,
    window_start timestamptz not null,
    window_end   timestamptz not null,
    count        int not null
);
create index rate_limits_window_end on admin.rate_limits (window_end);
