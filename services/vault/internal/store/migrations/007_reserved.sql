-- Number 7 is the consent work's migration, merged from its own branch.
-- This file only holds its place so that 008 applies here; delete it when
-- that migration arrives (tern refuses two migrations numbered 7).
select 1;
