-- 021_money_numeric_sums.sql: the money sums of funnel.pipeline,
-- funnel.roi and funnel.accounts are numeric, not bigint. The contract
-- takes any amount up to 2^63 - 1 minor units; two such amounts in one
-- currency, or one converted at a rate above 1, overflowed bigint, and the
-- view failed ("bigint out of range") for every row, and leadflow-report
-- with it. The values are the same integers (numeric with no fraction).
-- Changing a column's type takes a new function and a new view: their
-- comments, owners and privileges are kept as they were.

CREATE TEMP TABLE lf_021_kept ON COMMIT DROP AS
SELECT 'VIEW' AS kind, c.relname::text AS name, a.attname::text AS col,
       d.description
FROM pg_description AS d
JOIN pg_class AS c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass
LEFT JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum = d.objsubid
WHERE c.relnamespace = 'funnel'::regnamespace
  AND c.relname IN ('pipeline', 'roi', 'accounts')
UNION ALL
SELECT 'FUNCTION', p.proname::text, NULL, d.description
FROM pg_description AS d
JOIN pg_proc AS p ON p.oid = d.objoid AND d.classoid = 'pg_proc'::regclass
WHERE p.pronamespace = 'funnel'::regnamespace
  AND p.proname IN ('pipeline_filtered', 'roi_filtered', 'accounts_filtered');

CREATE TEMP TABLE lf_021_acl ON COMMIT DROP AS
SELECT 'TABLE' AS kind, c.relname::text AS name, c.relowner AS owner,
       c.relacl AS acl
FROM pg_class AS c
WHERE c.relnamespace = 'funnel'::regnamespace
  AND c.relname IN ('pipeline', 'roi', 'accounts')
UNION ALL
SELECT 'FUNCTION', p.proname::text, p.proowner, p.proacl
FROM pg_proc AS p
WHERE p.pronamespace = 'funnel'::regnamespace
  AND p.proname IN ('pipeline_filtered', 'roi_filtered', 'accounts_filtered');

-- (A view of the analysts' over one of these stops the upgrade here,
-- named by the server: drop it, upgrade, make it again.)
DROP VIEW funnel.pipeline;
DROP VIEW funnel.roi;
DROP VIEW funnel.accounts;
DROP FUNCTION funnel.pipeline_filtered(date, date, text);
DROP FUNCTION funnel.roi_filtered(date, date, text);
DROP FUNCTION funnel.accounts_filtered(date, date, text);

CREATE FUNCTION funnel.pipeline_filtered(captured_from date DEFAULT NULL,
                                         captured_to date DEFAULT NULL,
                                         only_channel text DEFAULT NULL)
RETURNS TABLE (owner text, channel text, campaign text, currency text,
               open_opportunities bigint, open_amount_minor numeric,
               won bigint, won_amount_minor numeric)
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
           sum(x.open)::bigint, coalesce(sum(x.open_amount), 0),
           sum(x.won)::bigint, coalesce(sum(x.won_amount), 0)
    FROM x
    GROUP BY GROUPING SETS ((x.owner, x.channel, x.campaign, x.currency),
                            (x.currency))
$$;

CREATE FUNCTION funnel.roi_filtered(
    captured_from date DEFAULT NULL, captured_to date DEFAULT NULL,
    only_channel text DEFAULT NULL)
RETURNS TABLE (grain text, channel text, campaign text, month date,
               currency text, cost_minor numeric, leads bigint, mqls bigint,
               sqls bigint, won bigint, won_revenue_minor numeric,
               cost_per_lead numeric, cost_per_mql numeric,
               cost_per_sql numeric, cac numeric, roi numeric,
               missing_rates bigint)
LANGUAGE sql STABLE AS $$
    WITH leads AS (
        SELECT l.*, funnel.fx_rate(l.currency,
                                   (l.won_at AT TIME ZONE 'UTC')::date)
                        AS rate
        FROM funnel.leads_in_scope($1, $2, $3) AS l
    ), facts AS (
        SELECT l.channel, coalesce(l.campaign, '') AS campaign,
               date_trunc('month', l.captured_at AT TIME ZONE 'UTC')::date
                   AS month,
               NULL::numeric AS cost, 1 AS lead,
               (l.first_marketing_qualified_at IS NOT NULL)::int AS mql,
               (l.first_sales_qualified_at IS NOT NULL)::int AS sql,
               (l.won_at IS NOT NULL)::int AS won,
               CASE WHEN l.won_at IS NOT NULL
                    THEN round(l.won_amount_minor * l.rate) END AS revenue,
               (l.won_at IS NOT NULL AND l.won_amount_minor IS NOT NULL
                AND l.rate IS NULL)::int AS missing
        FROM leads AS l
        UNION ALL
        SELECT c.channel, c.campaign, c.month,
               round(c.amount_minor * funnel.fx_rate(c.currency, c.month)),
               0, 0, 0, 0, NULL,
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
               sum(f.cost) AS cost,
               sum(f.lead)::bigint AS leads,
               sum(f.mql)::bigint AS mqls, sum(f.sql)::bigint AS sqls,
               sum(f.won)::bigint AS won,
               CASE WHEN count(f.revenue) = 0
                         AND sum(f.missing) FILTER (WHERE f.lead = 1) > 0
                    THEN NULL
                    ELSE coalesce(sum(f.revenue), 0) END AS revenue,
               sum(f.missing)::bigint AS missing
        FROM facts AS f
        GROUP BY GROUPING SETS ((f.channel, f.campaign, f.month),
                                (f.channel, f.campaign), (f.channel), ())
        HAVING count(*) > 0
    )
    SELECT g.grain, g.channel, g.campaign, g.month, s.reporting_currency,
           g.cost, g.leads, g.mqls, g.sqls, g.won, g.revenue,
           round(g.cost / nullif(g.leads, 0)),
           round(g.cost / nullif(g.mqls, 0)),
           round(g.cost / nullif(g.sqls, 0)),
           round(g.cost / nullif(g.won, 0)),
           round((g.revenue - g.cost) / nullif(g.cost, 0), 4),
           g.missing
    FROM g CROSS JOIN funnel_ref.settings AS s
$$;

CREATE FUNCTION funnel.accounts_filtered(
    captured_from date DEFAULT NULL, captured_to date DEFAULT NULL,
    only_channel text DEFAULT NULL)
RETURNS TABLE (account_id text, leads bigint, marketing_qualified bigint,
               handed_off bigint, sales_accepted bigint,
               sales_qualified bigint, won bigint, won_amount_minor jsonb,
               first_captured_at timestamptz, last_event_at timestamptz,
               won_revenue_reporting_minor numeric,
               avg_won_revenue_per_account_minor numeric,
               missing_rates bigint)
LANGUAGE sql STABLE AS $$
    WITH scoped AS (
        SELECT s.*, round(s.won_amount_minor * funnel.fx_rate(
                   s.currency, (s.won_at AT TIME ZONE 'UTC')::date))
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
               sum(s.converted) FILTER (WHERE s.won_at IS NOT NULL)
                   AS converted,
               count(*) FILTER (WHERE s.won_at IS NOT NULL
                                  AND s.won_amount_minor IS NOT NULL
                                  AND s.converted IS NULL) AS missing
        FROM scoped AS s
        GROUP BY s.account_id
    ), reported AS (
        SELECT c.*,
               CASE WHEN c.converted IS NULL AND c.missing > 0 THEN NULL
                    ELSE coalesce(c.converted, 0) END AS reporting
        FROM counted AS c
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
    FROM reported AS c
    LEFT JOIN revenue AS r
        ON r.account_id IS NOT DISTINCT FROM c.account_id
$$;

CREATE VIEW funnel.pipeline AS
SELECT * FROM funnel.pipeline_filtered(NULL, NULL, NULL);
CREATE VIEW funnel.roi AS
SELECT * FROM funnel.roi_filtered(NULL, NULL, NULL);
CREATE VIEW funnel.accounts AS
SELECT * FROM funnel.accounts_filtered(NULL, NULL, NULL);

-- The comments, owners and privileges they had.
DO $$
DECLARE
    k record;
    obj text;
    g record;
BEGIN
    FOR k IN SELECT * FROM lf_021_kept LOOP
        IF k.kind = 'FUNCTION' THEN
            EXECUTE format('COMMENT ON FUNCTION funnel.%I(date, date, text) '
                           'IS %L', k.name, k.description);
        ELSIF k.col IS NULL THEN
            EXECUTE format('COMMENT ON VIEW funnel.%I IS %L', k.name,
                           k.description);
        ELSE
            EXECUTE format('COMMENT ON COLUMN funnel.%I.%I IS %L', k.name,
                           k.col, k.description);
        END IF;
    END LOOP;
    FOR k IN SELECT * FROM lf_021_acl LOOP
        obj := CASE k.kind WHEN 'FUNCTION'
                   THEN format('FUNCTION funnel.%I(date, date, text)', k.name)
                   ELSE format('TABLE funnel.%I', k.name) END;
        IF k.owner <> (SELECT oid FROM pg_roles
                       WHERE rolname = current_user) THEN
            EXECUTE format('ALTER %s OWNER TO %s',
                           replace(obj, 'TABLE ', 'VIEW '),
                           k.owner::regrole::text);
        END IF;
        -- What the new object got by default goes, then the old grants
        -- come back (a NULL list is the defaults: PUBLIC may execute a
        -- function, nobody but the owner reads a view).
        EXECUTE format('REVOKE ALL ON %s FROM PUBLIC', obj);
        FOR g IN SELECT DISTINCT x.grantee FROM pg_class AS c,
                     aclexplode(c.relacl) AS x
                 WHERE k.kind = 'TABLE' AND c.relnamespace =
                       'funnel'::regnamespace AND c.relname = k.name
                   AND x.grantee <> c.relowner AND x.grantee <> 0
                 UNION
                 SELECT DISTINCT x.grantee FROM pg_proc AS p,
                     aclexplode(p.proacl) AS x
                 WHERE k.kind = 'FUNCTION' AND p.pronamespace =
                       'funnel'::regnamespace AND p.proname = k.name
                   AND x.grantee <> p.proowner AND x.grantee <> 0 LOOP
            EXECUTE format('REVOKE ALL ON %s FROM %s', obj,
                           g.grantee::regrole::text);
        END LOOP;
        IF k.acl IS NULL THEN
            IF k.kind = 'FUNCTION' THEN
                EXECUTE format('GRANT EXECUTE ON %s TO PUBLIC', obj);
            END IF;
            CONTINUE;
        END IF;
        FOR g IN SELECT x.grantee, x.privilege_type, x.is_grantable
                 FROM aclexplode(k.acl) AS x WHERE x.grantee <> k.owner LOOP
            EXECUTE format('GRANT %s ON %s TO %s%s', g.privilege_type, obj,
                           CASE WHEN g.grantee = 0 THEN 'PUBLIC'
                                ELSE g.grantee::regrole::text
                           END,
                           CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION'
                                ELSE '' END);
        END LOOP;
    END LOOP;
END
$$;
