-- 022_anomaly_comments.sql: funnel.anomalies' comments name every kind
-- (merge and void came with identity, migration 009) and the reasons an
-- erasure writes.

COMMENT ON TABLE funnel.anomalies IS
    'Events kept but listed for a human to look at, one row per event, kind '
    'and reason: ''state'', an event the state machine refuses (a won for a '
    'lead never qualified; the row goes when a late event makes it fit); '
    '''conflict'', an event_id reused with other content (the first stays '
    'in funnel.events); ''key'', a Kafka key that is not the lead_id; '
    '''merge'', a merged event that does not count; ''void'', a voided '
    'event that does not count.';
COMMENT ON COLUMN funnel.anomalies.kind IS
    'state, conflict, key, merge or void.';
COMMENT ON COLUMN funnel.anomalies.reason IS
    'What is wrong, in words: "accepted is not a transition from stage '
    'captured", "event_id reused with different content at lead-events '
    'partition 3 offset 1200" (", only in fields an erasure removes," '
    'after "content" when the copy differs only in personal fields: the '
    'person''s erasure deletes it), "Kafka key ... differs from lead_id" '
    '("Kafka key differs from lead_id (the key was erased)" once the key''s '
    'person is erased).';
