-- 016_definition_adopted.sql: funnel.definition.adopted_at is when the
-- definition was adopted. leadflow-replay promote now sets it when it makes
-- a what-if schema the funnel (before, the row kept the time of the rebuild
-- that wrote it); a promote under the rules the funnel already had keeps
-- their earlier time.
COMMENT ON COLUMN funnel.definition.adopted_at IS
    'Wall-clock: when these tables adopted the definition: when a projector '
    'first recorded it in a new database, or when leadflow-replay promote '
    'made the schema that records it the funnel (a promote under the same '
    'rules keeps the earlier time). In a what-if schema not yet promoted: '
    'when its rebuild recorded it.';
