-- A console session also ends after SessionIdle without a request
-- (internal/console): when each was last used. Sessions open when this
-- runs count as used now.
alter table admin.console_sessions add column last_seen_at timestamptz not null default now();
