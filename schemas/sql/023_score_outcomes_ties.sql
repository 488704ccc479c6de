-- 023_score_outcomes_ties.sql: score_outcomes' deciding score compares
-- events in (occurred_at, event_id) order, as its comment and the
-- projector do, not by time alone. A scored event at the same millisecond
-- as the first handoff but after it in that order (a larger event_id) was
-- taken as the deciding score, though the projector applied it after the
-- handoff; one at the capture's millisecond but before it (a smaller
-- event_id: "scored before the lead's capture", an anomaly) was taken too.
-- The capture and the first handoff are the events that entered the
-- lead's first visit and its first handed_off visit. event_id compares
-- byte by byte (COLLATE "C"), as the projector orders it.
--
-- Each lead's scored events are read by lead id through events_lead_idx
-- whatever the statistics (a LATERAL fenced by OFFSET 0): before the first
-- ANALYZE of a freshly drained table the planner chose a sequential scan
-- of funnel.events for every lead, and the view took 400 s on 100,000
-- events (0.8 s now; the same as before once analysed).
--
-- Same signature and columns: the view and its grants stay; its comment
-- and the model column's now say "after its capture".
CREATE OR REPLACE FUNCTION funnel.score_outcomes_filtered(
    captured_from date DEFAULT NULL, captured_to date DEFAULT NULL,
    only_channel text DEFAULT NULL)
RETURNS TABLE (model text, score_band integer, threshold integer,
               leads bigint, below_threshold bigint,
               marketing_qualified bigint, handed_off bigint,
               sales_accepted bigint, sales_qualified bigint, won bigint,
               nurture bigint, disqualified bigint, acceptance_rate numeric,
               won_rate numeric)
LANGUAGE sql STABLE AS $$
    WITH d AS (
        SELECT l.lead_id, s.model, s.score, s.threshold
        FROM funnel.leads_in_scope($1, $2, $3) AS l
        CROSS JOIN LATERAL (
            SELECT (SELECT h.entered_by FROM funnel.stage_history AS h
                    WHERE h.lead_id = l.lead_id AND h.visit = 1)
                       AS captured_by,
                   (SELECT h.entered_by FROM funnel.stage_history AS h
                    WHERE h.lead_id = l.lead_id AND h.stage = 'handed_off'
                    ORDER BY h.visit LIMIT 1) AS handed_off_by) AS b
        LEFT JOIN LATERAL (
            SELECT x.payload ->> 'model' AS model,
                   (x.payload ->> 'score')::integer AS score,
                   (x.payload ->> 'threshold')::integer AS threshold
            FROM (SELECT l.lead_id AS id
                  UNION ALL
                  SELECT m.lead_id FROM funnel.merges AS m
                  WHERE m.surviving_lead_id = l.lead_id) AS p
            CROSS JOIN LATERAL (
                SELECT e.event_id, e.occurred_at, e.payload
                FROM funnel.events AS e
                WHERE e.lead_id = p.id AND e.type = 'scored'
                OFFSET 0) AS x
            WHERE x.event_id NOT IN (SELECT v.event_id
                                     FROM funnel.voided_events AS v)
              AND (x.occurred_at > l.captured_at
                   OR x.occurred_at = l.captured_at
                      AND x.event_id COLLATE "C" > b.captured_by COLLATE "C")
              AND (l.first_handed_off_at IS NULL
                   OR x.occurred_at < l.first_handed_off_at
                   OR x.occurred_at = l.first_handed_off_at
                      AND x.event_id COLLATE "C"
                          < b.handed_off_by COLLATE "C")
            ORDER BY x.occurred_at DESC, x.event_id COLLATE "C" DESC
            LIMIT 1) AS s ON true
    ), reached AS (
        SELECT d.lead_id, d.model, d.score, d.threshold,
               bool_or(h.stage = 'marketing_qualified') AS mql,
               bool_or(h.stage = 'handed_off') AS ho,
               bool_or(h.stage = 'sales_accepted') AS sa,
               bool_or(h.stage = 'sales_qualified') AS sq,
               bool_or(h.stage = 'won') AS won,
               bool_or(h.stage = 'nurture') AS nurture,
               bool_or(h.stage = 'disqualified') AS dq
        FROM d
        JOIN funnel.stage_history AS h ON h.lead_id = d.lead_id
        GROUP BY d.lead_id, d.model, d.score, d.threshold
    ), c AS (
        SELECT r.model,
               (floor(r.score / 10.0) * 10)::integer AS score_band,
               mode() WITHIN GROUP (ORDER BY r.threshold) AS threshold,
               count(*) AS leads,
               count(*) FILTER (WHERE r.score < r.threshold) AS below,
               count(*) FILTER (WHERE r.mql) AS mql,
               count(*) FILTER (WHERE r.ho) AS ho,
               count(*) FILTER (WHERE r.sa) AS sa,
               count(*) FILTER (WHERE r.sq) AS sq,
               count(*) FILTER (WHERE r.won) AS won,
               count(*) FILTER (WHERE r.nurture) AS nurture,
               count(*) FILTER (WHERE r.dq) AS dq
        FROM reached AS r
        GROUP BY 1, 2
    )
    SELECT c.model, c.score_band, c.threshold, c.leads, c.below, c.mql,
           c.ho, c.sa, c.sq, c.won, c.nurture, c.dq,
           round(c.sa::numeric / nullif(c.ho, 0), 4),
           round(c.won::numeric / nullif(c.ho, 0), 4)
    FROM c
$$;

COMMENT ON VIEW funnel.score_outcomes IS
    'Is the score threshold right? Each captured lead is placed by its '
    'deciding score: the latest scored event (in (occurred_at, event_id) '
    'order) after its capture and at or before its first handoff, or its '
    'latest scored event if it was never handed off; leads never scored '
    '(or scored only before their capture or after their first handoff) '
    'form the row with model NULL. A scored event at the same millisecond '
    'as the capture or the handoff falls before or after it by event_id, '
    'compared byte by byte, as the projector orders them. Per model and '
    'score band: how many '
    'leads ever reached each stage and how sales answered the handoffs. '
    'The scored events of leads merged into a lead are its own; voided '
    'ones do not count.';
COMMENT ON COLUMN funnel.score_outcomes.model IS
    'Scoring model of the deciding score; NULL for leads without one (never '
    'scored, or scored only before their capture or after their first '
    'handoff).';
