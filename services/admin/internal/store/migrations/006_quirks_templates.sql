-- How a provider's token endpoint bends RFC 6749 (messages.Quirks, null
-- for none), and the catalog template it was created from with the values
-- its placeholders took ('' and {} for a provider written by hand).
alter table admin.providers
    add column quirks   jsonb,
    add column template text not null default '',
    add column params   jsonb not null default '{}';
