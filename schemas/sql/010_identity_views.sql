-- 010_identity_views.sql: the analysts' views count surviving leads only and
-- ignore voided events, and a summary of the identity changes.
--
-- The views over funnel.leads and funnel.stage_history need nothing: the
-- projector writes rows for surviving leads only, computed without voided
-- events, and joins from stage_history to funnel.events go by event_id
-- (entered_by), which a merge does not change. Only score_outcomes read
-- funnel.events by lead_id; it now follows funnel.counted_events' rule: a
-- merged lead's events count for its surviving lead, voided ones not.

-- ---- score_outcomes ----------------------------------------------------

-- The deciding score as before, taken from the scored events of the lead
-- and of every lead merged into it, voided ones left out: the rows of
-- funnel.counted_events whose surviving_lead_id is the lead. Written out
-- over funnel.events for speed: the lead ids are listed first (the lead,
-- and funnel.merges by surviving_lead_id) so that events_scored_idx finds
-- their events (surviving_lead_id is computed, a condition on it alone
-- reads every event), and NOT IN builds the voided events once per query
-- where counted_events' NOT EXISTS would compute them again for each lead.
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
        LEFT JOIN LATERAL (
            SELECT e.payload ->> 'model' AS model,
                   (e.payload ->> 'score')::integer AS score,
                   (e.payload ->> 'threshold')::integer AS threshold
            FROM funnel.events AS e
            WHERE e.lead_id IN (SELECT l.lead_id
                                UNION ALL
                                SELECT m.lead_id FROM funnel.merges AS m
                                WHERE m.surviving_lead_id = l.lead_id)
              AND e.event_id NOT IN (SELECT v.event_id
                                     FROM funnel.voided_events AS v)
              AND e.type = 'scored'
              AND e.occurred_at >= l.captured_at
              AND (l.first_handed_off_at IS NULL
                   OR e.occurred_at <= l.first_handed_off_at)
            ORDER BY e.occurred_at DESC, e.event_id DESC
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
    'order) at or before its first handoff, or its latest scored event if '
    'it was never handed off; leads never scored (or scored only after '
    'their first handoff) form the row with model NULL. Per model and '
    'score band: how many leads ever reached each stage '
    'and how sales answered the handoffs. The scored events of leads '
    'merged into a lead are its own; voided ones do not count.';

-- ---- identity_summary --------------------------------------------------

-- Unfiltered, everything in the tables: an erased or merged lead that was
-- never captured still counts. Filtered, what belongs to the leads in
-- scope, by surviving lead: anomalies are listed under it already, an
-- erasure names a pseudonym that may be a merged lead's.
CREATE FUNCTION funnel.identity_summary_filtered(
    captured_from date DEFAULT NULL, captured_to date DEFAULT NULL,
    only_channel text DEFAULT NULL)
RETURNS TABLE (merges bigint, voided_events bigint, erasures bigint,
               merge_anomalies bigint, void_anomalies bigint)
LANGUAGE sql STABLE AS $$
    WITH scope AS (
        SELECT $1 IS NULL AND $2 IS NULL AND $3 IS NULL AS everything
    ), scoped AS (
        SELECT l.lead_id FROM funnel.leads_in_scope($1, $2, $3) AS l
    )
    SELECT
        (SELECT count(*) FROM funnel.merges AS m
         WHERE (SELECT everything FROM scope)
            OR m.surviving_lead_id IN (SELECT lead_id FROM scoped)),
        (SELECT count(*) FROM funnel.voided_events AS v
         WHERE (SELECT everything FROM scope)
            OR v.surviving_lead_id IN (SELECT lead_id FROM scoped)),
        (SELECT count(*) FROM funnel.erasures AS r
         LEFT JOIN funnel.merges AS m ON m.lead_id = r.pseudonym
         WHERE (SELECT everything FROM scope)
            OR coalesce(m.surviving_lead_id, r.pseudonym)
               IN (SELECT lead_id FROM scoped)),
        (SELECT count(*) FROM funnel.anomalies AS a
         WHERE a.kind = 'merge'
           AND ((SELECT everything FROM scope)
                OR a.lead_id IN (SELECT lead_id FROM scoped))),
        (SELECT count(*) FROM funnel.anomalies AS a
         WHERE a.kind = 'void'
           AND ((SELECT everything FROM scope)
                OR a.lead_id IN (SELECT lead_id FROM scoped)))
$$;
COMMENT ON FUNCTION funnel.identity_summary_filtered(date, date, text) IS
    'funnel.identity_summary for the leads of funnel.leads_in_scope('
    'captured_from, captured_to, only_channel): the merges, voided events, '
    'erasures and anomalies whose surviving lead is one of them.';

CREATE VIEW funnel.identity_summary AS
SELECT * FROM funnel.identity_summary_filtered(NULL, NULL, NULL);

COMMENT ON VIEW funnel.identity_summary IS
    'Identity changes, one row: merges that count, events voided, people '
    'erased, and the anomalies of merged and voided events that do not '
    'count. Over everything in the tables; funnel.identity_summary_filtered '
    'counts those of the leads in scope, by surviving lead.';
COMMENT ON COLUMN funnel.identity_summary.merges IS
    'Merges that count (rows of funnel.merges).';
COMMENT ON COLUMN funnel.identity_summary.voided_events IS
    'Events that no longer count (rows of funnel.voided_events).';
COMMENT ON COLUMN funnel.identity_summary.erasures IS
    'Erased events projected (rows of funnel.erasures).';
COMMENT ON COLUMN funnel.identity_summary.merge_anomalies IS
    'Merged events that do not count: another target, or a cycle '
    '(funnel.anomalies of kind merge).';
COMMENT ON COLUMN funnel.identity_summary.void_anomalies IS
    'Voided events that do not count: target not received, another '
    'lead''s, or not a stage event (funnel.anomalies of kind void).';

GRANT SELECT ON funnel.identity_summary TO leadflow_analyst;
GRANT EXECUTE ON FUNCTION funnel.identity_summary_filtered(date, date, text)
    TO leadflow_analyst;
