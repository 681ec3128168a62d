-- Who changed which provider, and which of its fields (names only, never
-- values; a new client secret shows as client_secret): one row per create,
-- update and delete, written in the transaction of the change, so that a
-- change without its row, or a row without its change, cannot be.
create table admin.audit (
    id            uuid primary key default gen_random_uuid(),
    at            timestamptz not null,
    principal     text not null,
    key_id        text not null,
    action        text not null,
    provider_id   text not null,
    provider_name text not null,
    changed       text[] not null default '{}'
);

-- audit.list pages newest first by (at, id).
create index audit_at_id on admin.audit (at, id);
-- The history of one provider.
create index audit_provider_at_id on admin.audit (provider_id, at, id);
