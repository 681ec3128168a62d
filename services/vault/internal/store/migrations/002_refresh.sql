-- Background refresh and the outbox relay (services/refresher drives both
-- through the vault's internal subjects).

-- When the background refresher should renew a connection's token: set by
-- the vault whenever it saves tokens (internal/store/schedule.go), null when
-- there is nothing to renew (no refresh token). A claim moves it to the end
-- of the claimer's lease, so a claimer that dies leaves the row due again.
alter table vault.connections
    add column refresh_due_at      timestamptz,
    add column refresh_attempts    int not null default 0,
    add column refresh_lease_owner text;

-- The refresher's scan reads only due rows: O(due), not O(connections).
drop index vault.connections_due;
create index connections_refresh_due on vault.connections (refresh_due_at) where status = 'active';

-- Existing active connections get the rule of schedule.go with the default
-- lead time (5 minutes): lead = min(5m, half the remaining life), for the
-- access token and, sooner if it comes first, for the refresh token.
update vault.connections set refresh_due_at = least(
        case when expires_at is not null then
            expires_at - least(interval '5 minutes', greatest(expires_at - now(), interval '0') / 2) end,
        case when refresh_expires_at is not null then
            refresh_expires_at - least(interval '5 minutes', greatest(refresh_expires_at - now(), interval '0') / 2) end
    )
where status = 'active' and refresh_token is not null;

-- How long an access token lives when a provider's token response has no
-- expires_in; 0 = the vault's default (an hour).
alter table vault.provider_clients
    add column default_token_lifetime_seconds int not null default 0 check (default_token_lifetime_seconds >= 0);

-- Relay leases: a claimed event is not handed to another relay until
-- lease_until, so a relay that dies before acking leaves it to the next.
alter table vault.outbox
    add column lease_until timestamptz,
    add column lease_owner text;

drop index vault.outbox_unpublished;
create index outbox_unpublished on vault.outbox (created_at, id) where published_at is null;
