-- 007_definition.sql: the funnel definition (the marketing-sales agreement:
-- schemas/funnel/default.json or the file given with -X
-- funnel.definition=FILE) that the funnel tables were built with, and its
-- rules as a view for BI tools. One set of tables is built under one
-- definition: leadflow-project records its definition here on first start
-- and refuses to start (exit 78) under another. A new one is adopted
-- through a what-if rebuild (leadflow-replay rebuild --definition FILE),
-- compared (leadflow-replay diff --summary), then promoted: the rebuilt
-- schema carries its own row here (docs/definition.md).

CREATE TABLE funnel.definition (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    name       text NOT NULL,
    version    bigint NOT NULL,
    sha256     text NOT NULL,
    json       jsonb NOT NULL,
    adopted_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE funnel.definition IS
    'The funnel definition these tables were built with: one row. Events '
    'are applied under its rules only; a projector started with another '
    'definition refuses to start.';
COMMENT ON COLUMN funnel.definition.singleton IS
    'Always true: the table holds at most one row.';
COMMENT ON COLUMN funnel.definition.name IS
    'The definition''s name (its "name").';
COMMENT ON COLUMN funnel.definition.version IS
    'The definition''s version (its "version"), raised by the teams at each '
    'change.';
COMMENT ON COLUMN funnel.definition.sha256 IS
    'SHA-256 (hex) of the canonical form of the definition (compact JSON, '
    'sorted keys, stages in funnel order): equal for the same rules however '
    'the file is laid out. leadflow-report prints it.';
COMMENT ON COLUMN funnel.definition.json IS
    'The definition itself, in its canonical form.';
COMMENT ON COLUMN funnel.definition.adopted_at IS
    'Wall-clock: when a projector or a rebuild first recorded it here.';

CREATE VIEW funnel.rules AS
SELECT d.name AS definition,
       d.version,
       r.ord::integer AS rule,
       r.rule ->> 'event' AS event,
       f.stage AS from_stage,
       r.rule ->> 'to' AS to_stage,
       r.rule ->> 'otherwise' AS otherwise,
       CASE WHEN r.rule ->> 'event' = 'scored' THEN
           CASE jsonb_typeof(d.json -> 'qualify' -> 'threshold')
           WHEN 'object' THEN (
               SELECT string_agg(
                   CASE WHEN t.model = '*' THEN 'other models'
                        ELSE 'model ' || t.model END || ': score >= ' ||
                   CASE WHEN t.threshold = '"event"'::jsonb
                        THEN 'the event''s threshold'
                        ELSE t.threshold::text END,
                   '; ' ORDER BY t.model = '*', t.model)
               FROM jsonb_each(d.json -> 'qualify' -> 'threshold')
                   AS t (model, threshold))
           ELSE 'score >= ' ||
               CASE WHEN d.json -> 'qualify' -> 'threshold' = '"event"'::jsonb
                    THEN 'the event''s threshold'
                    ELSE (d.json -> 'qualify' -> 'threshold')::text END
           END
       END AS qualify
FROM funnel.definition d
CROSS JOIN LATERAL jsonb_array_elements(d.json -> 'rules')
    WITH ORDINALITY AS r (rule, ord)
CROSS JOIN LATERAL jsonb_array_elements_text(r.rule -> 'from')
    AS f (stage);

COMMENT ON VIEW funnel.rules IS
    'The funnel''s rules as both teams agreed them (funnel.definition), '
    'one row per event and stage it moves a lead from: a lead in from_stage '
    'enters to_stage on that event; in any other stage the event is '
    'otherwise (touch: no change; anomaly: listed in funnel.anomalies). '
    'captured on an unknown lead is the one way in and takes no rule.';
COMMENT ON COLUMN funnel.rules.definition IS
    'The definition''s name (funnel.definition.name).';
COMMENT ON COLUMN funnel.rules.version IS
    'The definition''s version (funnel.definition.version).';
COMMENT ON COLUMN funnel.rules.rule IS
    'The rule''s position in the definition (1 = scored, in event order).';
COMMENT ON COLUMN funnel.rules.event IS
    'The event type the rule is for.';
COMMENT ON COLUMN funnel.rules.from_stage IS
    'A stage the event moves a lead from.';
COMMENT ON COLUMN funnel.rules.to_stage IS
    'The stage the lead enters (a new visit, even when it is from_stage).';
COMMENT ON COLUMN funnel.rules.otherwise IS
    'What the event is from a stage the rule does not list: touch or '
    'anomaly.';
COMMENT ON COLUMN funnel.rules.qualify IS
    'scored only: the qualify rule, the score that moves a lead (a lower '
    'score is always a touch). NULL for the other events.';
