-- Reserved: migration 008 belongs to the rate-limits work, which lands
-- separately. This file only keeps the numbering contiguous (tern refuses a
-- gap) and is replaced by that migration when both are merged.
select 1;
