-- The mix-up defence (RFC 9207, RFC 9700 4.4): every OAuth provider has an
-- issuer identifier, unique across providers (checked by the store under the
-- names lock); whether its server sends iss in authorization responses; and
-- whether its consents come back to the shared callback (/v1/callback) or to
-- its own (/v1/callback/<id>), which tells the responses of servers that
-- send no iss apart.
alter table admin.providers
    add column iss_parameter_supported boolean not null default false,
    add column shared_callback         boolean not null default false;

-- Registrations made before: the redirect URI registered at their provider
-- is the shared one, and an OAuth2 provider without an issuer gets its
-- authorization endpoint's origin as one.
update admin.providers set shared_callback = true where type in ('oidc', 'oauth2');
update admin.providers set issuer = substring(authorization_endpoint from '^[a-z]+://[^/]+')
    where type = 'oauth2' and issuer = '' and authorization_endpoint <> '';

create index providers_issuer on admin.providers (issuer) where issuer <> '';
