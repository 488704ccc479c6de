-- 006_contract_v2.sql: contract v2 in the funnel model. Events keep every
-- field a writer sent (account_id, and the envelope fields this reader does
-- not know in extra); leads carry their account; funnel.accounts rolls them
-- up per account. Only columns are added, all NULL-able, and nothing is
-- rewritten: a database built by an earlier release migrates in place, its
-- rows as they were (their new columns NULL, which is what a v1 event
-- means). Event types gain merged, voided and erased; funnel.events.type has
-- no CHECK constraint, so they need no change here.

ALTER TABLE funnel.events
    ADD COLUMN account_id text,
    ADD COLUMN extra      jsonb;

ALTER TABLE funnel.leads
    ADD COLUMN account_id text;
CREATE INDEX leads_account_idx ON funnel.leads (account_id);

COMMENT ON COLUMN funnel.events.type IS
    'Event type: captured, scored, handed_off, accepted, recycled, '
    'qualified, won, lost or disqualified; since contract v2 also merged, '
    'voided and erased (identity events: stored, and they change nothing in '
    'the funnel tables).';
COMMENT ON COLUMN funnel.events.account_id IS
    'The company the lead belongs to, as the event carried it (contract v2 '
    'envelope field); NULL when the event carried none (always for v1 '
    'events).';
COMMENT ON COLUMN funnel.events.extra IS
    'Envelope fields sent by a writer whose contract version is newer than '
    'this reader''s, as a JSON object {"name": value, ...}, so that nothing '
    'a writer sends is lost before the code learns it; NULL when there are '
    'none. Payload fields this reader does not know are in payload, beside '
    'the known ones.';
COMMENT ON COLUMN funnel.events.payload IS
    'The fields of the event''s type as a JSON object, e.g. {"owner": '
    '"maria@example.com", "sla_hours": 24} for handed_off; optional fields '
    'left out are absent. Payload fields sent by a newer writer than this '
    'reader are kept here too, beside the known ones. README.md lists the '
    'fields of each type.';
COMMENT ON COLUMN funnel.leads.account_id IS
    'The company the lead belongs to: account_id of the lead''s latest '
    'event, in (occurred_at, event_id) order, that carries one; NULL when '
    'none does. Identity events (merged, voided, erased) do not count.';

-- ---- accounts ----------------------------------------------------------

CREATE FUNCTION funnel.accounts_filtered(captured_from date DEFAULT NULL,
                                         captured_to date DEFAULT NULL,
                                         only_channel text DEFAULT NULL)
RETURNS TABLE (account_id text, leads bigint, marketing_qualified bigint,
               handed_off bigint, sales_accepted bigint,
               sales_qualified bigint, won bigint, won_amount_minor jsonb,
               first_captured_at timestamptz, last_event_at timestamptz)
LANGUAGE sql STABLE AS $$
    WITH scoped AS (
        SELECT * FROM funnel.leads_in_scope($1, $2, $3)
    ), counted AS (
        SELECT s.account_id, count(*) AS leads,
               count(s.first_marketing_qualified_at) AS marketing_qualified,
               count(s.first_handed_off_at) AS handed_off,
               count(s.first_sales_accepted_at) AS sales_accepted,
               count(s.first_sales_qualified_at) AS sales_qualified,
               count(s.won_at) AS won,
               min(s.captured_at) AS first_captured_at,
               max(s.last_event_at) AS last_event_at
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
           c.last_event_at
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

GRANT SELECT ON funnel.accounts TO leadflow_analyst;
GRANT EXECUTE ON FUNCTION funnel.accounts_filtered(date, date, text)
    TO leadflow_analyst;
