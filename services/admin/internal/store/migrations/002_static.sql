-- Static providers: the optional verification request, and the credential
-- schema kept as the operator wrote it. jsonb reorders object keys; json keeps
-- the text, so the hosted form can show the fields in the schema's own order.

alter table admin.providers add column verification jsonb;

alter table admin.providers alter column credential_schema type json using credential_schema::text::json;
