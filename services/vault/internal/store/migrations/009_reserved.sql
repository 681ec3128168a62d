-- Reserved: migration 009 belongs to the audit-records work, which lands
-- separately. This file only keeps the numbering contiguous (tern refuses a
-- gap) and is replaced by that migration when both are merged.
select 1;
