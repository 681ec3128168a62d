-- Tables are schema-qualified: shared/pg.Migrate runs this with the default search_path.
-- Who asked the vault for what, and what came of it (internal/audit): one
-- row per request to an audited endpoint, refusals included, except
-- credential releases (v1.tokens.get), which are counted in memory by
-- principal, key, action, target, workspace and outcome and written as one
-- row per group every few seconds (count, at = the first, last_at = the
-- last). No row holds a request's body, a token, a secret or a key: key_id
-- and actor_key_id are fingerprints (shared/apikey).
create table vault.audit (
    id           uuid primary key,
    at           timestamptz not null,
    last_at      timestamptz not null,
    count        bigint not null check (count > 0),
    principal    text not null,
    key_id       text not null,
    -- the Gateway key a service acted for: the one whose handshake.begin a
    -- vault.connections.create is
    actor_key_id text not null default '',
    action       text not null,
    target       text not null default '',
    workspace_id text not null default '',
    outcome      text not null
);

-- audit.list pages newest first by (at, id); the retention prune deletes by at.
create index audit_at_id on vault.audit (at, id);
-- The history of one connection or provider.
create index audit_target_at_id on vault.audit (target, at, id);
