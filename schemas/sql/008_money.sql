-- 008_money.sql: money and feedback. The pipeline's open opportunities,
-- flows per calendar period, whether marketing's score threshold predicts
-- what sales does, why leads leave, SLAs both ways (open breaches now, and
-- how marketing answers a lead sales handed back), and costs with ROI and
-- CAC.
--
-- Conventions as in 002_views.sql: UTC; rates are fractions 0..1 rounded to
-- 4 places, NULL when there is nothing to divide by; hours rounded to 2
-- places; amounts in minor units; each view X is funnel.X_filtered(
-- captured_from, captured_to, only_channel) called with NULLs; in total rows
-- the dimension summed over is NULL.
--
-- Reference data (costs, exchange rates, the reporting currency) lives in
-- schema funnel_ref, beside the model: leadflow-replay rebuilds and promotes
-- schema funnel only, so funnel_ref survives both, and the functions below
-- name it explicitly, so they read it from whichever schema is funnel.

-- ---- funnel.leads: the opportunity ------------------------------------

ALTER TABLE funnel.leads
    ADD COLUMN opportunity_id           text,
    ADD COLUMN opportunity_amount_minor bigint,
    ADD COLUMN opportunity_currency     text;

-- Leads projected before this migration: the qualified event that opened
-- their latest sales_qualified visit is their latest applied one (every
-- applied qualified event opens such a visit).
UPDATE funnel.leads AS l
SET opportunity_id = e.payload ->> 'opportunity_id',
    opportunity_amount_minor = (e.payload ->> 'amount_minor')::bigint,
    opportunity_currency = e.payload ->> 'currency'
FROM (SELECT DISTINCT ON (h.lead_id) h.lead_id, h.entered_by
      FROM funnel.stage_history AS h
      WHERE h.stage = 'sales_qualified'
      ORDER BY h.lead_id, h.visit DESC) AS q
JOIN funnel.events AS e ON e.event_id = q.entered_by AND e.type = 'qualified'
WHERE l.lead_id = q.lead_id;

COMMENT ON COLUMN funnel.leads.opportunity_id IS
    'Opportunity id of the lead''s latest applied qualified event; NULL if '
    'never sales qualified.';
COMMENT ON COLUMN funnel.leads.opportunity_amount_minor IS
    'Opportunity amount in minor units of opportunity_currency, from the '
    'lead''s latest applied qualified event; NULL if never sales qualified.';
COMMENT ON COLUMN funnel.leads.opportunity_currency IS
    'ISO 4217 code of opportunity_amount_minor, from the lead''s latest '
    'applied qualified event; NULL if never sales qualified.';

-- ---- reference data ----------------------------------------------------

-- A database whose funnel schema was dropped and migrated again keeps its
-- reference data: funnel_ref and its tables are made only when missing.
CREATE SCHEMA IF NOT EXISTS funnel_ref;
COMMENT ON SCHEMA funnel_ref IS
    'leadflow reference data entered by marketing operations (campaign '
    'costs, exchange rates, the reporting currency); never rebuilt or '
    'promoted away.';

CREATE TABLE IF NOT EXISTS funnel_ref.campaign_costs (
    channel      text NOT NULL,
    campaign     text NOT NULL DEFAULT '',
    month        date NOT NULL,
    amount_minor bigint NOT NULL,
    currency     text NOT NULL,
    note         text,
    PRIMARY KEY (channel, campaign, month),
    CONSTRAINT campaign_costs_month_check
        CHECK (month = date_trunc('month', month::timestamp)::date),
    CONSTRAINT campaign_costs_amount_check CHECK (amount_minor >= 0),
    CONSTRAINT campaign_costs_currency_check CHECK (currency ~ '^[A-Z]{3}$')
);
COMMENT ON TABLE funnel_ref.campaign_costs IS
    'Marketing spend per channel, campaign and month, as entered by '
    'marketing operations.';
COMMENT ON COLUMN funnel_ref.campaign_costs.channel IS
    'Capture channel the money was spent on (as in funnel.leads.channel).';
COMMENT ON COLUMN funnel_ref.campaign_costs.campaign IS
    'Campaign (as in funnel.leads.campaign); '''' for a channel''s spend not '
    'tied to a campaign.';
COMMENT ON COLUMN funnel_ref.campaign_costs.month IS
    'The month spent in: its first day.';
COMMENT ON COLUMN funnel_ref.campaign_costs.amount_minor IS
    'Amount spent in minor units of currency, >= 0.';
COMMENT ON COLUMN funnel_ref.campaign_costs.currency IS
    'ISO 4217 code of amount_minor: three upper-case letters.';
COMMENT ON COLUMN funnel_ref.campaign_costs.note IS 'Free text.';

CREATE TABLE IF NOT EXISTS funnel_ref.fx_rates (
    currency text NOT NULL,
    month    date NOT NULL,
    rate     numeric NOT NULL,
    PRIMARY KEY (currency, month),
    CONSTRAINT fx_rates_month_check
        CHECK (month = date_trunc('month', month::timestamp)::date),
    CONSTRAINT fx_rates_rate_check CHECK (rate > 0),
    CONSTRAINT fx_rates_currency_check CHECK (currency ~ '^[A-Z]{3}$')
);
COMMENT ON TABLE funnel_ref.fx_rates IS
    'Exchange rates per month: units of the reporting currency per unit of '
    'currency, for amounts of that month.';
COMMENT ON COLUMN funnel_ref.fx_rates.currency IS
    'ISO 4217 code converted from: three upper-case letters.';
COMMENT ON COLUMN funnel_ref.fx_rates.month IS
    'The month the rate applies to: its first day.';
COMMENT ON COLUMN funnel_ref.fx_rates.rate IS
    'Units of the reporting currency per unit of currency, > 0.';

CREATE TABLE IF NOT EXISTS funnel_ref.settings (
    id                 boolean PRIMARY KEY DEFAULT true,
    reporting_currency text NOT NULL DEFAULT 'USD',
    CONSTRAINT settings_one_row_check CHECK (id),
    CONSTRAINT settings_currency_check
        CHECK (reporting_currency ~ '^[A-Z]{3}$')
);
INSERT INTO funnel_ref.settings DEFAULT VALUES ON CONFLICT DO NOTHING;
COMMENT ON TABLE funnel_ref.settings IS
    'One row of settings for the money views.';
COMMENT ON COLUMN funnel_ref.settings.id IS
    'Always true: keeps the table to one row.';
COMMENT ON COLUMN funnel_ref.settings.reporting_currency IS
    'ISO 4217 code every converted amount is in (default USD); it has rate '
    '1.';

-- Units of the reporting currency per unit of @currency in @month: 1 for
-- the reporting currency itself, NULL without a rate.
CREATE FUNCTION funnel.fx_rate(currency text, month date)
RETURNS numeric
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN $1 = s.reporting_currency THEN 1::numeric
                ELSE (SELECT r.rate FROM funnel_ref.fx_rates AS r
                      WHERE r.currency = $1
                        AND r.month
                            = date_trunc('month', $2::timestamp)::date) END
    FROM funnel_ref.settings AS s
$$;
COMMENT ON FUNCTION funnel.fx_rate(text, date) IS
    'Units of the reporting currency (funnel_ref.settings) per unit of '
    'currency for amounts of the month of month: 1 for the reporting '
    'currency, funnel_ref.fx_rates otherwise, NULL without a rate.';

-- ---- roles -------------------------------------------------------------

-- leadflow_marketing_ops writes the three funnel_ref tables and nothing
-- else; analysts read them (the money views read them as their caller).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                   WHERE rolname = 'leadflow_marketing_ops') THEN
        BEGIN
            CREATE ROLE leadflow_marketing_ops NOLOGIN NOSUPERUSER
                NOCREATEDB NOCREATEROLE NOREPLICATION;
            COMMENT ON ROLE leadflow_marketing_ops IS
                'leadflow: writes the reference data of schema funnel_ref '
                '(campaign costs, exchange rates, settings) and nothing else '
                '(grant to marketing operations'' login roles).';
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO leadflow_marketing_ops',
                   current_database());
END
$$;

REVOKE ALL ON SCHEMA funnel_ref FROM PUBLIC;
GRANT USAGE ON SCHEMA funnel_ref TO leadflow_marketing_ops, leadflow_analyst;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE
    ON funnel_ref.campaign_costs, funnel_ref.fx_rates
    TO leadflow_marketing_ops;
GRANT SELECT, UPDATE ON funnel_ref.settings TO leadflow_marketing_ops;
GRANT SELECT ON ALL TABLES IN SCHEMA funnel_ref TO leadflow_analyst;

-- ---- indexes the views need --------------------------------------------

-- score_outcomes looks up each lead's scored events in time order.
CREATE INDEX events_scored_idx ON funnel.events (lead_id, occurred_at,
                                                 event_id)
    WHERE type = 'scored';
-- open_sla_breaches reads only the open handoffs.
CREATE INDEX stage_history_open_idx ON funnel.stage_history (stage)
    WHERE exited_at IS NULL;

-- ---- pipeline ----------------------------------------------------------

CREATE FUNCTION funnel.pipeline_filtered(captured_from date DEFAULT NULL,
                                         captured_to date DEFAULT NULL,
                                         only_channel text DEFAULT NULL)
RETURNS TABLE (owner text, channel text, campaign text, currency text,
               open_opportunities bigint, open_amount_minor bigint,
               won bigint, won_amount_minor bigint)
LANGUAGE sql STABLE AS $$
    WITH x AS (
        SELECT l.owner, l.channel, l.campaign,
               l.opportunity_currency AS currency, 1 AS open,
               l.opportunity_amount_minor AS open_amount, 0 AS won,
               NULL::bigint AS won_amount
        FROM funnel.leads_in_scope($1, $2, $3) AS l
        WHERE l.stage = 'sales_qualified'
        UNION ALL
        SELECT l.owner, l.channel, l.campaign, l.currency, 0, NULL, 1,
               l.won_amount_minor
        FROM funnel.leads_in_scope($1, $2, $3) AS l
        WHERE l.stage = 'won'
    )
    SELECT x.owner, x.channel, x.campaign, x.currency,
           sum(x.open)::bigint, coalesce(sum(x.open_amount), 0)::bigint,
           sum(x.won)::bigint, coalesce(sum(x.won_amount), 0)::bigint
    FROM x
    GROUP BY GROUPING SETS ((x.owner, x.channel, x.campaign, x.currency),
                            (x.currency))
$$;
COMMENT ON FUNCTION funnel.pipeline_filtered(date, date, text) IS
    'funnel.pipeline for the leads of funnel.leads_in_scope(captured_from, '
    'captured_to, only_channel).';

CREATE VIEW funnel.pipeline AS
SELECT * FROM funnel.pipeline_filtered(NULL, NULL, NULL);

COMMENT ON VIEW funnel.pipeline IS
    'Open pipeline: leads now in sales_qualified with their opportunity '
    'amount, and beside them won leads with their won amount, per owner, '
    'channel, campaign and currency, with a total row per currency (owner, '
    'channel and campaign NULL).';
COMMENT ON COLUMN funnel.pipeline.owner IS
    'Sales owner of the leads; NULL in the total rows.';
COMMENT ON COLUMN funnel.pipeline.channel IS
    'Capture channel; NULL only in the total rows.';
COMMENT ON COLUMN funnel.pipeline.campaign IS
    'Capture campaign; NULL for leads captured without one, and in the '
    'total rows.';
COMMENT ON COLUMN funnel.pipeline.currency IS
    'ISO 4217 code of the amounts (the opportunity''s, or the won '
    'amount''s); amounts are never summed across currencies.';
COMMENT ON COLUMN funnel.pipeline.open_opportunities IS
    'Leads now in sales_qualified: open opportunities.';
COMMENT ON COLUMN funnel.pipeline.open_amount_minor IS
    'Sum of their opportunity amounts (of the latest qualified event), '
    'minor units.';
COMMENT ON COLUMN funnel.pipeline.won IS 'Leads won.';
COMMENT ON COLUMN funnel.pipeline.won_amount_minor IS
    'Sum of their won amounts, minor units.';

-- ---- flows -------------------------------------------------------------

-- Per period and stage: visits that entered, visits that left, and visits
-- open at the period's end. One pass counts entries and exits per period;
-- open_at_end is what entered minus what left up to the period's end, so
-- the counts are taken over every period from the first visit on and only
-- then cut to the periods asked for.
CREATE FUNCTION funnel.flows_in_scope(grain text, period_from date,
                                      period_to date, captured_from date,
                                      captured_to date, only_channel text)
RETURNS TABLE (period_start date, period_end date, stage text,
               stage_order integer, entered bigint, exited bigint,
               open_at_end bigint)
LANGUAGE sql STABLE AS $$
    WITH step AS (
        SELECT CASE $1 WHEN 'quarter' THEN interval '3 months'
                       ELSE ('1 ' || $1)::interval END AS i
    ), v AS (
        SELECT h.stage,
               date_trunc($1, h.entered_at AT TIME ZONE 'UTC')::date AS ein,
               date_trunc($1, h.exited_at AT TIME ZONE 'UTC')::date AS eout
        FROM funnel.leads_in_scope($4, $5, $6) AS l
        JOIN funnel.stage_history AS h ON h.lead_id = l.lead_id
    ), bounds AS (
        SELECT least(min(v.ein), date_trunc($1, $2::timestamp)::date) AS first,
               coalesce(date_trunc($1, $3::timestamp)::date,
                        greatest(max(v.ein), max(v.eout))) AS last
        FROM v
    ), periods AS (
        SELECT p::date AS period_start, (p + step.i)::date AS period_end
        FROM bounds, step,
             generate_series(bounds.first::timestamp, bounds.last::timestamp,
                             step.i) AS p
    ), ins AS (
        SELECT v.stage, v.ein AS period, count(*) AS n FROM v GROUP BY 1, 2
    ), outs AS (
        SELECT v.stage, v.eout AS period, count(*) AS n FROM v
        WHERE v.eout IS NOT NULL GROUP BY 1, 2
    ), counted AS (
        SELECT p.period_start, p.period_end, s.stage, s.stage_order,
               coalesce(i.n, 0) AS entered, coalesce(o.n, 0) AS exited,
               sum(coalesce(i.n, 0) - coalesce(o.n, 0)) OVER (
                   PARTITION BY s.stage ORDER BY p.period_start)
                   AS open_at_end
        FROM periods AS p
        CROSS JOIN funnel.stages AS s
        LEFT JOIN ins AS i ON i.stage = s.stage AND i.period = p.period_start
        LEFT JOIN outs AS o
            ON o.stage = s.stage AND o.period = p.period_start
    )
    SELECT c.period_start, c.period_end, c.stage, c.stage_order,
           c.entered, c.exited, c.open_at_end::bigint
    FROM counted AS c
    WHERE ($2 IS NULL
           OR c.period_start >= date_trunc($1, $2::timestamp)::date)
    ORDER BY c.period_start, c.stage_order
$$;
COMMENT ON FUNCTION funnel.flows_in_scope(text, date, date, date, date,
                                          text) IS
    'funnel.flows per grain (day, week, month, quarter) for the periods '
    'from the one holding period_from to the one holding period_to (NULL: '
    'from the first visit, to the last entry or exit), over the leads of '
    'funnel.leads_in_scope(captured_from, captured_to, only_channel).';

-- The grains flows_by accepts; anything else is an error, not an empty
-- result.
CREATE FUNCTION funnel.flows_grain(grain text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF grain IS NULL OR grain NOT IN ('day', 'week', 'month', 'quarter') THEN
        RAISE EXCEPTION 'grain must be day, week, month or quarter, not %',
            coalesce(grain, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN grain;
END
$$;
COMMENT ON FUNCTION funnel.flows_grain(text) IS
    'grain itself if it is day, week, month or quarter; an error otherwise.';

-- The analysts' entry point: any grain, any periods, one channel or all.
CREATE FUNCTION funnel.flows_by(grain text, period_from date DEFAULT NULL,
                                period_to date DEFAULT NULL,
                                only_channel text DEFAULT NULL)
RETURNS TABLE (period_start date, period_end date, stage text,
               stage_order integer, entered bigint, exited bigint,
               open_at_end bigint)
LANGUAGE sql STABLE AS $$
    SELECT * FROM funnel.flows_in_scope(funnel.flows_grain($1), $2, $3, NULL,
                                        NULL, $4)
$$;
COMMENT ON FUNCTION funnel.flows_by(text, date, date, text) IS
    'funnel.flows per grain: day, week (ISO, from Monday), month or '
    'quarter, for the periods from the one holding period_from to the one '
    'holding period_to (NULL: from the first visit, to the last entry or '
    'exit), in channel only_channel (NULL: all).';

CREATE FUNCTION funnel.flows_filtered(captured_from date DEFAULT NULL,
                                      captured_to date DEFAULT NULL,
                                      only_channel text DEFAULT NULL)
RETURNS TABLE (period_start date, period_end date, stage text,
               stage_order integer, entered bigint, exited bigint,
               open_at_end bigint)
LANGUAGE sql STABLE AS $$
    SELECT * FROM funnel.flows_in_scope('month', NULL, NULL, $1, $2, $3)
$$;
COMMENT ON FUNCTION funnel.flows_filtered(date, date, text) IS
    'funnel.flows for the leads of funnel.leads_in_scope(captured_from, '
    'captured_to, only_channel).';

CREATE VIEW funnel.flows AS
SELECT * FROM funnel.flows_filtered(NULL, NULL, NULL);

COMMENT ON VIEW funnel.flows IS
    'Flows per calendar month (UTC) and stage, over all data: visits that '
    'entered the stage in the month, visits that left it in the month, and '
    'visits open at the month''s end. funnel.flows_by(grain, period_from, '
    'period_to, only_channel) gives days, ISO weeks or quarters.';
COMMENT ON COLUMN funnel.flows.period_start IS
    'First day of the period (UTC; weeks start on Monday).';
COMMENT ON COLUMN funnel.flows.period_end IS
    'First day of the next period: the period is [period_start, '
    'period_end).';
COMMENT ON COLUMN funnel.flows.stage IS 'The stage.';
COMMENT ON COLUMN funnel.flows.stage_order IS
    'Sort key of the stage (funnel.stages).';
COMMENT ON COLUMN funnel.flows.entered IS
    'Visits that entered the stage in the period.';
COMMENT ON COLUMN funnel.flows.exited IS
    'Visits that left the stage in the period.';
COMMENT ON COLUMN funnel.flows.open_at_end IS
    'Visits that entered the stage before the period''s end and had not '
    'left it by then.';

-- ---- score_outcomes ----------------------------------------------------

-- The deciding score: the latest scored event, in (occurred_at, event_id)
-- order, at or before the lead's first handoff, or the latest one of a lead
-- never handed off. Scored events before the capture are not the lead's.
CREATE FUNCTION funnel.score_outcomes_filtered(
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
            WHERE e.lead_id = l.lead_id AND e.type = 'scored'
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
COMMENT ON FUNCTION funnel.score_outcomes_filtered(date, date, text) IS
    'funnel.score_outcomes for the leads of funnel.leads_in_scope('
    'captured_from, captured_to, only_channel).';

CREATE VIEW funnel.score_outcomes AS
SELECT * FROM funnel.score_outcomes_filtered(NULL, NULL, NULL);

COMMENT ON VIEW funnel.score_outcomes IS
    'Is the score threshold right? Each captured lead is placed by its '
    'deciding score: the latest scored event (in (occurred_at, event_id) '
    'order) at or before its first handoff, or its latest scored event if '
    'it was never handed off; leads never scored (or scored only after '
    'their first handoff) form the row with model NULL. Per model and '
    'score band: how many leads ever reached each stage '
    'and how sales answered the handoffs.';
COMMENT ON COLUMN funnel.score_outcomes.model IS
    'Scoring model of the deciding score; NULL for leads without one (never '
    'scored, or scored only after their first handoff).';
COMMENT ON COLUMN funnel.score_outcomes.score_band IS
    'floor(score / 10) * 10 of the deciding score (70 holds 70 to 79); NULL '
    'for leads without one.';
COMMENT ON COLUMN funnel.score_outcomes.threshold IS
    'The threshold of the row''s deciding scored events (the most common '
    'one if they differ); NULL for leads without one.';
COMMENT ON COLUMN funnel.score_outcomes.leads IS
    'Leads whose deciding score falls in the band.';
COMMENT ON COLUMN funnel.score_outcomes.below_threshold IS
    'Of those, leads whose deciding score was below that event''s '
    'threshold.';
COMMENT ON COLUMN funnel.score_outcomes.marketing_qualified IS
    'Of those, leads that ever reached marketing_qualified.';
COMMENT ON COLUMN funnel.score_outcomes.handed_off IS
    'Of those, leads that were ever handed off.';
COMMENT ON COLUMN funnel.score_outcomes.sales_accepted IS
    'Of those, leads that ever reached sales_accepted.';
COMMENT ON COLUMN funnel.score_outcomes.sales_qualified IS
    'Of those, leads that ever reached sales_qualified.';
COMMENT ON COLUMN funnel.score_outcomes.won IS
    'Of those, leads won.';
COMMENT ON COLUMN funnel.score_outcomes.nurture IS
    'Of those, leads ever recycled to nurture.';
COMMENT ON COLUMN funnel.score_outcomes.disqualified IS
    'Of those, leads disqualified.';
COMMENT ON COLUMN funnel.score_outcomes.acceptance_rate IS
    'sales_accepted / handed_off, 0..1: a band under the threshold with a '
    'high rate says the threshold is too strict.';
COMMENT ON COLUMN funnel.score_outcomes.won_rate IS
    'won / handed_off, 0..1.';

-- ---- close_reasons -----------------------------------------------------

-- A close is a visit to lost or disqualified; its reason is that of the
-- event that opened the visit. Its owner is whoever held the lead then, as
-- in recycle_reasons.
CREATE FUNCTION funnel.close_reasons_filtered(
    captured_from date DEFAULT NULL, captured_to date DEFAULT NULL,
    only_channel text DEFAULT NULL)
RETURNS TABLE (kind text, breakdown text, reason text, owner text,
               channel text, closes bigint, share numeric)
LANGUAGE sql STABLE AS $$
    WITH r AS (
        SELECT h.stage AS kind,
               lower(btrim(e.payload ->> 'reason')) AS reason, l.channel,
               o.owner
        FROM funnel.leads_in_scope($1, $2, $3) AS l
        JOIN funnel.stage_history AS h
            ON h.lead_id = l.lead_id AND h.stage IN ('lost', 'disqualified')
        LEFT JOIN funnel.events AS e ON e.event_id = h.entered_by
        LEFT JOIN LATERAL (
            SELECT oe.payload ->> 'owner' AS owner
            FROM funnel.stage_history AS p
            JOIN funnel.events AS oe ON oe.event_id = p.entered_by
            WHERE p.lead_id = h.lead_id AND p.visit < h.visit
              AND p.stage IN ('handed_off', 'sales_accepted')
            ORDER BY p.visit DESC
            LIMIT 1) AS o ON true
    ), g AS (
        SELECT r.kind,
               CASE grouping(r.owner, r.channel)
                   WHEN 3 THEN 'reason'
                   WHEN 1 THEN 'reason, owner'
                   ELSE 'reason, channel' END AS breakdown,
               r.reason, r.owner, r.channel, count(*) AS closes
        FROM r
        GROUP BY GROUPING SETS ((r.kind, r.reason),
                                (r.kind, r.reason, r.owner),
                                (r.kind, r.reason, r.channel))
    )
    SELECT g.kind, g.breakdown, g.reason, g.owner, g.channel, g.closes,
           round(g.closes / sum(g.closes) OVER (
                     PARTITION BY g.kind, g.breakdown), 4)
    FROM g
$$;
COMMENT ON FUNCTION funnel.close_reasons_filtered(date, date, text) IS
    'funnel.close_reasons for the leads of funnel.leads_in_scope('
    'captured_from, captured_to, only_channel).';

CREATE VIEW funnel.close_reasons AS
SELECT * FROM funnel.close_reasons_filtered(NULL, NULL, NULL);

COMMENT ON VIEW funnel.close_reasons IS
    'Why leads leave: lost and disqualified reasons, normalised with '
    'lower(btrim(reason)), counted overall (breakdown ''reason''), by the '
    'sales owner holding the lead then (''reason, owner'') and by capture '
    'channel (''reason, channel'').';
COMMENT ON COLUMN funnel.close_reasons.kind IS 'lost or disqualified.';
COMMENT ON COLUMN funnel.close_reasons.breakdown IS
    'Which columns this row is broken down by: ''reason'', ''reason, '
    'owner'' or ''reason, channel''. Filter on it before summing.';
COMMENT ON COLUMN funnel.close_reasons.reason IS
    'lower(btrim(reason)) of the lost or disqualified event; NULL when it '
    'gave none.';
COMMENT ON COLUMN funnel.close_reasons.owner IS
    'Sales owner holding the lead then (named by its latest handed_off or '
    'accepted event before); NULL unless broken down by it, or when the '
    'lead never reached sales.';
COMMENT ON COLUMN funnel.close_reasons.channel IS
    'Capture channel of the lead; NULL unless broken down by it.';
COMMENT ON COLUMN funnel.close_reasons.closes IS
    'Visits to the kind''s stage (lost or disqualified) counted.';
COMMENT ON COLUMN funnel.close_reasons.share IS
    'closes / all closes of the kind in the breakdown, 0..1.';

-- ---- open_sla_breaches -------------------------------------------------

CREATE FUNCTION funnel.open_sla_breaches_filtered(
    captured_from date DEFAULT NULL, captured_to date DEFAULT NULL,
    only_channel text DEFAULT NULL)
RETURNS TABLE (lead_id text, owner text, channel text, campaign text,
               handed_off_at timestamptz, sla_hours integer,
               due_at timestamptz, hours_overdue numeric)
LANGUAGE sql STABLE AS $$
    WITH o AS (
        SELECT h.lead_id, e.payload ->> 'owner' AS owner, l.channel,
               l.campaign, h.entered_at AS handed_off_at,
               (e.payload ->> 'sla_hours')::integer AS sla_hours
        FROM funnel.stage_history AS h
        JOIN funnel.leads_in_scope($1, $2, $3) AS l ON l.lead_id = h.lead_id
        LEFT JOIN funnel.events AS e ON e.event_id = h.entered_by
        WHERE h.stage = 'handed_off' AND h.exited_at IS NULL
    )
    SELECT o.lead_id, o.owner, o.channel, o.campaign, o.handed_off_at,
           o.sla_hours, o.handed_off_at + make_interval(hours => o.sla_hours),
           round(extract(epoch FROM now() - o.handed_off_at
                         - make_interval(hours => o.sla_hours)) / 3600, 2)
    FROM o
    WHERE o.handed_off_at + make_interval(hours => o.sla_hours) < now()
    ORDER BY now() - o.handed_off_at - make_interval(hours => o.sla_hours)
                 DESC, o.lead_id
$$;
COMMENT ON FUNCTION funnel.open_sla_breaches_filtered(date, date, text) IS
    'funnel.open_sla_breaches for the leads of funnel.leads_in_scope('
    'captured_from, captured_to, only_channel).';

CREATE VIEW funnel.open_sla_breaches AS
SELECT * FROM funnel.open_sla_breaches_filtered(NULL, NULL, NULL);

COMMENT ON VIEW funnel.open_sla_breaches IS
    'Handoffs breaching their SLA now: the lead is still in that handed_off '
    'visit and its due time (handed_off_at + sla_hours) has passed, as of '
    'now() (a handoff due exactly now is not yet breached). Most overdue '
    'first.';
COMMENT ON COLUMN funnel.open_sla_breaches.lead_id IS 'The lead.';
COMMENT ON COLUMN funnel.open_sla_breaches.owner IS
    'Sales owner named by the handed_off event.';
COMMENT ON COLUMN funnel.open_sla_breaches.channel IS
    'Capture channel of the lead.';
COMMENT ON COLUMN funnel.open_sla_breaches.campaign IS
    'Capture campaign of the lead (may be NULL).';
COMMENT ON COLUMN funnel.open_sla_breaches.handed_off_at IS
    'When it was handed off.';
COMMENT ON COLUMN funnel.open_sla_breaches.sla_hours IS
    'Hours sales had to answer, from the handed_off event.';
COMMENT ON COLUMN funnel.open_sla_breaches.due_at IS
    'handed_off_at + sla_hours.';
COMMENT ON COLUMN funnel.open_sla_breaches.hours_overdue IS
    'Hours from due_at to now().';

-- ---- recycle_response --------------------------------------------------

-- A recycle is a visit to nurture (entered by a recycled event). It is
-- answered when the lead leaves nurture for marketing_qualified or
-- handed_off (the next visit); it was later won if a won visit follows.
CREATE FUNCTION funnel.recycle_response_filtered(
    captured_from date DEFAULT NULL, captured_to date DEFAULT NULL,
    only_channel text DEFAULT NULL)
RETURNS TABLE (reason text, recycles bigint, requalified bigint,
               requalified_30d bigint, requalified_90d bigint,
               requalified_30d_rate numeric, requalified_90d_rate numeric,
               median_hours_to_requalify numeric, won_later bigint)
LANGUAGE sql STABLE AS $$
    WITH r AS (
        SELECT e.payload ->> 'reason' AS reason,
               CASE WHEN n.stage IN ('marketing_qualified', 'handed_off')
                    THEN extract(epoch FROM n.entered_at - h.entered_at)
                         / 3600 END AS hours,
               EXISTS (SELECT 1 FROM funnel.stage_history AS w
                       WHERE w.lead_id = h.lead_id AND w.visit > h.visit
                         AND w.stage = 'won') AS won_later
        FROM funnel.leads_in_scope($1, $2, $3) AS l
        JOIN funnel.stage_history AS h
            ON h.lead_id = l.lead_id AND h.stage = 'nurture'
        JOIN funnel.events AS e
            ON e.event_id = h.entered_by AND e.type = 'recycled'
        LEFT JOIN funnel.stage_history AS n
            ON n.lead_id = h.lead_id AND n.visit = h.visit + 1
    ), c AS (
        SELECT r.reason, count(*) AS recycles,
               count(r.hours) AS requalified,
               count(*) FILTER (WHERE r.hours <= 30 * 24) AS r30,
               count(*) FILTER (WHERE r.hours <= 90 * 24) AS r90,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY r.hours::float8)
                   AS median_hours,
               count(*) FILTER (WHERE r.won_later) AS won_later
        FROM r
        GROUP BY GROUPING SETS ((r.reason), ())
        HAVING count(*) > 0
    )
    SELECT c.reason, c.recycles, c.requalified, c.r30, c.r90,
           round(c.r30::numeric / c.recycles, 4),
           round(c.r90::numeric / c.recycles, 4),
           round(c.median_hours::numeric, 2), c.won_later
    FROM c
$$;
COMMENT ON FUNCTION funnel.recycle_response_filtered(date, date, text) IS
    'funnel.recycle_response for the leads of funnel.leads_in_scope('
    'captured_from, captured_to, only_channel).';

CREATE VIEW funnel.recycle_response AS
SELECT * FROM funnel.recycle_response_filtered(NULL, NULL, NULL);

COMMENT ON VIEW funnel.recycle_response IS
    'The baton handed back: per recycle reason (and over all reasons, '
    'reason NULL), the recycles (visits to nurture entered by recycled), '
    'how many left nurture for marketing_qualified or handed_off again, '
    'within 30 and 90 days, the median hours to that, and how many were '
    'later won. Marketing''s side of the SLA, measured like sales''.';
COMMENT ON COLUMN funnel.recycle_response.reason IS
    'Recycle reason; NULL in the row over all reasons.';
COMMENT ON COLUMN funnel.recycle_response.recycles IS
    'Visits to nurture entered by a recycled event.';
COMMENT ON COLUMN funnel.recycle_response.requalified IS
    'Of those, recycles the lead left for marketing_qualified or handed_off '
    '(at any time so far).';
COMMENT ON COLUMN funnel.recycle_response.requalified_30d IS
    'Of those, recycles left for marketing_qualified or handed_off within '
    '30 days (720 hours) of entering nurture.';
COMMENT ON COLUMN funnel.recycle_response.requalified_90d IS
    'Of those, recycles left for marketing_qualified or handed_off within '
    '90 days (2160 hours) of entering nurture.';
COMMENT ON COLUMN funnel.recycle_response.requalified_30d_rate IS
    'requalified_30d / recycles, 0..1.';
COMMENT ON COLUMN funnel.recycle_response.requalified_90d_rate IS
    'requalified_90d / recycles, 0..1.';
COMMENT ON COLUMN funnel.recycle_response.median_hours_to_requalify IS
    'Median hours from entering nurture to leaving it for '
    'marketing_qualified or handed_off, over the requalified recycles.';
COMMENT ON COLUMN funnel.recycle_response.won_later IS
    'Recycles whose lead was won after them.';

-- ---- roi ---------------------------------------------------------------

-- First-touch attribution: a lead counts for its capture channel and
-- campaign ('' for none) and its capture month; a cost for its channel,
-- campaign and month. Amounts are converted into the reporting currency
-- with funnel.fx_rate: costs at their month, won revenue at the month of
-- won_at; an amount without a rate is left out of the sums and counted in
-- missing_rates. Costs are filtered like leads: by channel, and to the
-- months that overlap the capture dates.
CREATE FUNCTION funnel.roi_filtered(captured_from date DEFAULT NULL,
                                    captured_to date DEFAULT NULL,
                                    only_channel text DEFAULT NULL)
RETURNS TABLE (grain text, channel text, campaign text, month date,
               currency text, cost_minor bigint, leads bigint, mqls bigint,
               sqls bigint, won bigint, won_revenue_minor bigint,
               cost_per_lead numeric, cost_per_mql numeric,
               cost_per_sql numeric, cac numeric, roi numeric,
               missing_rates bigint)
LANGUAGE sql STABLE AS $$
    WITH facts AS (
        SELECT l.channel, coalesce(l.campaign, '') AS campaign,
               date_trunc('month', l.captured_at AT TIME ZONE 'UTC')::date
                   AS month,
               NULL::numeric AS cost, 1 AS lead,
               (l.first_marketing_qualified_at IS NOT NULL)::int AS mql,
               (l.first_sales_qualified_at IS NOT NULL)::int AS sql,
               (l.won_at IS NOT NULL)::int AS won,
               l.won_amount_minor * funnel.fx_rate(
                   l.currency, (l.won_at AT TIME ZONE 'UTC')::date)
                   AS revenue,
               (l.won_at IS NOT NULL AND l.won_amount_minor IS NOT NULL
                AND funnel.fx_rate(l.currency,
                                   (l.won_at AT TIME ZONE 'UTC')::date)
                    IS NULL)::int AS missing
        FROM funnel.leads_in_scope($1, $2, $3) AS l
        UNION ALL
        SELECT c.channel, c.campaign, c.month,
               c.amount_minor * funnel.fx_rate(c.currency, c.month), 0, 0, 0,
               0, NULL,
               (funnel.fx_rate(c.currency, c.month) IS NULL)::int
        FROM funnel_ref.campaign_costs AS c
        WHERE ($1 IS NULL
               OR c.month >= date_trunc('month', $1::timestamp)::date)
          AND ($2 IS NULL OR c.month <= $2)
          AND ($3 IS NULL OR c.channel = $3)
    ), g AS (
        SELECT CASE grouping(f.channel, f.campaign, f.month)
                   WHEN 0 THEN 'month' WHEN 1 THEN 'campaign'
                   WHEN 3 THEN 'channel' ELSE 'total' END AS grain,
               f.channel, f.campaign, f.month,
               round(sum(f.cost))::bigint AS cost,
               sum(f.lead)::bigint AS leads,
               sum(f.mql)::bigint AS mqls, sum(f.sql)::bigint AS sqls,
               sum(f.won)::bigint AS won,
               coalesce(round(sum(f.revenue)), 0)::bigint AS revenue,
               sum(f.missing)::bigint AS missing
        FROM facts AS f
        GROUP BY GROUPING SETS ((f.channel, f.campaign, f.month),
                                (f.channel, f.campaign), (f.channel), ())
        HAVING count(*) > 0
    )
    SELECT g.grain, g.channel, g.campaign, g.month, s.reporting_currency,
           g.cost, g.leads, g.mqls, g.sqls, g.won, g.revenue,
           round(g.cost::numeric / nullif(g.leads, 0)),
           round(g.cost::numeric / nullif(g.mqls, 0)),
           round(g.cost::numeric / nullif(g.sqls, 0)),
           round(g.cost::numeric / nullif(g.won, 0)),
           round((g.revenue - g.cost)::numeric / nullif(g.cost, 0), 4),
           g.missing
    FROM g CROSS JOIN funnel_ref.settings AS s
$$;
COMMENT ON FUNCTION funnel.roi_filtered(date, date, text) IS
    'funnel.roi for the leads of funnel.leads_in_scope(captured_from, '
    'captured_to, only_channel) and the costs of that channel in the months '
    'from captured_from''s to captured_to''s.';

CREATE VIEW funnel.roi AS
SELECT * FROM funnel.roi_filtered(NULL, NULL, NULL);

COMMENT ON VIEW funnel.roi IS
    'Cost, leads and won revenue with first-touch attribution (the lead''s '
    'capture channel and campaign, '''' for none), in the reporting '
    'currency: per grain ''month'' (channel, campaign, month: leads captured '
    'that month, costs of that month), ''campaign'', ''channel'' and '
    '''total''. An amount of currency C in month M is multiplied by the rate '
    'of (C, M) (funnel_ref.fx_rates; the reporting currency has rate 1); '
    'without a rate it is left out and counted in missing_rates.';
COMMENT ON COLUMN funnel.roi.grain IS
    'month, campaign, channel or total: the columns summed over are NULL.';
COMMENT ON COLUMN funnel.roi.channel IS
    'Capture channel (of the cost); NULL in the total row.';
COMMENT ON COLUMN funnel.roi.campaign IS
    'Capture campaign, '''' for leads without one and a channel''s spend '
    'not tied to a campaign; NULL in channel and total rows.';
COMMENT ON COLUMN funnel.roi.month IS
    'First day of the UTC month (capture month of the leads, month of the '
    'costs); NULL unless grain is month.';
COMMENT ON COLUMN funnel.roi.currency IS
    'The reporting currency (funnel_ref.settings) of cost_minor and '
    'won_revenue_minor.';
COMMENT ON COLUMN funnel.roi.cost_minor IS
    'Costs converted to the reporting currency, minor units; NULL when the '
    'row has no cost with a rate.';
COMMENT ON COLUMN funnel.roi.leads IS 'Leads captured.';
COMMENT ON COLUMN funnel.roi.mqls IS
    'Of those, leads that ever reached marketing_qualified.';
COMMENT ON COLUMN funnel.roi.sqls IS
    'Of those, leads that ever reached sales_qualified.';
COMMENT ON COLUMN funnel.roi.won IS 'Of those, leads won.';
COMMENT ON COLUMN funnel.roi.won_revenue_minor IS
    'Their won amounts converted to the reporting currency at the month of '
    'won_at, minor units; 0 when nothing was won.';
COMMENT ON COLUMN funnel.roi.cost_per_lead IS
    'cost_minor / leads, minor units.';
COMMENT ON COLUMN funnel.roi.cost_per_mql IS
    'cost_minor / mqls, minor units.';
COMMENT ON COLUMN funnel.roi.cost_per_sql IS
    'cost_minor / sqls, minor units.';
COMMENT ON COLUMN funnel.roi.cac IS
    'Customer acquisition cost: cost_minor / won, minor units.';
COMMENT ON COLUMN funnel.roi.roi IS
    '(won_revenue_minor - cost_minor) / cost_minor: 0.5 is a 50 % return.';
COMMENT ON COLUMN funnel.roi.missing_rates IS
    'Amounts of the row (costs and won amounts) left out for want of a '
    'rate in funnel_ref.fx_rates.';

-- The analysts' EXECUTE on the functions above comes from the default
-- privileges of 003_roles.sql (they are in funnel); the projector needs
-- nothing of funnel_ref.

-- ---- accounts: revenue in the reporting currency -------------------------

-- funnel.accounts (006_contract_v2.sql) gains three columns at its end, so
-- it is made again: its earlier columns, their meaning and comments are
-- those of 006.
DROP VIEW funnel.accounts;
DROP FUNCTION funnel.accounts_filtered(date, date, text);

CREATE FUNCTION funnel.accounts_filtered(captured_from date DEFAULT NULL,
                                         captured_to date DEFAULT NULL,
                                         only_channel text DEFAULT NULL)
RETURNS TABLE (account_id text, leads bigint, marketing_qualified bigint,
               handed_off bigint, sales_accepted bigint,
               sales_qualified bigint, won bigint, won_amount_minor jsonb,
               first_captured_at timestamptz, last_event_at timestamptz,
               won_revenue_reporting_minor bigint,
               avg_won_revenue_per_account_minor numeric,
               missing_rates bigint)
LANGUAGE sql STABLE AS $$
    WITH scoped AS (
        SELECT s.*, s.won_amount_minor * funnel.fx_rate(
                   s.currency, (s.won_at AT TIME ZONE 'UTC')::date)
                   AS converted
        FROM funnel.leads_in_scope($1, $2, $3) AS s
    ), counted AS (
        SELECT s.account_id, count(*) AS leads,
               count(s.first_marketing_qualified_at) AS marketing_qualified,
               count(s.first_handed_off_at) AS handed_off,
               count(s.first_sales_accepted_at) AS sales_accepted,
               count(s.first_sales_qualified_at) AS sales_qualified,
               count(s.won_at) AS won,
               min(s.captured_at) AS first_captured_at,
               max(s.last_event_at) AS last_event_at,
               coalesce(round(sum(s.converted) FILTER (
                   WHERE s.won_at IS NOT NULL)), 0)::bigint AS reporting,
               count(*) FILTER (WHERE s.won_at IS NOT NULL
                                  AND s.won_amount_minor IS NOT NULL
                                  AND s.converted IS NULL) AS missing
        FROM scoped AS s
        GROUP BY s.account_id
    ), per_currency AS (
        SELECT s.account_id, s.currency, sum(s.won_amount_minor) AS amount
        FROM scoped AS s
        WHERE s.won_at IS NOT NULL AND s.currency IS NOT NULL
        GROUP BY s.account_id, s.currency
    ), revenue AS (
        SELECT p.account_id, jsonb_object_agg(p.currency, p.amount) AS amounts
        FROM per_currency AS p
        GROUP BY p.account_id
    )
    SELECT c.account_id, c.leads, c.marketing_qualified, c.handed_off,
           c.sales_accepted, c.sales_qualified, c.won,
           coalesce(r.amounts, '{}'::jsonb), c.first_captured_at,
           c.last_event_at, c.reporting,
           round(avg(c.reporting) FILTER (
                     WHERE c.account_id IS NOT NULL AND c.won > 0) OVER ()),
           c.missing
    FROM counted AS c
    LEFT JOIN revenue AS r
        ON r.account_id IS NOT DISTINCT FROM c.account_id
$$;
COMMENT ON FUNCTION funnel.accounts_filtered(date, date, text) IS
    'funnel.accounts for the leads of funnel.leads_in_scope(captured_from, '
    'captured_to, only_channel).';

CREATE VIEW funnel.accounts AS
SELECT * FROM funnel.accounts_filtered(NULL, NULL, NULL);

COMMENT ON VIEW funnel.accounts IS
    'Per account (funnel.leads.account_id): leads, how many ever reached '
    'each milestone of the happy path, won revenue per currency, first '
    'capture and latest event. One row per account, so its counts can be '
    'summed; the row with account_id NULL holds the leads no event gave an '
    'account.';
COMMENT ON COLUMN funnel.accounts.account_id IS
    'The account; NULL for the leads without one.';
COMMENT ON COLUMN funnel.accounts.leads IS 'Leads captured.';
COMMENT ON COLUMN funnel.accounts.marketing_qualified IS
    'Leads that ever became marketing qualified (MQLs).';
COMMENT ON COLUMN funnel.accounts.handed_off IS
    'Leads ever handed off to sales.';
COMMENT ON COLUMN funnel.accounts.sales_accepted IS
    'Leads ever accepted by sales.';
COMMENT ON COLUMN funnel.accounts.sales_qualified IS
    'Leads ever sales qualified (SQLs).';
COMMENT ON COLUMN funnel.accounts.won IS 'Leads won.';
COMMENT ON COLUMN funnel.accounts.won_amount_minor IS
    'Won revenue per currency in minor units (cents), as a JSON object '
    '{"EUR": 1250000, ...}; {} when nothing was won. An object rather than '
    'a row per currency keeps one row per account, so a BI tool that sums '
    'leads or won never counts an account twice; expand it with '
    'jsonb_each_text(), as for funnel.source_performance.';
COMMENT ON COLUMN funnel.accounts.first_captured_at IS
    'When the account''s first lead was captured.';
COMMENT ON COLUMN funnel.accounts.last_event_at IS
    'occurred_at of the latest event of any of the account''s leads.';
COMMENT ON COLUMN funnel.accounts.won_revenue_reporting_minor IS
    'Revenue of the account: its won amounts converted to the reporting '
    'currency at the month of won_at, minor units; 0 when nothing was won. '
    'Amounts without a rate are left out and counted in missing_rates.';
COMMENT ON COLUMN funnel.accounts.avg_won_revenue_per_account_minor IS
    'Average won revenue per account: the mean of '
    'won_revenue_reporting_minor over the accounts (account_id set) that '
    'won at least one lead, in the reporting currency, minor units; the '
    'same in every row.';
COMMENT ON COLUMN funnel.accounts.missing_rates IS
    'Won amounts of the account left out of won_revenue_reporting_minor '
    'for want of a rate in funnel_ref.fx_rates.';
