-- 019_anomaly_person.sql: a conflict anomaly is listed under the
-- surviving lead of the lead of the event that stands in funnel.events
-- (not of the lead the later message named), a key anomaly under that of
-- its message's lead, in every arrival order. Before, a late merge that
-- counted before an earlier-arrived one left such an anomaly under the
-- surviving lead of before. The rows already stored are put where the
-- rule puts them (a key anomaly whose event also has a conflict may have
-- come with another lead's message: it stays).
UPDATE funnel.anomalies AS a
SET lead_id = coalesce(m.surviving_lead_id, e.lead_id)
FROM funnel.events AS e
LEFT JOIN funnel.merges AS m ON m.lead_id = e.lead_id
WHERE (a.kind = 'conflict'
       OR a.kind = 'key' AND NOT EXISTS (
           SELECT 1 FROM funnel.anomalies AS c
           WHERE c.event_id = a.event_id AND c.kind = 'conflict'))
  AND e.event_id = a.event_id
  AND a.lead_id <> coalesce(m.surviving_lead_id, e.lead_id);

COMMENT ON COLUMN funnel.anomalies.lead_id IS
    'The surviving lead of the event''s lead, whatever order the events '
    'arrived in (for a conflict, of the lead of the event that stands in '
    'funnel.events).';
