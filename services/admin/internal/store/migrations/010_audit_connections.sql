-- An operator's re-consent of a connection (a link made in the console) is
-- admin's record too: which connection, in which workspace. Provider
-- changes name neither ('').
alter table admin.audit
    add column connection_id text not null default '',
    add column workspace_id  text not null default '';

-- The history of one connection.
create index audit_connection_at_id on admin.audit (connection_id, at, id) where connection_id <> '';
