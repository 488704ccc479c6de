-- 018_flows_grain_case.sql: funnel.flows_by takes its grain in any case and
-- with blanks around it ('Week', 'MONTH '), as a person types it in a BI
-- tool; anything else is still an error, not an empty result.
CREATE OR REPLACE FUNCTION funnel.flows_grain(grain text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    g text := lower(btrim(grain));
BEGIN
    IF g IS NULL OR g NOT IN ('day', 'week', 'month', 'quarter') THEN
        RAISE EXCEPTION 'grain must be day, week, month or quarter, not %',
            coalesce(grain, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN g;
END
$$;
COMMENT ON FUNCTION funnel.flows_grain(text) IS
    'grain as day, week, month or quarter (any case, blanks around it '
    'ignored); an error otherwise.';
