-- 001_funnel.sql: the funnel model both teams read. Analysts depend on these
-- names; change them only with a new migration and a note in the README.
-- Applied by leadflow-project in one transaction, recorded in
-- funnel.schema_migrations. Wall-clock columns (received_at, updated_at) are
-- the only ones a replay may change.

CREATE SCHEMA IF NOT EXISTS funnel;

-- Every distinct event once; event_id is the idempotence key.
CREATE TABLE funnel.events (
    event_id    text PRIMARY KEY,
    lead_id     text NOT NULL,
    type        text NOT NULL,
    occurred_at timestamptz NOT NULL,
    source      text NOT NULL,
    actor       text,
    payload     jsonb NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    "offset"    bigint NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_lead_idx ON funnel.events (lead_id, occurred_at);

-- One row per captured lead: where it stands and the milestones it reached.
CREATE TABLE funnel.leads (
    lead_id                      text PRIMARY KEY,
    stage                        text NOT NULL,
    stage_entered_at             timestamptz NOT NULL,
    cycle                        integer NOT NULL,
    score                        integer,
    score_model                  text,
    owner                        text,
    channel                      text,
    campaign                     text,
    captured_at                  timestamptz NOT NULL,
    first_marketing_qualified_at timestamptz,
    first_handed_off_at          timestamptz,
    first_sales_accepted_at      timestamptz,
    first_sales_qualified_at     timestamptz,
    won_at                       timestamptz,
    won_amount_minor             bigint,
    currency                     text,
    lost_at                      timestamptz,
    disqualified_at              timestamptz,
    last_event_at                timestamptz NOT NULL,
    updated_at                   timestamptz NOT NULL DEFAULT now(),
    -- Projector bookkeeping: the latest event applied, in (occurred_at,
    -- event_id) order, the event that opened the current visit, and the
    -- number of visits so far. A later event continues from here; an
    -- earlier one makes the projector recompute the lead.
    last_event_id                text NOT NULL,
    stage_entered_by             text NOT NULL,
    visits                       integer NOT NULL,
    CONSTRAINT leads_stage_check CHECK (stage IN ('captured',
        'marketing_qualified', 'handed_off', 'sales_accepted',
        'sales_qualified', 'won', 'lost', 'nurture', 'disqualified'))
);
CREATE INDEX leads_stage_idx ON funnel.leads (stage);

-- One row per stage visit, numbered from 1 per lead.
CREATE TABLE funnel.stage_history (
    lead_id     text NOT NULL,
    visit       integer NOT NULL,
    cycle       integer NOT NULL,
    stage       text NOT NULL,
    entered_at  timestamptz NOT NULL,
    exited_at   timestamptz,
    entered_by  text NOT NULL,
    exit_reason text,
    PRIMARY KEY (lead_id, visit)
);
CREATE INDEX stage_history_stage_idx ON funnel.stage_history (stage);

-- Events kept but not fitting the state machine (kind 'state', recomputed
-- with the lead), an event_id reused with other content (kind 'conflict'),
-- or a Kafka key that is not the lead_id (kind 'key').
CREATE TABLE funnel.anomalies (
    event_id    text NOT NULL,
    lead_id     text NOT NULL,
    kind        text NOT NULL,
    reason      text NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, kind, reason)
);
CREATE INDEX anomalies_lead_idx ON funnel.anomalies (lead_id);

-- Messages that could not be decoded or validated, kept byte for byte.
CREATE TABLE funnel.dead_letters (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    "offset"    bigint NOT NULL,
    key         bytea,
    value       bytea,
    error       text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (topic, partition, "offset")
);

-- Consumed offsets, written in the same transaction as the batch: the
-- projector starts from here, not from Kafka's committed offsets.
CREATE TABLE funnel.offsets (
    group_id    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
