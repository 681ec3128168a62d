-- Published events are pruned a day later (long after JetStream's duplicate
-- window); this index keeps the prune from scanning the table.
create index outbox_published on vault.outbox (published_at) where published_at is not null;
