-- 011_identity_pending.sql: merges and erasures that wait for their locks.
-- A batch whose merged or erased events reach leads another writer holds
-- does not wait for that writer's transaction: it commits its own rows and
-- leaves the leads here; the next batch (or the projector when idle)
-- applies them. The tables are a function of the set of events once this
-- table is empty (leadflow-project empties it before --idle-exit exits).
CREATE TABLE funnel.identity_pending (
    lead_id text PRIMARY KEY,
    since   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE funnel.identity_pending IS
    'Leads whose merge component waits to be worked out (merges, erasure): '
    'another writer held their locks. Empty when the projector is idle.';
COMMENT ON COLUMN funnel.identity_pending.lead_id IS
    'A lead of the component (a merged event''s lead or target, an erased '
    'event''s lead).';
COMMENT ON COLUMN funnel.identity_pending.since IS
    'When it was left to wait (wall clock).';
