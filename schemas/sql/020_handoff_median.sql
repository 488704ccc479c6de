-- 020_handoff_median.sql: handoff_sla_by_owner's median_hours_to_accept is
-- the median of the exact times from handoff to acceptance, rounded once.
-- It took the median of handoff_sla.hours_to_disposition, already rounded
-- to the hundredth, and rounded that again: with an even number of
-- acceptances the mean of two rounded middles could read 0.01 h too high
-- (1.7561 h and 2.8266 h gave 2.30, not 2.29). Same signature and columns:
-- the view, its comments and its grants stay.
CREATE OR REPLACE FUNCTION funnel.handoff_sla_by_owner_filtered(
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
                   ORDER BY extract(epoch FROM h.accepted_at
                                               - h.handed_off_at)::float8
                            / 3600)
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
