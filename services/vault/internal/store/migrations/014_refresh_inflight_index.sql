-- The vault's recovery finds the refreshes in flight whose owner died (a
-- mark that ran out, or one its own replica left in an earlier boot): only
-- rows with a mark are indexed, so the search costs what is in flight, not
-- the table.
create index connections_refresh_inflight on vault.connections (refresh_inflight_until)
    where refresh_inflight_owner is not null;
