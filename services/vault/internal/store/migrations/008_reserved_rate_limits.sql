-- Reserved: 008 is the rate limits' migration, merged from its own branch.
-- Numbers must follow each other (shared/pg.Migrate), so this empty one
-- holds the place until then; delete it when the real 008 arrives.
select 1;
