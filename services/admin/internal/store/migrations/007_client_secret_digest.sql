-- A salted, slow digest (services/admin/internal/secretdigest) of the client secret admin
-- last handed the vault, so that an operator's tool can tell whether the
-- secret it holds is the stored one without sending it. Never the secret.
alter table admin.providers
    add column client_secret_digest text not null default '';
