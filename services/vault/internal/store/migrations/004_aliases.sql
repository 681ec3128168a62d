-- A provider's aliases, as admin registers them, so that every place that
-- takes a provider (connections.list's filter) accepts an alias too.
alter table vault.provider_clients add column aliases text[] not null default '{}';
create index provider_clients_aliases on vault.provider_clients using gin (aliases);
