-- 019_anomaly_person.sql: a conflict or key anomaly is listed under the
-- surviving lead of the lead of the event that stands in funnel.events,
-- in every arrival order. Before, a late merge that counted before an
-- earlier-arrived one left such an anomaly under the surviving lead of
-- before, and a conflict went by the lead the later message named.
-- The rows already stored are put where the rule puts them.
UPDATE funnel.anomalies AS a
SET lead_id = coalesce(m.surviving_lead_id, e.lead_id)
FROM funnel.events AS e
LEFT JOIN funnel.merges AS m ON m.lead_id = e.lead_id
WHERE a.kind IN ('conflict', 'key')
  AND e.event_id = a.event_id
  AND a.lead_id <> coalesce(m.surviving_lead_id, e.lead_id);

COMMENT ON COLUMN funnel.anomalies.lead_id IS
    'The surviving lead of the event''s lead (for a conflict or a Kafka '
    'key, of the lead of the event that stands in funnel.events), whatever '
    'order the events arrived in.';
