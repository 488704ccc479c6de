-- 002_views.sql: the funnel metrics, computed one way for everyone.
--
-- Each metric is a view for analysts and BI tools (funnel.stage_counts, ...)
-- and a function of the same name plus _filtered that takes the filters
-- leadflow-report offers: capture date from, capture date to (both
-- inclusive, UTC dates) and channel; NULL means no filter. Every view is
-- exactly its function called with NULLs, so a report and a query of a view
-- can never disagree. The functions are plain STABLE SQL, which PostgreSQL
-- inlines into the calling query, so a WHERE on a view still reaches the
-- tables.
--
-- Conventions: dates and months are UTC (capture_month is the first day of
-- the month, as a date); rates are fractions 0..1 rounded to 4 places, NULL
-- when there is nothing to divide by; durations are hours rounded to 2
-- places. In rows that total over a dimension, that dimension is NULL
-- (channel is always set on a captured lead, so NULL there only ever means
-- "all channels").

-- The nine stages in funnel order. The funnel steps are the happy path
-- captured -> marketing_qualified -> handed_off -> sales_accepted ->
-- sales_qualified -> won; lost, nurture and disqualified are off the path.
CREATE VIEW funnel.stages AS
SELECT s.stage, s.stage_order, s.funnel_step, s.is_final
FROM (VALUES ('captured', 1, 1, false),
             ('marketing_qualified', 2, 2, false),
             ('handed_off', 3, 3, false),
             ('sales_accepted', 4, 4, false),
             ('sales_qualified', 5, 5, false),
             ('won', 6, 6, true),
             ('lost', 7, NULL, false),
             ('nurture', 8, NULL, false),
             ('disqualified', 9, NULL, true))
    AS s (stage, stage_order, funnel_step, is_final);

COMMENT ON VIEW funnel.stages IS
    'The nine funnel stages in order, for joining and sorting.';
COMMENT ON COLUMN funnel.stages.stage IS 'Stage name as in funnel.leads.stage.';
COMMENT ON COLUMN funnel.stages.stage_order IS
    'Sort key, 1 (captured) to 9 (disqualified).';
COMMENT ON COLUMN funnel.stages.funnel_step IS
    'Position on the happy path captured(1) -> won(6); NULL for lost, '
    'nurture and disqualified.';
COMMENT ON COLUMN funnel.stages.is_final IS
    'True for won and disqualified: no event moves a lead out of them.';

-- The leads a report looks at. Capture dates are UTC days; to is
-- inclusive, hence "< to + 1 day".
CREATE FUNCTION funnel.leads_in_scope(captured_from date DEFAULT NULL,
                                      captured_to date DEFAULT NULL,
                                      only_channel text DEFAULT NULL)
RETURNS SETOF funnel.leads
LANGUAGE sql STABLE AS $$
    SELECT l.*
    FROM funnel.leads AS l
    WHERE ($1 IS NULL OR l.captured_at >= $1::timestamp AT TIME ZONE 'UTC')
      AND ($2 IS NULL
           OR l.captured_at < ($2 + 1)::timestamp AT TIME ZONE 'UTC')
      AND ($3 IS NULL OR l.channel = $3)
$$;
COMMENT ON FUNCTION funnel.leads_in_scope(date, date, text) IS
    'The leads captured from captured_from to captured_to (UTC dates, both '
    'inclusive) in channel only_channel; a NULL argument does not filter.';

-- ---- stage_counts ------------------------------------------------------

CREATE FUNCTION funnel.stage_counts_filtered(captured_from date DEFAULT NULL,
                                             captured_to date DEFAULT NULL,
                                             only_channel text DEFAULT NULL)
RETURNS TABLE (stage text, stage_order integer, channel text, leads bigint,
               share numeric)
LANGUAGE sql STABLE AS $$
    WITH scoped AS (
        SELECT l.stage, l.channel FROM funnel.leads_in_scope($1, $2, $3) AS l
    ), counted AS (
        -- Every stage for every channel, zeros included.
        SELECT s.stage, s.stage_order, c.channel, count(x.stage) AS leads
        FROM funnel.stages AS s
        CROSS JOIN (SELECT DISTINCT channel FROM scoped) AS c
        LEFT JOIN scoped AS x ON x.stage = s.stage AND x.channel = c.channel
        GROUP BY s.stage, s.stage_order, c.channel
        UNION ALL
        SELECT s.stage, s.stage_order, NULL, count(x.stage)
        FROM funnel.stages AS s
        LEFT JOIN scoped AS x ON x.stage = s.stage
        GROUP BY s.stage, s.stage_order
    )
    SELECT c.stage, c.stage_order, c.channel, c.leads,
           round(c.leads / nullif(sum(c.leads) OVER (PARTITION BY c.channel),
                                  0), 4)
    FROM counted AS c
$$;
COMMENT ON FUNCTION funnel.stage_counts_filtered(date, date, text) IS
    'funnel.stage_counts for the leads of funnel.leads_in_scope(captured_from, '
    'captured_to, only_channel).';

CREATE VIEW funnel.stage_counts AS
SELECT * FROM funnel.stage_counts_filtered(NULL, NULL, NULL);

COMMENT ON VIEW funnel.stage_counts IS
    'Leads per current stage, per channel and over all channels (channel '
    'NULL). Every stage appears, with 0 when no lead is in it.';
COMMENT ON COLUMN funnel.stage_counts.stage IS 'Current stage of the leads.';
COMMENT ON COLUMN funnel.stage_counts.stage_order IS
    'Sort key of the stage (funnel.stages).';
COMMENT ON COLUMN funnel.stage_counts.channel IS
    'Capture channel; NULL in the rows over all channels.';
COMMENT ON COLUMN funnel.stage_counts.leads IS
    'Leads whose current stage this is.';
COMMENT ON COLUMN funnel.stage_counts.share IS
    'leads / all leads of the channel (or of all channels), 0..1.';

-- ---- conversion --------------------------------------------------------

-- A lead entered a stage if it ever had a visit there; it reached the next
-- stage if it had a visit there after (by visit number) its first visit to
-- the earlier one, so a lead that skipped a stage, or that came back to it
-- after a recycle, is counted the way a reader of its history would.
-- One pass over the history gives each lead its first and last visit
-- number per funnel stage; the counts are taken per month and channel with
-- the totals (GROUPING SETS), and only then spread into the five steps.
CREATE FUNCTION funnel.conversion_filtered(captured_from date DEFAULT NULL,
                                           captured_to date DEFAULT NULL,
                                           only_channel text DEFAULT NULL)
RETURNS TABLE (capture_month date, channel text, step integer,
               from_stage text, to_stage text, entered bigint, reached bigint,
               rate numeric)
LANGUAGE sql STABLE AS $$
    WITH scoped AS (
        SELECT l.lead_id, l.channel,
               date_trunc('month', l.captured_at AT TIME ZONE 'UTC')::date
                   AS capture_month
        FROM funnel.leads_in_scope($1, $2, $3) AS l
    ), per_lead AS (
        SELECT s.capture_month, s.channel,
               min(h.visit) FILTER (WHERE h.stage = 'captured') AS cap,
               min(h.visit) FILTER (WHERE h.stage = 'marketing_qualified')
                   AS mql_first,
               max(h.visit) FILTER (WHERE h.stage = 'marketing_qualified')
                   AS mql_last,
               min(h.visit) FILTER (WHERE h.stage = 'handed_off')
                   AS ho_first,
               max(h.visit) FILTER (WHERE h.stage = 'handed_off') AS ho_last,
               min(h.visit) FILTER (WHERE h.stage = 'sales_accepted')
                   AS sa_first,
               max(h.visit) FILTER (WHERE h.stage = 'sales_accepted')
                   AS sa_last,
               min(h.visit) FILTER (WHERE h.stage = 'sales_qualified')
                   AS sq_first,
               max(h.visit) FILTER (WHERE h.stage = 'sales_qualified')
                   AS sq_last,
               max(h.visit) FILTER (WHERE h.stage = 'won') AS won_last
        FROM scoped AS s
        JOIN funnel.stage_history AS h ON h.lead_id = s.lead_id
        GROUP BY s.lead_id, s.capture_month, s.channel
    ), counted AS (
        SELECT p.capture_month, p.channel,
               count(p.cap) AS e1, count(*) FILTER (WHERE p.mql_last > p.cap)
                   AS r1,
               count(p.mql_first) AS e2,
               count(*) FILTER (WHERE p.ho_last > p.mql_first) AS r2,
               count(p.ho_first) AS e3,
               count(*) FILTER (WHERE p.sa_last > p.ho_first) AS r3,
               count(p.sa_first) AS e4,
               count(*) FILTER (WHERE p.sq_last > p.sa_first) AS r4,
               count(p.sq_first) AS e5,
               count(*) FILTER (WHERE p.won_last > p.sq_first) AS r5
        FROM per_lead AS p
        GROUP BY GROUPING SETS ((p.capture_month, p.channel),
                                (p.capture_month), (p.channel), ())
        -- The empty grouping set makes a row even without leads: drop it.
        HAVING count(*) > 0
    )
    SELECT c.capture_month, c.channel, st.step, st.from_stage, st.to_stage,
           st.entered, st.reached,
           round(st.reached::numeric / nullif(st.entered, 0), 4)
    FROM counted AS c
    CROSS JOIN LATERAL (VALUES
        (1, 'captured', 'marketing_qualified', c.e1, c.r1),
        (2, 'marketing_qualified', 'handed_off', c.e2, c.r2),
        (3, 'handed_off', 'sales_accepted', c.e3, c.r3),
        (4, 'sales_accepted', 'sales_qualified', c.e4, c.r4),
        (5, 'sales_qualified', 'won', c.e5, c.r5))
        AS st (step, from_stage, to_stage, entered, reached)
$$;
COMMENT ON FUNCTION funnel.conversion_filtered(date, date, text) IS
    'funnel.conversion for the leads of funnel.leads_in_scope(captured_from, '
    'captured_to, only_channel).';

CREATE VIEW funnel.conversion AS
SELECT * FROM funnel.conversion_filtered(NULL, NULL, NULL);

COMMENT ON VIEW funnel.conversion IS
    'Stage-to-stage conversion along captured -> marketing_qualified -> '
    'handed_off -> sales_accepted -> sales_qualified -> won: of the leads '
    'that entered from_stage, how many later reached to_stage. By capture '
    'month and channel, with totals (NULL month and/or channel).';
COMMENT ON COLUMN funnel.conversion.capture_month IS
    'First day of the UTC month the leads were captured in; NULL = all '
    'months.';
COMMENT ON COLUMN funnel.conversion.channel IS
    'Capture channel; NULL = all channels.';
COMMENT ON COLUMN funnel.conversion.step IS
    'Step number, 1 (captured -> marketing_qualified) to 5 '
    '(sales_qualified -> won).';
COMMENT ON COLUMN funnel.conversion.from_stage IS 'The earlier stage.';
COMMENT ON COLUMN funnel.conversion.to_stage IS 'The next stage.';
COMMENT ON COLUMN funnel.conversion.entered IS
    'Leads that ever entered from_stage.';
COMMENT ON COLUMN funnel.conversion.reached IS
    'Of those, leads with a visit to to_stage after their first visit to '
    'from_stage.';
COMMENT ON COLUMN funnel.conversion.rate IS
    'reached / entered, 0..1; NULL when entered is 0.';

-- ---- time_in_stage -----------------------------------------------------

CREATE FUNCTION funnel.time_in_stage_filtered(captured_from date DEFAULT NULL,
                                              captured_to date DEFAULT NULL,
                                              only_channel text DEFAULT NULL)
RETURNS TABLE (stage text, stage_order integer, finished_visits bigint,
               median_hours numeric, p90_hours numeric, mean_hours numeric,
               current_visits bigint, current_median_hours numeric,
               current_max_hours numeric)
LANGUAGE sql STABLE AS $$
    WITH v AS (
        SELECT h.stage, h.exited_at IS NOT NULL AS finished,
               extract(epoch FROM coalesce(h.exited_at, now()) - h.entered_at)
                   / 3600 AS hours
        FROM funnel.stage_history AS h
        JOIN funnel.leads_in_scope($1, $2, $3) AS l ON l.lead_id = h.lead_id
    )
    SELECT s.stage, s.stage_order,
           count(*) FILTER (WHERE v.finished),
           round((percentile_cont(0.5) WITHIN GROUP (ORDER BY v.hours::float8)
                  FILTER (WHERE v.finished))::numeric, 2),
           round((percentile_cont(0.9) WITHIN GROUP (ORDER BY v.hours::float8)
                  FILTER (WHERE v.finished))::numeric, 2),
           round(avg(v.hours) FILTER (WHERE v.finished), 2),
           count(*) FILTER (WHERE NOT v.finished),
           -- Waiting in a final stage is not waiting: no ages for them.
           CASE WHEN NOT s.is_final THEN
               round((percentile_cont(0.5) WITHIN GROUP (
                          ORDER BY v.hours::float8)
                      FILTER (WHERE NOT v.finished))::numeric, 2) END,
           CASE WHEN NOT s.is_final THEN
               round(max(v.hours) FILTER (WHERE NOT v.finished), 2) END
    FROM funnel.stages AS s
    LEFT JOIN v ON v.stage = s.stage
    GROUP BY s.stage, s.stage_order, s.is_final
$$;
COMMENT ON FUNCTION funnel.time_in_stage_filtered(date, date, text) IS
    'funnel.time_in_stage for the leads of funnel.leads_in_scope('
    'captured_from, captured_to, only_channel).';

CREATE VIEW funnel.time_in_stage AS
SELECT * FROM funnel.time_in_stage_filtered(NULL, NULL, NULL);

COMMENT ON VIEW funnel.time_in_stage IS
    'Time spent per stage visit (funnel.stage_history): finished visits '
    '(median, 90th percentile, mean) and the visits still open, with their '
    'age at query time. Every stage appears.';
COMMENT ON COLUMN funnel.time_in_stage.stage IS 'The stage.';
COMMENT ON COLUMN funnel.time_in_stage.stage_order IS
    'Sort key of the stage (funnel.stages).';
COMMENT ON COLUMN funnel.time_in_stage.finished_visits IS
    'Visits that ended (the lead moved on).';
COMMENT ON COLUMN funnel.time_in_stage.median_hours IS
    'Median hours of the finished visits (interpolated, percentile_cont).';
COMMENT ON COLUMN funnel.time_in_stage.p90_hours IS
    '90th percentile hours of the finished visits (interpolated).';
COMMENT ON COLUMN funnel.time_in_stage.mean_hours IS
    'Mean hours of the finished visits.';
COMMENT ON COLUMN funnel.time_in_stage.current_visits IS
    'Leads in this stage now (open visits).';
COMMENT ON COLUMN funnel.time_in_stage.current_median_hours IS
    'Median hours the current visits have lasted so far, at query time; '
    'NULL for the final stages won and disqualified.';
COMMENT ON COLUMN funnel.time_in_stage.current_max_hours IS
    'Hours the oldest current visit has lasted so far, at query time; NULL '
    'for the final stages won and disqualified.';

-- ---- handoff_sla -------------------------------------------------------

-- From handed_off the machine allows three moves: accepted (to
-- sales_accepted), recycled (to nurture) and disqualified; the visit after
-- the handoff's says which. Any of the three answers the handoff, so any of them
-- within sla_hours meets the SLA.
CREATE FUNCTION funnel.handoff_sla_filtered(captured_from date DEFAULT NULL,
                                            captured_to date DEFAULT NULL,
                                            only_channel text DEFAULT NULL)
RETURNS TABLE (lead_id text, visit integer, cycle integer, channel text,
               campaign text, owner text, sla_hours integer,
               handed_off_at timestamptz, sla_due_at timestamptz,
               disposition text, disposed_at timestamptz,
               accepted_at timestamptz, recycled_at timestamptz,
               disqualified_at timestamptz, hours_to_disposition numeric,
               sla_breached boolean)
LANGUAGE sql STABLE AS $$
    WITH h AS (
        SELECT h.lead_id, h.visit, h.cycle, l.channel, l.campaign,
               e.payload ->> 'owner' AS owner,
               (e.payload ->> 'sla_hours')::integer AS sla_hours,
               h.entered_at AS handed_off_at,
               CASE WHEN n.lead_id IS NULL THEN 'open'
                    WHEN n.stage = 'sales_accepted' THEN 'accepted'
                    WHEN n.stage = 'nurture' THEN 'recycled'
                    ELSE n.stage END AS disposition,
               n.entered_at AS disposed_at
        FROM funnel.leads_in_scope($1, $2, $3) AS l
        JOIN funnel.stage_history AS h
            ON h.lead_id = l.lead_id AND h.stage = 'handed_off'
        LEFT JOIN funnel.events AS e ON e.event_id = h.entered_by
        LEFT JOIN funnel.stage_history AS n
            ON n.lead_id = h.lead_id AND n.visit = h.visit + 1
    )
    SELECT h.lead_id, h.visit, h.cycle, h.channel, h.campaign, h.owner,
           h.sla_hours, h.handed_off_at,
           h.handed_off_at + make_interval(hours => h.sla_hours),
           h.disposition, h.disposed_at,
           CASE WHEN h.disposition = 'accepted' THEN h.disposed_at END,
           CASE WHEN h.disposition = 'recycled' THEN h.disposed_at END,
           CASE WHEN h.disposition = 'disqualified' THEN h.disposed_at END,
           round(extract(epoch FROM h.disposed_at - h.handed_off_at) / 3600,
                 2),
           coalesce(h.disposed_at, now())
               > h.handed_off_at + make_interval(hours => h.sla_hours)
    FROM h
$$;
COMMENT ON FUNCTION funnel.handoff_sla_filtered(date, date, text) IS
    'funnel.handoff_sla for the leads of funnel.leads_in_scope(captured_from, '
    'captured_to, only_channel).';

CREATE VIEW funnel.handoff_sla AS
SELECT * FROM funnel.handoff_sla_filtered(NULL, NULL, NULL);

COMMENT ON VIEW funnel.handoff_sla IS
    'One row per handoff to sales (each visit to handed_off): who got it, '
    'the SLA it came with, how sales answered (accepted, recycled, '
    'disqualified, or still open) and whether the answer came within the '
    'SLA. Open handoffs past their due time count as breached.';
COMMENT ON COLUMN funnel.handoff_sla.lead_id IS 'The lead.';
COMMENT ON COLUMN funnel.handoff_sla.visit IS
    'The handed_off visit (funnel.stage_history.visit).';
COMMENT ON COLUMN funnel.handoff_sla.cycle IS
    'The lead''s cycle at the handoff (1, then +1 after each nurture).';
COMMENT ON COLUMN funnel.handoff_sla.channel IS 'Capture channel of the lead.';
COMMENT ON COLUMN funnel.handoff_sla.campaign IS
    'Capture campaign of the lead (may be NULL).';
COMMENT ON COLUMN funnel.handoff_sla.owner IS
    'Sales owner named by the HANDED_OFF event.';
COMMENT ON COLUMN funnel.handoff_sla.sla_hours IS
    'Hours sales had to answer, from the HANDED_OFF event.';
COMMENT ON COLUMN funnel.handoff_sla.handed_off_at IS 'When it was handed off.';
COMMENT ON COLUMN funnel.handoff_sla.sla_due_at IS
    'handed_off_at + sla_hours.';
COMMENT ON COLUMN funnel.handoff_sla.disposition IS
    'accepted, recycled, disqualified, or open (no answer yet).';
COMMENT ON COLUMN funnel.handoff_sla.disposed_at IS
    'When sales answered; NULL while open.';
COMMENT ON COLUMN funnel.handoff_sla.accepted_at IS
    'disposed_at if the handoff was accepted, else NULL.';
COMMENT ON COLUMN funnel.handoff_sla.recycled_at IS
    'disposed_at if the lead was recycled to nurture, else NULL.';
COMMENT ON COLUMN funnel.handoff_sla.disqualified_at IS
    'disposed_at if the lead was disqualified, else NULL.';
COMMENT ON COLUMN funnel.handoff_sla.hours_to_disposition IS
    'Hours from handoff to answer; NULL while open.';
COMMENT ON COLUMN funnel.handoff_sla.sla_breached IS
    'True if answered after sla_due_at, or still open past it at query time.';

CREATE FUNCTION funnel.handoff_sla_by_owner_filtered(
    captured_from date DEFAULT NULL, captured_to date DEFAULT NULL,
    only_channel text DEFAULT NULL)
RETURNS TABLE (owner text, handoffs bigint, accepted bigint, recycled bigint,
               disqualified bigint, still_open bigint, sla_met bigint,
               sla_breached bigint, sla_pending bigint, sla_met_rate numeric,
               acceptance_rate numeric, median_hours_to_accept numeric)
LANGUAGE sql STABLE AS $$
    WITH c AS (
        SELECT h.owner, count(*) AS handoffs,
               count(*) FILTER (WHERE h.disposition = 'accepted') AS accepted,
               count(*) FILTER (WHERE h.disposition = 'recycled') AS recycled,
               count(*) FILTER (WHERE h.disposition = 'disqualified')
                   AS disqualified,
               count(*) FILTER (WHERE h.disposition = 'open') AS still_open,
               count(*) FILTER (WHERE h.disposition <> 'open'
                                  AND NOT h.sla_breached) AS sla_met,
               count(*) FILTER (WHERE h.sla_breached) AS sla_breached,
               count(*) FILTER (WHERE h.disposition = 'open'
                                  AND NOT h.sla_breached) AS sla_pending,
               percentile_cont(0.5) WITHIN GROUP (
                   ORDER BY h.hours_to_disposition::float8)
                   FILTER (WHERE h.disposition = 'accepted') AS median_accept
        FROM funnel.handoff_sla_filtered($1, $2, $3) AS h
        GROUP BY GROUPING SETS ((h.owner), ())
    )
    SELECT c.owner, c.handoffs, c.accepted, c.recycled, c.disqualified,
           c.still_open, c.sla_met, c.sla_breached, c.sla_pending,
           round(c.sla_met::numeric / nullif(c.sla_met + c.sla_breached, 0),
                 4),
           round(c.accepted::numeric / nullif(c.handoffs - c.still_open, 0),
                 4),
           round(c.median_accept::numeric, 2)
    FROM c
$$;
COMMENT ON FUNCTION funnel.handoff_sla_by_owner_filtered(date, date, text) IS
    'funnel.handoff_sla_by_owner for the leads of funnel.leads_in_scope('
    'captured_from, captured_to, only_channel).';

CREATE VIEW funnel.handoff_sla_by_owner AS
SELECT * FROM funnel.handoff_sla_by_owner_filtered(NULL, NULL, NULL);

COMMENT ON VIEW funnel.handoff_sla_by_owner IS
    'funnel.handoff_sla summed per sales owner, plus one row over all '
    'owners (owner NULL).';
COMMENT ON COLUMN funnel.handoff_sla_by_owner.owner IS
    'Sales owner; NULL in the row over all owners.';
COMMENT ON COLUMN funnel.handoff_sla_by_owner.handoffs IS
    'Handoffs to this owner.';
COMMENT ON COLUMN funnel.handoff_sla_by_owner.accepted IS
    'Handoffs accepted.';
COMMENT ON COLUMN funnel.handoff_sla_by_owner.recycled IS
    'Handoffs recycled to nurture without being accepted.';
COMMENT ON COLUMN funnel.handoff_sla_by_owner.disqualified IS
    'Handoffs disqualified without being accepted.';
COMMENT ON COLUMN funnel.handoff_sla_by_owner.still_open IS
    'Handoffs not answered yet.';
COMMENT ON COLUMN funnel.handoff_sla_by_owner.sla_met IS
    'Handoffs answered within their SLA.';
COMMENT ON COLUMN funnel.handoff_sla_by_owner.sla_breached IS
    'Handoffs answered late, or open past their SLA.';
COMMENT ON COLUMN funnel.handoff_sla_by_owner.sla_pending IS
    'Handoffs open and still within their SLA (neither met nor breached '
    'yet).';
COMMENT ON COLUMN funnel.handoff_sla_by_owner.sla_met_rate IS
    'sla_met / (sla_met + sla_breached), 0..1: pending handoffs are left out.';
COMMENT ON COLUMN funnel.handoff_sla_by_owner.acceptance_rate IS
    'accepted / answered handoffs (handoffs - still_open), 0..1.';
COMMENT ON COLUMN funnel.handoff_sla_by_owner.median_hours_to_accept IS
    'Median hours from handoff to acceptance, over accepted handoffs.';

-- ---- recycle_reasons ---------------------------------------------------

-- A recycle is a visit to nurture (a recycled event is the only way in;
-- funnel.events.type holds the lower-case names). Its owner is whoever held
-- the lead then: the owner named by the lead's latest handed_off or
-- accepted event before it, the only events that set an owner.
CREATE FUNCTION funnel.recycle_reasons_filtered(
    captured_from date DEFAULT NULL, captured_to date DEFAULT NULL,
    only_channel text DEFAULT NULL)
RETURNS TABLE (breakdown text, reason text, channel text, campaign text,
               owner text, recycles bigint, share numeric)
LANGUAGE sql STABLE AS $$
    WITH r AS (
        SELECT e.payload ->> 'reason' AS reason, l.channel, l.campaign,
               o.owner
        FROM funnel.leads_in_scope($1, $2, $3) AS l
        JOIN funnel.stage_history AS h
            ON h.lead_id = l.lead_id AND h.stage = 'nurture'
        JOIN funnel.events AS e
            ON e.event_id = h.entered_by AND e.type = 'recycled'
        LEFT JOIN LATERAL (
            SELECT oe.payload ->> 'owner' AS owner
            FROM funnel.stage_history AS p
            JOIN funnel.events AS oe ON oe.event_id = p.entered_by
            WHERE p.lead_id = h.lead_id AND p.visit < h.visit
              AND p.stage IN ('handed_off', 'sales_accepted')
            ORDER BY p.visit DESC
            LIMIT 1) AS o ON true
    ), g AS (
        SELECT CASE grouping(r.channel, r.campaign, r.owner)
                   WHEN 7 THEN 'reason'
                   WHEN 1 THEN 'reason, channel, campaign'
                   ELSE 'reason, owner' END AS breakdown,
               r.reason, r.channel, r.campaign, r.owner, count(*) AS recycles
        FROM r
        GROUP BY GROUPING SETS ((r.reason), (r.reason, r.channel, r.campaign),
                                (r.reason, r.owner))
    )
    SELECT g.breakdown, g.reason, g.channel, g.campaign, g.owner, g.recycles,
           round(g.recycles / sum(g.recycles) OVER (PARTITION BY g.breakdown),
                 4)
    FROM g
$$;
COMMENT ON FUNCTION funnel.recycle_reasons_filtered(date, date, text) IS
    'funnel.recycle_reasons for the leads of funnel.leads_in_scope('
    'captured_from, captured_to, only_channel).';

CREATE VIEW funnel.recycle_reasons AS
SELECT * FROM funnel.recycle_reasons_filtered(NULL, NULL, NULL);

COMMENT ON VIEW funnel.recycle_reasons IS
    'Sales'' feedback to marketing: leads sent back to nurture, counted by '
    'reason (breakdown ''reason''), by reason and the lead''s capture channel '
    'and campaign (''reason, channel, campaign'') and by reason and the '
    'sales owner who sent it back (''reason, owner'').';
COMMENT ON COLUMN funnel.recycle_reasons.breakdown IS
    'Which columns this row is broken down by: ''reason'', ''reason, '
    'channel, campaign'' or ''reason, owner''. Filter on it before summing.';
COMMENT ON COLUMN funnel.recycle_reasons.reason IS
    'Recycle reason: not_ready, no_budget, no_authority, no_need, '
    'no_response, bad_timing or other.';
COMMENT ON COLUMN funnel.recycle_reasons.channel IS
    'Capture channel of the lead; NULL unless broken down by it.';
COMMENT ON COLUMN funnel.recycle_reasons.campaign IS
    'Capture campaign of the lead; NULL unless broken down by it (or when '
    'the lead had none).';
COMMENT ON COLUMN funnel.recycle_reasons.owner IS
    'Sales owner holding the lead when it was recycled; NULL unless broken '
    'down by it.';
COMMENT ON COLUMN funnel.recycle_reasons.recycles IS 'Recycles counted.';
COMMENT ON COLUMN funnel.recycle_reasons.share IS
    'recycles / all recycles, 0..1 (each breakdown sums to 1).';

-- ---- cohorts -----------------------------------------------------------

-- One pass over the history: which stages each lead ever visited; counted
-- per month, then spread into one row per stage.
CREATE FUNCTION funnel.cohorts_filtered(captured_from date DEFAULT NULL,
                                        captured_to date DEFAULT NULL,
                                        only_channel text DEFAULT NULL)
RETURNS TABLE (capture_month date, stage text, stage_order integer,
               leads bigint, reached bigint, share numeric)
LANGUAGE sql STABLE AS $$
    WITH per_lead AS (
        SELECT date_trunc('month', l.captured_at AT TIME ZONE 'UTC')::date
                   AS capture_month,
               bool_or(h.stage = 'captured') AS captured,
               bool_or(h.stage = 'marketing_qualified') AS mql,
               bool_or(h.stage = 'handed_off') AS handed_off,
               bool_or(h.stage = 'sales_accepted') AS accepted,
               bool_or(h.stage = 'sales_qualified') AS sql,
               bool_or(h.stage = 'won') AS won,
               bool_or(h.stage = 'lost') AS lost,
               bool_or(h.stage = 'nurture') AS nurture,
               bool_or(h.stage = 'disqualified') AS disqualified
        FROM funnel.leads_in_scope($1, $2, $3) AS l
        LEFT JOIN funnel.stage_history AS h ON h.lead_id = l.lead_id
        GROUP BY l.lead_id, l.captured_at
    ), counted AS (
        SELECT p.capture_month, count(*) AS leads,
               count(*) FILTER (WHERE p.captured) AS captured,
               count(*) FILTER (WHERE p.mql) AS mql,
               count(*) FILTER (WHERE p.handed_off) AS handed_off,
               count(*) FILTER (WHERE p.accepted) AS accepted,
               count(*) FILTER (WHERE p.sql) AS sql,
               count(*) FILTER (WHERE p.won) AS won,
               count(*) FILTER (WHERE p.lost) AS lost,
               count(*) FILTER (WHERE p.nurture) AS nurture,
               count(*) FILTER (WHERE p.disqualified) AS disqualified
        FROM per_lead AS p
        GROUP BY p.capture_month
    )
    SELECT c.capture_month, st.stage, st.stage_order, c.leads, st.reached,
           round(st.reached::numeric / c.leads, 4)
    FROM counted AS c
    CROSS JOIN LATERAL (VALUES
        ('captured', 1, c.captured),
        ('marketing_qualified', 2, c.mql),
        ('handed_off', 3, c.handed_off),
        ('sales_accepted', 4, c.accepted),
        ('sales_qualified', 5, c.sql),
        ('won', 6, c.won),
        ('lost', 7, c.lost),
        ('nurture', 8, c.nurture),
        ('disqualified', 9, c.disqualified))
        AS st (stage, stage_order, reached)
$$;
COMMENT ON FUNCTION funnel.cohorts_filtered(date, date, text) IS
    'funnel.cohorts for the leads of funnel.leads_in_scope(captured_from, '
    'captured_to, only_channel).';

CREATE VIEW funnel.cohorts AS
SELECT * FROM funnel.cohorts_filtered(NULL, NULL, NULL);

COMMENT ON VIEW funnel.cohorts IS
    'Capture-month cohorts: of the leads captured in a month, the share '
    'that ever reached each stage (so far). One row per month and stage.';
COMMENT ON COLUMN funnel.cohorts.capture_month IS
    'First day of the UTC capture month.';
COMMENT ON COLUMN funnel.cohorts.stage IS 'The stage.';
COMMENT ON COLUMN funnel.cohorts.stage_order IS
    'Sort key of the stage (funnel.stages).';
COMMENT ON COLUMN funnel.cohorts.leads IS 'Leads captured that month.';
COMMENT ON COLUMN funnel.cohorts.reached IS
    'Of those, leads that ever had a visit to the stage.';
COMMENT ON COLUMN funnel.cohorts.share IS 'reached / leads, 0..1.';

-- ---- source_performance ------------------------------------------------

CREATE FUNCTION funnel.source_performance_filtered(
    captured_from date DEFAULT NULL, captured_to date DEFAULT NULL,
    only_channel text DEFAULT NULL)
RETURNS TABLE (channel text, campaign text, leads bigint,
               marketing_qualified bigint, handed_off bigint,
               sales_accepted bigint, sales_qualified bigint, won bigint,
               won_amount_minor jsonb, won_rate numeric)
LANGUAGE sql STABLE AS $$
    WITH scoped AS (
        SELECT * FROM funnel.leads_in_scope($1, $2, $3)
    ), counted AS (
        SELECT s.channel, s.campaign, grouping(s.channel, s.campaign) AS g,
               count(*) AS leads,
               count(s.first_marketing_qualified_at) AS marketing_qualified,
               count(s.first_handed_off_at) AS handed_off,
               count(s.first_sales_accepted_at) AS sales_accepted,
               count(s.first_sales_qualified_at) AS sales_qualified,
               count(s.won_at) AS won
        FROM scoped AS s
        GROUP BY GROUPING SETS ((s.channel, s.campaign), ())
    ), per_currency AS (
        SELECT s.channel, s.campaign, grouping(s.channel, s.campaign) AS g,
               s.currency, sum(s.won_amount_minor) AS amount
        FROM scoped AS s
        WHERE s.won_at IS NOT NULL AND s.currency IS NOT NULL
        GROUP BY GROUPING SETS ((s.channel, s.campaign, s.currency),
                                (s.currency))
    ), revenue AS (
        SELECT p.channel, p.campaign, p.g,
               jsonb_object_agg(p.currency, p.amount) AS amounts
        FROM per_currency AS p
        GROUP BY p.channel, p.campaign, p.g
    )
    SELECT c.channel, c.campaign, c.leads, c.marketing_qualified,
           c.handed_off, c.sales_accepted, c.sales_qualified, c.won,
           coalesce(r.amounts, '{}'::jsonb),
           round(c.won::numeric / nullif(c.leads, 0), 4)
    FROM counted AS c
    LEFT JOIN revenue AS r
        ON r.g = c.g AND r.channel IS NOT DISTINCT FROM c.channel
       AND r.campaign IS NOT DISTINCT FROM c.campaign
$$;
COMMENT ON FUNCTION funnel.source_performance_filtered(date, date, text) IS
    'funnel.source_performance for the leads of funnel.leads_in_scope('
    'captured_from, captured_to, only_channel).';

CREATE VIEW funnel.source_performance AS
SELECT * FROM funnel.source_performance_filtered(NULL, NULL, NULL);

COMMENT ON VIEW funnel.source_performance IS
    'Per capture channel and campaign: how many leads reached each funnel '
    'milestone, won revenue per currency, and capture-to-won conversion. '
    'The row with channel NULL is the total over all sources.';
COMMENT ON COLUMN funnel.source_performance.channel IS
    'Capture channel; NULL only in the total row.';
COMMENT ON COLUMN funnel.source_performance.campaign IS
    'Capture campaign; NULL for leads captured without one, and in the '
    'total row.';
COMMENT ON COLUMN funnel.source_performance.leads IS 'Leads captured.';
COMMENT ON COLUMN funnel.source_performance.marketing_qualified IS
    'Leads that ever became marketing qualified (MQLs).';
COMMENT ON COLUMN funnel.source_performance.handed_off IS
    'Leads ever handed off to sales.';
COMMENT ON COLUMN funnel.source_performance.sales_accepted IS
    'Leads ever accepted by sales.';
COMMENT ON COLUMN funnel.source_performance.sales_qualified IS
    'Leads ever sales qualified (SQLs).';
COMMENT ON COLUMN funnel.source_performance.won IS 'Leads won.';
COMMENT ON COLUMN funnel.source_performance.won_amount_minor IS
    'Won revenue per currency in minor units (cents), as a JSON object '
    '{"EUR": 1250000, ...}; {} when nothing was won. Expand with '
    'jsonb_each_text().';
COMMENT ON COLUMN funnel.source_performance.won_rate IS
    'won / leads, 0..1: conversion from capture to won.';
