-- Placeholder for another branch's 012 (tern refuses a gap in the numbers):
-- the merge keeps that branch's 012 and drops this file.
select 1;
