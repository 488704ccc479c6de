"""test_identity_views.py: the analysts' views with merged leads, voided
events and erasures (schemas/sql/010_identity_views.sql), against rows
written straight into the tables as the projector would leave them (no
Kafka, no projector), numbers worked out here by hand.

Histories (hours after capture; fixture scores: the MQL events score 80,
threshold 50, model m1):

 lead channel captured (UTC)     visits
 I01  web     2024-05-01 00:00   captured 0, MQL 10 (80), handed_off 20
                                 (ana), accepted 30
 I03  web     2024-05-02 00:00   captured 0, MQL 5 (80), handed_off 10 (ben)
 I04  events  2024-05-03 00:00   captured 0, MQL 2 (80)

Identity events (times from I01's capture unless said):
 I02 merged into I01 at 40 (counts): I02's scored events are I01's:
     I02-s0 on 2024-04-01 (5: before I01's capture, not its),
     I02-s 15 (95: I01's deciding score), I02-s2 25 (10: after the handoff)
 I02 merged into I03 at 50: another target, an anomaly (kind merge, I01)
 I01-s 18 (60), voided by I02-v (I02 is I01: the same person, counts)
 I03-s at I03 + 8 (30), voided by I03-v (counts): I03 stays at 80
 I04-v voids I02-s: another person's event, an anomaly (kind void, I04);
     I02-s still counts
 Erased: P (merged into I03) and Q (never captured, no lead row)
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lf_funnel_fixture import (ACCEPTED, CAPTURED, HANDED_OFF,  # noqa: E402
                               MQL, SRC, Postgres, fail, fixture_sql, lit,
                               migrate, psql)

checks = 0


def expect(what, got, want):
    global checks
    checks += 1
    if got != want:
        fail("%s:\n  got  %r\n  want %r" % (what, got, want))


def rows(sql):
    return [tuple(r) for r in psql(sql)]


P = "erased:00112233445566778899aabbccddeeff"
Q = "erased:ffeeddccbbaa99887766554433221100"
IDENT = [
    ("I01", "web", "spring", "2024-05-01T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 10, {}),
        (HANDED_OFF, 20, {"owner": "ana", "sla_hours": 24}),
        (ACCEPTED, 30, {"owner": "ana"})]),
    ("I03", "web", None, "2024-05-02T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 5, {}),
        (HANDED_OFF, 10, {"owner": "ben", "sla_hours": 24})]),
    ("I04", "events", "expo", "2024-05-03T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 2, {})]),
]


def score(n):
    return {"score": n, "threshold": 50, "model": "m1"}


# (event_id, lead, type, occurred_at, payload)
EVENTS = [
    ("I02-s0", "I02", "scored", "2024-04-01T00:00:00Z", score(5)),
    ("I02-s", "I02", "scored", "2024-05-01T15:00:00Z", score(95)),
    ("I02-s2", "I02", "scored", "2024-05-02T01:00:00Z", score(10)),
    ("I02-m", "I02", "merged", "2024-05-02T16:00:00Z",
     {"into_lead_id": "I01"}),
    ("I02-m2", "I02", "merged", "2024-05-03T02:00:00Z",
     {"into_lead_id": "I03"}),
    ("I01-s", "I01", "scored", "2024-05-01T18:00:00Z", score(60)),
    ("I02-v", "I02", "voided", "2024-05-02T20:00:00Z",
     {"voided_event_id": "I01-s", "reason": "duplicate form"}),
    ("I03-s", "I03", "scored", "2024-05-02T08:00:00Z", score(30)),
    ("I03-v", "I03", "voided", "2024-05-02T12:00:00Z",
     {"voided_event_id": "I03-s", "reason": "test lead"}),
    ("I04-v", "I04", "voided", "2024-05-03T05:00:00Z",
     {"voided_event_id": "I02-s", "reason": "wrong lead"}),
    ("P-m", P, "merged", "2024-05-02T03:00:00Z", {"into_lead_id": "I03"}),
    ("P-x", P, "erased", "2024-05-04T00:00:00Z", {"request_id": "DSR-1"}),
    ("Q-x", Q, "erased", "2024-05-04T01:00:00Z", {"request_id": "DSR-2"}),
]


def identity_sql():
    out = [fixture_sql(IDENT)]
    for n, (eid, lead, etype, at, payload) in enumerate(EVENTS):
        out.append(
            "INSERT INTO funnel.events (event_id, lead_id, type, occurred_at,"
            " source, payload, topic, partition, \"offset\") VALUES (%s, %s, "
            "%s, %s, 'fixture', %s, 'lead-events', 1, %d);" % (
                lit(eid), lit(lead), lit(etype), lit(at),
                lit(json.dumps(payload)), n))
    out.append("""
        INSERT INTO funnel.merges VALUES
            ('I02', 'I01', 'I01', '2024-05-02T16:00:00Z', 'I02-m'),
            (%(p)s, 'I03', 'I03', '2024-05-02T03:00:00Z', 'P-m');
        INSERT INTO funnel.anomalies (event_id, lead_id, kind, reason) VALUES
            ('I02-m2', 'I01', 'merge', 'merged into another target'),
            ('I04-v', 'I04', 'void', 'the voided event is another lead''s');
        INSERT INTO funnel.erasures VALUES
            ('P-x', %(p)s, 'DSR-1', '2024-05-04T00:00:00Z'),
            ('Q-x', %(q)s, 'DSR-2', '2024-05-04T01:00:00Z');
        INSERT INTO funnel.erased_leads VALUES (%(p)s), (%(q)s);"""
               % {"p": lit(P), "q": lit(Q)})
    return "\n".join(out)


pg = Postgres()
migrate()
psql(identity_sql())

# ---- the fixture as the projector's views see it ---------------------------
expect("voided_events: the same person's voids only", rows(
    "SELECT event_id, surviving_lead_id, voided_by FROM funnel.voided_events "
    "ORDER BY 1"), [("I01-s", "I01", "I02-v"), ("I03-s", "I03", "I03-v")])

# ---- score_outcomes -------------------------------------------------------
# I01: its own 80 (10 h) and 60 (18 h, voided) and I02's 95 (15 h; the 5
# before its capture and the 10 after its handoff do not count): 95.
# I03: 30 voided, so its 80. I04: 80, never handed off.
expect("score_outcomes", rows("""
    SELECT * FROM funnel.score_outcomes
    ORDER BY model NULLS LAST, score_band"""), [
    # model band thr leads below mql ho sa sq won nur dq acc won_rate
    ("m1", "80", "50", "2", "0", "2", "1", "0", "0", "0", "0", "0",
     "0.0000", "0.0000"),                                   # I03 I04
    ("m1", "90", "50", "1", "0", "1", "1", "1", "0", "0", "0", "0",
     "1.0000", "0.0000")])                                  # I01
expect("score_outcomes_filtered(events)", rows("""
    SELECT model, score_band, leads, handed_off, acceptance_rate
    FROM funnel.score_outcomes_filtered(NULL, NULL, 'events')"""),
    [("m1", "80", "1", "0", None)])
# The deciding scores again, straight from funnel.counted_events.
expect("deciding scores = counted_events' rule", rows("""
    SELECT d.score, count(*) FROM (
        SELECT DISTINCT ON (l.lead_id) l.lead_id,
               (c.payload ->> 'score')::integer AS score
        FROM funnel.leads AS l
        JOIN funnel.counted_events AS c
          ON c.surviving_lead_id = l.lead_id AND c.type = 'scored'
         AND c.occurred_at >= l.captured_at
         AND (l.first_handed_off_at IS NULL
              OR c.occurred_at <= l.first_handed_off_at)
        ORDER BY l.lead_id, c.occurred_at DESC, c.event_id DESC) AS d
    GROUP BY 1 ORDER BY 1"""), [("80", "2"), ("95", "1")])

# ---- identity_summary -----------------------------------------------------
# Unfiltered: everything. Filtered by surviving lead: web holds I01 and I03
# (both merges, both voids, P's erasure through its merge into I03, the
# merge anomaly under I01); events holds I04 (the void anomaly). Q has no
# lead: only the unfiltered row counts it.
COLS = "merges, voided_events, erasures, merge_anomalies, void_anomalies"
expect("identity_summary", rows(
    "SELECT %s FROM funnel.identity_summary" % COLS),
    [("2", "2", "2", "1", "1")])
expect("identity_summary_filtered(web)", rows(
    "SELECT %s FROM funnel.identity_summary_filtered(NULL, NULL, 'web')"
    % COLS), [("2", "2", "1", "1", "0")])
expect("identity_summary_filtered(events)", rows(
    "SELECT %s FROM funnel.identity_summary_filtered(NULL, NULL, 'events')"
    % COLS), [("0", "0", "0", "0", "1")])
expect("identity_summary_filtered(May 2)", rows(
    "SELECT %s FROM funnel.identity_summary_filtered('2024-05-02', "
    "'2024-05-02', NULL)" % COLS), [("1", "1", "1", "0", "0")])

# ---- documentation --------------------------------------------------------
# docs/analysts.md repeats the COMMENTs of the views this migration changes.
with open(os.path.join(SRC, "docs", "analysts.md")) as f:
    doc = " ".join(f.read().split())
for v in ("score_outcomes", "identity_summary"):
    (comment,), = rows("SELECT obj_description('funnel.%s'::regclass, "
                       "'pg_class')" % v)
    expect("docs/analysts.md has the COMMENT of funnel.%s" % v,
           " ".join(comment.split()) in doc, True)
psql("CREATE ROLE alice LOGIN; GRANT leadflow_analyst TO alice;")
expect("the analyst reads identity_summary", [tuple(r) for r in psql(
    "SELECT merges FROM funnel.identity_summary_filtered(NULL, NULL, NULL)",
    user="alice")], [("2",)])

print("ok: %d checks" % checks)
