-- 005_comments.sql: what every table and column of the funnel model holds,
-- in the words of someone querying it (psql: \d+ funnel.leads). Views and
-- their columns are described where they are made (002_views.sql); the
-- dead-letter retry columns where they were added (004_replay.sql).
--
-- Conventions, as in the views: timestamps are timestamptz (instants; psql
-- shows them in the session's time zone); an event's time is when it
-- happened in the source system (occurred_at, millisecond precision), a
-- "wall-clock" column is when the projector wrote the row (the start of its
-- transaction), and only wall-clock columns may differ after a replay of the
-- same events. Money is in minor units of its currency (cents for EUR).
-- Event types are the lower-case names of the contract (captured, scored,
-- handed_off, accepted, recycled, qualified, won, lost, disqualified).

-- ---- funnel.events -----------------------------------------------------

COMMENT ON TABLE funnel.events IS
    'One row per distinct lead event, exactly as published on Kafka: the '
    'record every other table is derived from. An event_id seen again with '
    'the same content is not stored twice; with other content the first '
    'stays and the later one is listed in funnel.anomalies (kind '
    '''conflict''). Events that do not fit the funnel are stored too.';
COMMENT ON COLUMN funnel.events.event_id IS
    'The event''s id, unique: the idempotence key. Set by the publishing '
    'system, or derived by leadflow-emit from the event''s content.';
COMMENT ON COLUMN funnel.events.lead_id IS
    'The lead the event is about (funnel.leads.lead_id once captured).';
COMMENT ON COLUMN funnel.events.type IS
    'Event type: captured, scored, handed_off, accepted, recycled, '
    'qualified, won, lost or disqualified.';
COMMENT ON COLUMN funnel.events.occurred_at IS
    'When it happened in the source system (millisecond precision). A '
    'lead''s events are applied in (occurred_at, event_id) order, whatever '
    'order they arrived in.';
COMMENT ON COLUMN funnel.events.source IS
    'The system that saw it (hubspot, salesforce, web-form, ...).';
COMMENT ON COLUMN funnel.events.actor IS
    'Who did it, as the source system names them; NULL when not given.';
COMMENT ON COLUMN funnel.events.payload IS
    'The fields of the event''s type as a JSON object, e.g. {"owner": '
    '"maria@example.com", "sla_hours": 24} for handed_off; optional fields '
    'left out are absent. README.md lists the fields of each type.';
COMMENT ON COLUMN funnel.events.topic IS
    'Kafka topic the stored copy was read from.';
COMMENT ON COLUMN funnel.events.partition IS
    'Kafka partition the stored copy was read from.';
COMMENT ON COLUMN funnel.events."offset" IS
    'Kafka offset of the stored copy within its partition.';
COMMENT ON COLUMN funnel.events.received_at IS
    'Wall clock: when the event was stored here.';

-- ---- funnel.leads ------------------------------------------------------

COMMENT ON TABLE funnel.leads IS
    'One row per captured lead: its current stage and the milestones it '
    'reached, derived from its events by the funnel state machine. A lead '
    'whose events arrive before its captured event has no row until the '
    'capture arrives. Computed, never edited: a late event makes the '
    'projector recompute the lead from all its stored events.';
COMMENT ON COLUMN funnel.leads.lead_id IS 'The lead, as in its events.';
COMMENT ON COLUMN funnel.leads.stage IS
    'Current stage: captured, marketing_qualified, handed_off, '
    'sales_accepted, sales_qualified, won, lost, nurture or disqualified '
    '(funnel.stages gives their order).';
COMMENT ON COLUMN funnel.leads.stage_entered_at IS
    'When the lead entered its current stage (occurred_at of the event that '
    'moved it there).';
COMMENT ON COLUMN funnel.leads.cycle IS
    'How many times the lead has gone through the funnel: 1 from capture, '
    '+1 each time it leaves nurture for marketing_qualified or handed_off.';
COMMENT ON COLUMN funnel.leads.score IS
    'Score of the lead''s latest scored event since its capture, whether or '
    'not it qualified the lead; NULL if never scored.';
COMMENT ON COLUMN funnel.leads.score_model IS
    'Scoring model of that latest scored event; NULL if never scored.';
COMMENT ON COLUMN funnel.leads.owner IS
    'Sales owner named by the latest handed_off or accepted event that '
    'moved the lead; kept after a recycle; NULL if never handed off.';
COMMENT ON COLUMN funnel.leads.channel IS
    'Capture channel, from the captured event; never NULL.';
COMMENT ON COLUMN funnel.leads.campaign IS
    'Capture campaign, from the captured event; NULL when it named none.';
COMMENT ON COLUMN funnel.leads.captured_at IS
    'When the lead was captured (occurred_at of its captured event).';
COMMENT ON COLUMN funnel.leads.first_marketing_qualified_at IS
    'When the lead first became marketing qualified (a scored event with '
    'score >= threshold); NULL if never.';
COMMENT ON COLUMN funnel.leads.first_handed_off_at IS
    'When the lead was first handed off to sales; NULL if never.';
COMMENT ON COLUMN funnel.leads.first_sales_accepted_at IS
    'When sales first accepted the lead; NULL if never.';
COMMENT ON COLUMN funnel.leads.first_sales_qualified_at IS
    'When the lead first became sales qualified (an opportunity); NULL if '
    'never.';
COMMENT ON COLUMN funnel.leads.won_at IS
    'When the lead was won (final: at most once); NULL unless won.';
COMMENT ON COLUMN funnel.leads.won_amount_minor IS
    'Won amount in minor units of currency (cents: 500000 EUR is '
    'EUR 5,000.00), from the won event; NULL unless won.';
COMMENT ON COLUMN funnel.leads.currency IS
    'ISO 4217 code of won_amount_minor (EUR, USD, ...); NULL unless won.';
COMMENT ON COLUMN funnel.leads.lost_at IS
    'When the lead was last lost; kept if it was later recycled to '
    'nurture; NULL if never lost.';
COMMENT ON COLUMN funnel.leads.disqualified_at IS
    'When the lead was disqualified (final: at most once); NULL unless '
    'disqualified.';
COMMENT ON COLUMN funnel.leads.last_event_at IS
    'occurred_at of the lead''s latest event in (occurred_at, event_id) '
    'order, counting events that changed nothing or did not fit.';
COMMENT ON COLUMN funnel.leads.updated_at IS
    'Wall clock: when the projector last wrote this row.';
COMMENT ON COLUMN funnel.leads.last_event_id IS
    'Projector bookkeeping: event_id of the event at last_event_at. An '
    'event ordered after it continues the lead; one ordered before makes '
    'the projector recompute the lead.';
COMMENT ON COLUMN funnel.leads.stage_entered_by IS
    'Projector bookkeeping: event_id of the event that moved the lead into '
    'its current stage (stage_history.entered_by of its current visit).';
COMMENT ON COLUMN funnel.leads.visits IS
    'Stage visits so far; the current one is funnel.stage_history row '
    '(lead_id, visit = visits).';

-- ---- funnel.stage_history ----------------------------------------------

COMMENT ON TABLE funnel.stage_history IS
    'One row per stage visit: each time a lead entered a stage, how long it '
    'stayed and why it left. Visits are numbered from 1 per lead in event '
    'order; the open visit (exited_at NULL) is the lead''s current stage.';
COMMENT ON COLUMN funnel.stage_history.lead_id IS 'The lead.';
COMMENT ON COLUMN funnel.stage_history.visit IS
    'Visit number, 1 (captured) upwards, in the order the lead moved.';
COMMENT ON COLUMN funnel.stage_history.cycle IS
    'The lead''s cycle during the visit: 1 from capture, +1 each time it '
    'leaves nurture for marketing_qualified or handed_off.';
COMMENT ON COLUMN funnel.stage_history.stage IS 'The stage visited.';
COMMENT ON COLUMN funnel.stage_history.entered_at IS
    'When the visit began (occurred_at of the event that entered it).';
COMMENT ON COLUMN funnel.stage_history.exited_at IS
    'When the visit ended: the entered_at of the next visit. NULL while '
    'the lead is still in this stage.';
COMMENT ON COLUMN funnel.stage_history.entered_by IS
    'event_id of the event that entered the stage (join funnel.events for '
    'its payload: owner, sla_hours, ...).';
COMMENT ON COLUMN funnel.stage_history.exit_reason IS
    'The reason of the recycled, lost or disqualified event that ended the '
    'visit; NULL when another event ended it, or while open.';

-- ---- funnel.anomalies --------------------------------------------------

COMMENT ON TABLE funnel.anomalies IS
    'Events kept but listed for a human to look at, one row per event, kind '
    'and reason: ''state'', an event the state machine refuses (a won for a '
    'lead never qualified; the row goes when a late event makes it fit); '
    '''conflict'', an event_id reused with other content (the first stays '
    'in funnel.events); ''key'', a Kafka key that is not the lead_id.';
COMMENT ON COLUMN funnel.anomalies.event_id IS
    'The event concerned (in funnel.events; for a conflict, the stored '
    'first content of that event_id).';
COMMENT ON COLUMN funnel.anomalies.lead_id IS
    'The event''s lead (for a conflict, the lead named by the later '
    'message).';
COMMENT ON COLUMN funnel.anomalies.kind IS 'state, conflict or key.';
COMMENT ON COLUMN funnel.anomalies.reason IS
    'What is wrong, in words: "accepted is not a transition from stage '
    'captured", "event_id reused with different content at lead-events '
    'partition 3 offset 1200", "Kafka key ... differs from lead_id".';
COMMENT ON COLUMN funnel.anomalies.detected_at IS
    'Wall clock: when the projector first listed it.';

-- ---- funnel.dead_letters -----------------------------------------------

COMMENT ON TABLE funnel.dead_letters IS
    'Kafka messages that could not be decoded or validated as a lead '
    'event, kept byte for byte, one row per message. leadflow-replay '
    'dead-letters retry applies those that now decode and marks them '
    'resolved; rows are never deleted.';
COMMENT ON COLUMN funnel.dead_letters.id IS
    'Row number, increasing in order of arrival.';
COMMENT ON COLUMN funnel.dead_letters.topic IS
    'Kafka topic the message was read from.';
COMMENT ON COLUMN funnel.dead_letters.partition IS
    'Kafka partition of the message.';
COMMENT ON COLUMN funnel.dead_letters."offset" IS
    'Kafka offset of the message within its partition.';
COMMENT ON COLUMN funnel.dead_letters.key IS
    'The message''s key, raw bytes; NULL when it had none.';
COMMENT ON COLUMN funnel.dead_letters.value IS
    'The message''s value, raw bytes (normally Confluent-framed Avro); NULL '
    'when it had none.';
COMMENT ON COLUMN funnel.dead_letters.received_at IS
    'Wall clock: when the projector stored it.';

-- ---- funnel.offsets ----------------------------------------------------

COMMENT ON TABLE funnel.offsets IS
    'Where each projector consumer group stands in Kafka, per topic and '
    'partition, written in the same transaction as the rows it produced: '
    'the projector resumes from here, not from Kafka''s committed offsets. '
    'leadflow-replay rewind moves it back.';
COMMENT ON COLUMN funnel.offsets.group_id IS
    'Kafka consumer group of the projector (its group.id).';
COMMENT ON COLUMN funnel.offsets.topic IS 'Kafka topic.';
COMMENT ON COLUMN funnel.offsets.partition IS 'Kafka partition.';
COMMENT ON COLUMN funnel.offsets.next_offset IS
    'Offset of the next message to read (one past the last one projected, '
    'as Kafka counts): every message before it is in funnel.events or '
    'funnel.dead_letters.';
COMMENT ON COLUMN funnel.offsets.updated_at IS
    'Wall clock: when it was last written.';

-- ---- funnel.schema_migrations ------------------------------------------
-- Made by the migration runner itself (lf_pg_migrate), before 001.

COMMENT ON TABLE funnel.schema_migrations IS
    'The migrations applied to this database (schemas/sql/*.sql), one row '
    'each; each was applied in one transaction with its row.';
COMMENT ON COLUMN funnel.schema_migrations.name IS
    'File name of the migration, e.g. 001_funnel.sql.';
COMMENT ON COLUMN funnel.schema_migrations.applied_at IS
    'Wall clock: when it was applied.';
