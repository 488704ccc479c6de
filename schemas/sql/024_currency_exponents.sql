-- 024_currency_exponents.sql: amounts are converted in minor units with
-- both currencies' minor units. funnel_ref.fx_rates holds units of the
-- reporting currency per unit of a currency, but funnel.roi and
-- funnel.accounts multiplied *minor* units by it, right only when both
-- currencies have cents: 1,500,000 JPY (no minor unit) at 0.0065 USD
-- showed as 97.50 USD, not 9,750.00, and 1,234.567 BHD (fils, three
-- places) ten times too much. Each amount is now multiplied by
-- funnel.fx_minor_rate(): the rate times 10^(e(reporting) - e(currency)),
-- e being the ISO 4217 exponent (funnel.currency_exponent(), the table
-- leadflow-report prints amounts with). Same signatures and columns: the
-- views that select from the functions stay as they are.

CREATE FUNCTION funnel.currency_exponent(currency text)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN $1 IN ('BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF',
                            'KRW', 'PYG', 'RWF', 'UGX', 'UYI', 'VND', 'VUV',
                            'XAF', 'XOF', 'XPF') THEN 0
                WHEN $1 IN ('BHD', 'IQD', 'JOD', 'KWD', 'LYD', 'OMR', 'TND')
                    THEN 3
                WHEN $1 IN ('CLF', 'UYW') THEN 4
                ELSE 2 END
$$;
COMMENT ON FUNCTION funnel.currency_exponent(text) IS
    'Decimal places of currency''s minor unit (ISO 4217): 0 for JPY, KRW '
    'and the others without one, 3 for BHD, JOD, KWD and the others with '
    'three, 4 for CLF and UYW, 2 for any other code.';

-- Minor units of the reporting currency per minor unit of @currency in
-- @month: funnel.fx_rate() scaled by the two exponents; NULL without a
-- rate.
CREATE FUNCTION funnel.fx_minor_rate(currency text, month date)
RETURNS numeric
LANGUAGE sql STABLE AS $$
    SELECT funnel.fx_rate($1, $2)
           * power(10::numeric,
                   funnel.currency_exponent(s.reporting_currency)
                   - funnel.currency_exponent($1))
    FROM funnel_ref.settings AS s
$$;
COMMENT ON FUNCTION funnel.fx_minor_rate(text, date) IS
    'Minor units of the reporting currency per minor unit of currency, for '
    'amounts of the month of month: funnel.fx_rate() times 10 to the power '
    'of the reporting currency''s exponent minus currency''s '
    '(funnel.currency_exponent()); NULL without a rate.';

CREATE OR REPLACE FUNCTION funnel.roi_filtered(
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
        SELECT l.*, funnel.fx_minor_rate(l.currency,
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
               round(c.amount_minor
                     * funnel.fx_minor_rate(c.currency, c.month)),
               0, 0, 0, 0, NULL,
               (funnel.fx_minor_rate(c.currency, c.month) IS NULL)::int
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

CREATE OR REPLACE FUNCTION funnel.accounts_filtered(
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
        SELECT s.*, round(s.won_amount_minor * funnel.fx_minor_rate(
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

COMMENT ON VIEW funnel.roi IS
    'Cost, leads and won revenue with first-touch attribution (the lead''s '
    'capture channel and campaign, '''' for none), in the reporting '
    'currency: per grain ''month'' (channel, campaign, month: leads captured '
    'that month, costs of that month), ''campaign'', ''channel'' and '
    '''total''. An amount of currency C in month M is converted with the '
    'rate of (C, M) (funnel_ref.fx_rates; the reporting currency has rate 1) '
    'and the two currencies'' minor units (funnel.fx_minor_rate()), and '
    'rounded to minor units, each amount on its own, so the grains add up; '
    'without a rate it is left out and counted in missing_rates.';
COMMENT ON COLUMN funnel.accounts.won_revenue_reporting_minor IS
    'Revenue of the account: its won amounts converted to the reporting '
    'currency at the month of won_at (funnel.fx_minor_rate()) and rounded '
    'to minor units, each on its own, then summed; 0 when nothing was won. '
    'Amounts without a rate are left out and counted in missing_rates; NULL '
    'when won amounts exist but none has a rate.';
