-- 009_identity.sql: merged leads, voided events and erased people.
-- The tables stay a function of the set of events: which merges count, which
-- voids count and which people are erased follow from the stored events
-- alone, whatever order they arrived in (docs/analysts.md, "Identity").

-- Every merge that counts: lead_id was merged into into_lead_id, and its
-- events are the surviving lead's (the end of the chain). A merged lead has
-- no row in funnel.leads or funnel.stage_history.
CREATE TABLE funnel.merges (
    lead_id           text PRIMARY KEY,
    into_lead_id      text NOT NULL,
    surviving_lead_id text NOT NULL,
    merged_at         timestamptz NOT NULL,
    event_id          text NOT NULL
);
CREATE INDEX merges_surviving_idx ON funnel.merges (surviving_lead_id);
CREATE INDEX merges_into_idx ON funnel.merges (into_lead_id);

COMMENT ON TABLE funnel.merges IS
    'Every merge that counts: lead_id''s events belong to surviving_lead_id, '
    'the end of the chain of merges. A merged lead has no row in leads or '
    'stage_history; its events keep their lead_id in events.';
COMMENT ON COLUMN funnel.merges.lead_id IS
    'The merged lead (the lead of the merged event).';
COMMENT ON COLUMN funnel.merges.into_lead_id IS
    'The lead it was merged into (the event''s into_lead_id).';
COMMENT ON COLUMN funnel.merges.surviving_lead_id IS
    'The end of the chain of merges from lead_id: the lead its events count for.';
COMMENT ON COLUMN funnel.merges.merged_at IS
    'occurred_at of the merged event.';
COMMENT ON COLUMN funnel.merges.event_id IS
    'The merged event that counts (the first in (occurred_at, event_id) order).';

-- Every erasure: the pseudonym of the lead the erased event named (never its
-- original id), the privacy request's reference, and when it happened.
CREATE TABLE funnel.erasures (
    event_id   text PRIMARY KEY,
    pseudonym  text NOT NULL,
    request_id text NOT NULL,
    erased_at  timestamptz NOT NULL
);
CREATE INDEX erasures_pseudonym_idx ON funnel.erasures (pseudonym);

COMMENT ON TABLE funnel.erasures IS
    'Every erased event projected: the person''s lead ids are pseudonyms '
    'everywhere and their personal fields are gone (docs/security.md).';
COMMENT ON COLUMN funnel.erasures.event_id IS 'The erased event.';
COMMENT ON COLUMN funnel.erasures.pseudonym IS
    'The keyed pseudonym of the lead the erased event named.';
COMMENT ON COLUMN funnel.erasures.request_id IS
    'The privacy request''s reference (the event''s request_id).';
COMMENT ON COLUMN funnel.erasures.erased_at IS
    'occurred_at of the erased event.';

-- The pseudonym of every erased lead id: an event of one of them that
-- arrives later (live, rewind, rebuild, retry) is erased on the way in.
CREATE TABLE funnel.erased_leads (
    pseudonym text PRIMARY KEY
);
COMMENT ON TABLE funnel.erased_leads IS
    'The keyed pseudonym of every erased lead id, for erasing their later '
    'events on the way in. Holds no original id.';
COMMENT ON COLUMN funnel.erased_leads.pseudonym IS
    'erased:<hex>: HMAC-SHA-256 of the lead id under the pseudonym key.';

-- Finding a lead's merges from either end, and the voids of an event.
CREATE INDEX events_merged_into_idx ON funnel.events ((payload ->> 'into_lead_id'))
    WHERE type = 'merged';
CREATE INDEX events_voided_idx ON funnel.events ((payload ->> 'voided_event_id'))
    WHERE type = 'voided';

-- The lead each stored lead id counts for: its surviving lead.
CREATE VIEW funnel.lead_identity AS
SELECT e.lead_id, coalesce(m.surviving_lead_id, e.lead_id) AS surviving_lead_id
FROM (SELECT DISTINCT lead_id FROM funnel.events) AS e
LEFT JOIN funnel.merges AS m USING (lead_id);
COMMENT ON VIEW funnel.lead_identity IS
    'Every lead id with events and the lead it counts for (itself unless merged).';

-- The events that no longer count: a stage event voided by a voided event of
-- the same person (the same surviving lead). Voided twice is voided once:
-- the earliest void is listed.
CREATE VIEW funnel.voided_events AS
SELECT DISTINCT ON (t.event_id)
       t.event_id,
       t.lead_id,
       coalesce(mt.surviving_lead_id, t.lead_id) AS surviving_lead_id,
       t.type,
       t.occurred_at,
       v.event_id AS voided_by,
       v.occurred_at AS voided_at,
       v.payload ->> 'reason' AS reason
FROM funnel.events AS v
JOIN funnel.events AS t ON t.event_id = v.payload ->> 'voided_event_id'
LEFT JOIN funnel.merges AS mv ON mv.lead_id = v.lead_id
LEFT JOIN funnel.merges AS mt ON mt.lead_id = t.lead_id
WHERE v.type = 'voided'
  AND t.type NOT IN ('merged', 'voided', 'erased')
  AND coalesce(mv.surviving_lead_id, v.lead_id)
      = coalesce(mt.surviving_lead_id, t.lead_id)
ORDER BY t.event_id, v.occurred_at, v.event_id;
COMMENT ON VIEW funnel.voided_events IS
    'Stage events that no longer count: event, its lead and surviving lead, '
    'when it occurred, the voided event (voided_by, voided_at) and why.';

-- The events the funnel counts, by the lead they count for: stage events
-- (not merged, voided or erased ones) that no void of the same person undid.
CREATE VIEW funnel.counted_events AS
SELECT e.event_id, e.lead_id,
       coalesce(m.surviving_lead_id, e.lead_id) AS surviving_lead_id,
       e.type, e.occurred_at, e.source, e.actor, e.account_id, e.payload
FROM funnel.events AS e
LEFT JOIN funnel.merges AS m USING (lead_id)
WHERE e.type NOT IN ('merged', 'voided', 'erased')
  AND NOT EXISTS (SELECT 1 FROM funnel.voided_events AS v
                  WHERE v.event_id = e.event_id);
COMMENT ON VIEW funnel.counted_events IS
    'The stage events the funnel counts, with the surviving lead they count '
    'for: merged leads'' events under their surviving lead, voided ones left out.';

COMMENT ON COLUMN funnel.lead_identity.lead_id IS 'A lead id that has events.';
COMMENT ON COLUMN funnel.lead_identity.surviving_lead_id IS 'The lead its events count for: the end of its chain of merges, or itself.';
COMMENT ON COLUMN funnel.voided_events.event_id IS 'The voided stage event.';
COMMENT ON COLUMN funnel.voided_events.lead_id IS 'Its lead (as stored).';
COMMENT ON COLUMN funnel.voided_events.surviving_lead_id IS 'The lead it would have counted for.';
COMMENT ON COLUMN funnel.voided_events.type IS 'Its type.';
COMMENT ON COLUMN funnel.voided_events.occurred_at IS 'When it occurred.';
COMMENT ON COLUMN funnel.voided_events.voided_by IS 'The voided event that undid it (the earliest, when several did).';
COMMENT ON COLUMN funnel.voided_events.voided_at IS 'occurred_at of that voided event.';
COMMENT ON COLUMN funnel.voided_events.reason IS 'Why, as the voided event says.';
COMMENT ON COLUMN funnel.counted_events.event_id IS 'The event.';
COMMENT ON COLUMN funnel.counted_events.lead_id IS 'Its lead (as stored).';
COMMENT ON COLUMN funnel.counted_events.surviving_lead_id IS 'The lead it counts for.';
COMMENT ON COLUMN funnel.counted_events.type IS 'Its type (a stage event).';
COMMENT ON COLUMN funnel.counted_events.occurred_at IS 'When it occurred.';
COMMENT ON COLUMN funnel.counted_events.source IS 'The system that sent it.';
COMMENT ON COLUMN funnel.counted_events.actor IS 'Who acted.';
COMMENT ON COLUMN funnel.counted_events.account_id IS 'The account it names, if any.';
COMMENT ON COLUMN funnel.counted_events.payload IS 'Its payload fields (JSON).';

GRANT SELECT ON funnel.merges, funnel.erasures, funnel.erased_leads,
    funnel.lead_identity, funnel.voided_events, funnel.counted_events
    TO leadflow_analyst;
