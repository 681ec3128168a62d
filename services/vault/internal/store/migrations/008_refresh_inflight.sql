-- A refresh in flight: the replica that took it (refresh_inflight_owner)
-- calls the provider with no transaction open, until refresh_inflight_until
-- at the latest, and stores the result under the row lock only if the token
-- it presented is still the stored one. Another replica that needs a
-- refresh meanwhile waits for it instead of calling the provider too.
alter table vault.connections
    add column refresh_inflight_owner text,
    add column refresh_inflight_until timestamptz;
