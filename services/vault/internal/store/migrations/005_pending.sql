-- The sweep that expires consents never finished reads only pending rows.
create index connections_pending on vault.connections (updated_at) where status = 'pending';
