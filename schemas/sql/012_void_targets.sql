-- 012_void_targets.sql: voids whose target had not arrived.
-- Two writers at once can store a void and, on another lead's partition,
-- the event it names, neither seeing the other's row: the void's anomaly
-- says "not received" although the target is stored. The projector finds
-- such anomalies when idle (and before --idle-exit exits) and recomputes
-- their person; this index makes that look cost what the void anomalies
-- whose target was not received cost, not what all anomalies do.
CREATE INDEX anomalies_void_unreceived_idx ON funnel.anomalies (event_id)
    WHERE kind = 'void' AND reason LIKE 'voided event % not received';
COMMENT ON INDEX funnel.anomalies_void_unreceived_idx IS
    'Void anomalies whose target was not received: the projector looks for '
    'those whose target is stored since, when idle.';
