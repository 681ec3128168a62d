-- Reserved: 007 is the consent work's migration, merged from its own branch.
-- Numbers must follow each other (shared/pg.Migrate), so this empty one
-- holds the place until then; delete it when the real 007 arrives.
select 1;
