-- How long an access token is taken to live when the provider's token
-- response has no expires_in (0: the vault's default).
alter table admin.providers add column default_token_lifetime_seconds integer not null default 0
    check (default_token_lifetime_seconds >= 0);
