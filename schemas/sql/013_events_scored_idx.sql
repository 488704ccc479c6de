-- 013_events_scored_idx.sql: funnel.events loses events_scored_idx.
-- 008_money.sql added it for score_outcomes, whose lookup of a lead's scored
-- events finds them as fast through events_lead_idx (lead_id, occurred_at):
-- a lead has a handful of events, and the type is checked on the rows the
-- range returns. Measured on a drained database of leadflow-gen's 100k
-- events (BENCHMARKS.md, "The in-order rate against 258d76c"): score_outcomes
-- in 596 ms with the index and 566-616 ms without it, while keeping it cost
-- every stored scored event (half of a typical stream) one more btree entry:
-- a third more server time in the projector's COPY of funnel.events.
DROP INDEX IF EXISTS funnel.events_scored_idx;
