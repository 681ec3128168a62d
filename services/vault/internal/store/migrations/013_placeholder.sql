-- Placeholder for another branch's 013 (tern refuses a gap in the numbers):
-- the merge keeps that branch's 013 and drops this file.
select 1;
