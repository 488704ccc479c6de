-- 014_identity_pending_unkeyed.sql: leaving a lead to wait never waits.
-- With lead_id as primary key, a writer adding a lead that the other writer
-- had just added (or had taken to work out) waited for that writer's whole
-- transaction: the uniqueness check must know whether the other row
-- commits. The two writers then took turns on every batch whose merges
-- crossed their partitions (BENCHMARKS.md, "Identity: the writers took
-- turns"). A writer now replaces the rows of a component it leaves that no
-- other transaction holds and adds the rest anew, so a lead may be listed
-- twice for a moment; the projector reads each lead once and deletes the rows
-- of a component it works out.
DO $$
DECLARE
    pk text;
BEGIN
    SELECT conname INTO pk FROM pg_constraint
    WHERE conrelid = 'funnel.identity_pending'::regclass AND contype = 'p';
    IF pk IS NOT NULL THEN
        EXECUTE format('ALTER TABLE funnel.identity_pending DROP CONSTRAINT %I',
                       pk);
    END IF;
END
$$;
CREATE INDEX identity_pending_lead_idx ON funnel.identity_pending (lead_id);
COMMENT ON INDEX funnel.identity_pending_lead_idx IS
    'Finding a waiting lead (not unique: two writers may each leave it).';
COMMENT ON COLUMN funnel.identity_pending.lead_id IS
    'A lead of the component (a merged event''s lead or target, an erased '
    'event''s lead); may be listed more than once for a moment.';
