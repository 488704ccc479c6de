"""test_money.py: the money and feedback views (schemas/sql/008_money.sql)
against a 13-lead fixture whose numbers are worked out here by hand, the
reference data in funnel_ref loaded with \\copy as docs/analysts.md shows
(a bad row included), its role, and funnel_ref surviving a rebuild and
promote of funnel.

Histories (hours after capture; every visit ends when the next begins;
every scored event has threshold 50, model m1):

 lead channel campaign captured (UTC)  visits
 M01  web    spring   2024-03-01  captured 0, MQL 10 (85), handed_off 20
                                  (ana, 24), accepted 30, SQL 40 (EUR 1,000)
 M02  web    spring   2024-03-02  captured 0, MQL 5 (72), handed_off 10 (ana,
                                  24), accepted 12, SQL 20 (EUR 500)
 M03  web    -        2024-03-03  captured 0, MQL 1 (55), handed_off 2 (ben,
                                  24), accepted 3, SQL 4 (EUR 700), won 50
                                  (EUR 700)
 M04  events expo     2024-03-10  captured 0, scored 1 (30), MQL 5 (60),
                                  handed_off 6 (ben, 48), disqualified 10
                                  ("  No Fit ")
 M05  events expo     2024-04-05  captured 0, MQL 2 (90) and scored 2 (45,
                                  a later event_id: the tie goes to it),
                                  handed_off 3 (ana, 24), scored 3.5 (20,
                                  after the handoff), accepted 4
 M06  web    spring   2024-04-10  captured 0 (scored 0 (99), before the
                                  capture by event_id)
 M07  web    summer   2024-04-12  captured 0, scored 0 (35, after the
                                  capture by event_id), disqualified 1
                                  ("Spam")
 M08  events -        2024-04-15  captured 0, MQL 1 (81), handed_off 2 (cara,
                                  24), accepted 3, SQL 4 (EUR 300), lost 10
                                  ("Price ")
 M09  web    spring   2024-03-20  captured 0, MQL 1 (77), handed_off 2 (ana,
                                  24), nurture 10 (no_budget): never back
 M10  events expo     2024-03-05  captured 0, MQL 1 (88), handed_off 2 (ben,
                                  24), nurture 5 (not_ready), MQL 485 (70; 20
                                  days later), handed_off 500 (ana, 24),
                                  accepted 510, SQL 520 (USD 900), won 600
                                  (USD 900, 2024-03-30)
 M11  events expo     2024-03-06  captured 0, MQL 1 (65), handed_off 2 (ben,
                                  24), nurture 3 (not_ready), MQL 1443 (66;
                                  60 days later)
 M12  web    spring   2024-04-20  captured 0, MQL 1 (95), handed_off 2 (dan,
                                  24) open: breached; scored 2 (15, after
                                  the handoff by event_id)
 M13  events expo     2024-04-21  captured 0, handed_off 1 (eve, 48) open:
                                  breached, never scored

Costs (funnel_ref.campaign_costs): web/spring/2024-03 USD 100.00, web/''/
2024-03 USD 0, events/expo/2024-03 EUR 200.00, events/expo/2024-04 GBP 50.00
(no GBP rate), web/summer/2024-04 USD 30.00. Rates: EUR 2024-03 1.1.
Reporting currency USD.

Usage: test_money.py BIN_DIR   (CTest passes it; needs PostgreSQL 15)
"""

import decimal
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lf_funnel_fixture import (ACCEPTED, BIN, CAPTURED, DISQ,  # noqa: E402
                               HANDED_OFF, LOST, MQL, NURTURE, SQL, WON,
                               Postgres, fail, fixture_sql, migrate, psql)

checks = 0


def expect(what, got, want):
    global checks
    checks += 1
    if got != want:
        fail("%s:\n  got  %r\n  want %r" % (what, got, want))


def rows(sql, **kw):
    return [tuple(r) for r in psql(sql, **kw)]


def ho(owner, sla):
    return {"owner": owner, "sla_hours": sla}


def won(amount, currency):
    return {"amount_minor": amount, "currency": currency}


MONEY = [
    ("M01", "web", "spring", "2024-03-01T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 10, {}), (HANDED_OFF, 20, ho("ana", 24)),
        (ACCEPTED, 30, {"owner": "ana"}), (SQL, 40, {})]),
    ("M02", "web", "spring", "2024-03-02T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 5, {}), (HANDED_OFF, 10, ho("ana", 24)),
        (ACCEPTED, 12, {"owner": "ana"}), (SQL, 20, {})]),
    ("M03", "web", None, "2024-03-03T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 1, {}), (HANDED_OFF, 2, ho("ben", 24)),
        (ACCEPTED, 3, {"owner": "ben"}), (SQL, 4, {}),
        (WON, 50, won(70000, "EUR"))]),
    ("M04", "events", "expo", "2024-03-10T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 5, {}), (HANDED_OFF, 6, ho("ben", 48)),
        (DISQ, 10, {"reason": "  No Fit "})]),
    ("M05", "events", "expo", "2024-04-05T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 2, {}), (HANDED_OFF, 3, ho("ana", 24)),
        (ACCEPTED, 4, {"owner": "ana"})]),
    ("M06", "web", "spring", "2024-04-10T00:00:00", [(CAPTURED, 0, {})]),
    ("M07", "web", "summer", "2024-04-12T00:00:00", [
        (CAPTURED, 0, {}), (DISQ, 1, {"reason": "Spam"})]),
    ("M08", "events", None, "2024-04-15T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 1, {}), (HANDED_OFF, 2, ho("cara", 24)),
        (ACCEPTED, 3, {"owner": "cara"}), (SQL, 4, {}),
        (LOST, 10, {"reason": "Price "})]),
    ("M09", "web", "spring", "2024-03-20T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 1, {}), (HANDED_OFF, 2, ho("ana", 24)),
        (NURTURE, 10, {"reason": "no_budget", "note": None})]),
    ("M10", "events", "expo", "2024-03-05T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 1, {}), (HANDED_OFF, 2, ho("ben", 24)),
        (NURTURE, 5, {"reason": "not_ready", "note": None}),
        (MQL, 485, {}), (HANDED_OFF, 500, ho("ana", 24)),
        (ACCEPTED, 510, {"owner": "ana"}), (SQL, 520, {}),
        (WON, 600, won(90000, "USD"))]),
    ("M11", "events", "expo", "2024-03-06T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 1, {}), (HANDED_OFF, 2, ho("ben", 24)),
        (NURTURE, 3, {"reason": "not_ready", "note": None}),
        (MQL, 1443, {})]),
    ("M12", "web", "spring", "2024-04-20T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 1, {}), (HANDED_OFF, 2, ho("dan", 24))]),
    ("M13", "events", "expo", "2024-04-21T00:00:00", [
        (CAPTURED, 0, {}), (HANDED_OFF, 1, ho("eve", 48))]),
]

# The scores of the MQL events (event id = lead-e<visit>), and the scored
# events that move nothing: (event_id, lead, occurred_at, score).
SCORES = {"M01-e2": 85, "M02-e2": 72, "M03-e2": 55, "M04-e2": 60,
          "M05-e2": 90, "M08-e2": 81, "M09-e2": 77, "M10-e2": 88,
          "M10-e5": 70, "M11-e2": 65, "M11-e5": 66, "M12-e2": 95}
EXTRA_SCORES = [("M04-s1", "M04", "2024-03-10T01:00:00Z", 30),
                ("M05-x", "M05", "2024-04-05T02:00:00Z", 45),
                ("M05-z", "M05", "2024-04-05T03:30:00Z", 20),
                # Ties with the capture and the first handoff, decided by
                # event_id: M06-0 comes before its capture M06-e1, M07-s
                # after its capture M07-e1, M12-z after its handoff M12-e3.
                ("M06-0", "M06", "2024-04-10T00:00:00Z", 99),
                ("M07-s", "M07", "2024-04-12T00:00:00Z", 35),
                ("M12-z", "M12", "2024-04-20T02:00:00Z", 15)]
# The opportunities of the qualified events.
OPPORTUNITIES = {"M01-e5": 100000, "M02-e5": 50000, "M03-e5": 70000,
                 "M08-e5": 30000, "M10-e8": 90000}
OPP_CURRENCY = {"M10-e8": "USD"}


def money_sql():
    out = [fixture_sql(MONEY)]
    for eid, score in SCORES.items():
        out.append("UPDATE funnel.events SET payload = '%s' WHERE event_id "
                   "= '%s';" % (json.dumps({"score": score, "threshold": 50,
                                            "model": "m1"}), eid))
    for n, (eid, lead, at, score) in enumerate(EXTRA_SCORES):
        out.append(
            "INSERT INTO funnel.events (event_id, lead_id, type, occurred_at,"
            " source, payload, topic, partition, \"offset\") VALUES ('%s', "
            "'%s', 'scored', '%s', 'fixture', '%s', 'lead-events', 1, %d);"
            % (eid, lead, at, json.dumps({"score": score, "threshold": 50,
                                          "model": "m1"}), n))
    for eid, amount in OPPORTUNITIES.items():
        lead = eid.split("-")[0]
        cur = OPP_CURRENCY.get(eid, "EUR")
        out.append("UPDATE funnel.events SET payload = '%s' WHERE event_id "
                   "= '%s';" % (json.dumps({"opportunity_id": "opp-" + lead,
                                            "amount_minor": amount,
                                            "currency": cur}), eid))
    # funnel.leads' opportunity: that of the latest qualified event.
    out.append("""
        UPDATE funnel.leads AS l SET opportunity_id = q.o ->> 'opportunity_id',
            opportunity_amount_minor = (q.o ->> 'amount_minor')::bigint,
            opportunity_currency = q.o ->> 'currency'
        FROM (SELECT DISTINCT ON (lead_id) lead_id, payload AS o
              FROM funnel.events WHERE type = 'qualified'
              ORDER BY lead_id, occurred_at DESC, event_id DESC) AS q
        WHERE q.lead_id = l.lead_id;""")
    return "\n".join(out)



COSTS_CSV = """channel,campaign,month,amount_minor,currency,note
web,spring,2024-03-01,10000,USD,spring ads
web,,2024-03-01,0,USD,"no spend, said so"
events,expo,2024-03-01,20000,EUR,stand
events,expo,2024-04-01,5000,GBP,
web,summer,2024-04-01,3000,USD,
"""
RATES_CSV = """currency,month,rate
EUR,2024-03-01,1.1
"""
# psql's own \copy ... csv header, as the analysts' doc shows: an empty
# campaign arrives as NULL and is stored as ''.
COPY_COSTS = "\\copy funnel_ref.campaign_costs FROM '%s' csv header"
COPY_RATES = "\\copy funnel_ref.fx_rates FROM '%s' csv header"

pg = Postgres()
migrate()
psql(money_sql())
tmp = tempfile.mkdtemp(prefix="leadflow-money.")


def csv_file(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


psql("""CREATE ROLE mops LOGIN; GRANT leadflow_marketing_ops TO mops;
        CREATE ROLE alice LOGIN; GRANT leadflow_analyst TO alice;""")

# ---- loading the reference data (as docs/analysts.md shows) ---------------
# A bad row (a negative amount) refuses the whole file: nothing is loaded,
# and the error names the constraint and the line.
bad = csv_file("bad.csv", COSTS_CSV + "web,spring,2024-05-01,-5,USD,typo\n")
rc, _, err = psql(COPY_COSTS % bad, user="mops", check=False)
expect("a bad row fails the \\copy", rc != 0, True)
expect("the error names the constraint",
       "campaign_costs_amount_check" in err, True)
expect("the error names the line", "line 7" in err, True)
expect("nothing of the bad file is loaded",
       rows("SELECT count(*) FROM funnel_ref.campaign_costs"), [("0",)])
for name, line, check in [
        ("mid-month", "web,x,2024-05-15,1,USD,", "campaign_costs_month_check"),
        ("lower-case currency", "web,x,2024-05-01,1,usd,",
         "campaign_costs_currency_check")]:
    bad = csv_file("bad.csv", COSTS_CSV.splitlines()[0] + "\n" + line + "\n")
    rc, _, err = psql(COPY_COSTS % bad, user="mops", check=False)
    expect("%s refused by %s" % (name, check), rc != 0 and check in err, True)
bad = csv_file("bad.csv", "currency,month,rate\nEUR,2024-03-01,0\n")
rc, _, err = psql(COPY_RATES % bad, user="mops", check=False)
expect("a zero rate is refused", rc != 0 and "fx_rates_rate_check" in err,
       True)
psql(COPY_COSTS % csv_file("costs.csv", COSTS_CSV), user="mops")
psql(COPY_RATES % csv_file("rates.csv", RATES_CSV), user="mops")
psql("INSERT INTO funnel_ref.settings (reporting_currency) VALUES ('USD') "
     "ON CONFLICT (id) DO UPDATE SET reporting_currency = "
     "EXCLUDED.reporting_currency", user="mops")
rc, _, err = psql("DELETE FROM funnel_ref.settings", user="mops", check=False)
expect("marketing ops may upsert the settings row, not delete it",
       rc != 0 and "permission denied" in err, True)
expect("costs loaded, '' for no campaign", rows(
    "SELECT channel, campaign, month, amount_minor, currency, note FROM "
    "funnel_ref.campaign_costs ORDER BY 1, 2, 3"), [
    ("events", "expo", "2024-03-01", "20000", "EUR", "stand"),
    ("events", "expo", "2024-04-01", "5000", "GBP", None),
    ("web", "", "2024-03-01", "0", "USD", "no spend, said so"),
    ("web", "spring", "2024-03-01", "10000", "USD", "spring ads"),
    ("web", "summer", "2024-04-01", "3000", "USD", None)])
# The same key twice is refused too (reload: TRUNCATE first, or DELETE
# the months being replaced).
rc, _, err = psql(COPY_RATES % csv_file("rates.csv", RATES_CSV), user="mops",
                  check=False)
expect("a duplicate key is refused", rc != 0 and "fx_rates_pkey" in err, True)
expect("settings: one row, USD", rows(
    "SELECT reporting_currency FROM funnel_ref.settings"), [("USD",)])
rc, _, err = psql("INSERT INTO funnel_ref.settings VALUES (false, 'EUR')",
                  check=False)
expect("settings keep one row", rc != 0, True)

# ---- roles ---------------------------------------------------------------


def refused(what, sql, user):
    global checks
    checks += 1
    rc, _, err = psql(sql, user=user, check=False)
    if rc == 0 or "42501" not in err:
        fail("%s: not refused with 42501 (rc %d): %s" % (what, rc, err))


psql("UPDATE funnel_ref.settings SET reporting_currency = 'USD'", user="mops")
psql("DELETE FROM funnel_ref.fx_rates WHERE currency = 'XXX'", user="mops")
for t in ("leads", "events", "stage_history"):
    refused("marketing ops reads funnel.%s" % t,
            "SELECT 1 FROM funnel.%s LIMIT 1" % t, "mops")
refused("marketing ops writes funnel.events",
        "DELETE FROM funnel.events", "mops")
refused("marketing ops reads funnel.roi", "SELECT 1 FROM funnel.roi", "mops")
refused("marketing ops creates in funnel_ref",
        "CREATE TABLE funnel_ref.x (a int)", "mops")
for t in ("campaign_costs", "fx_rates", "settings"):
    expect("analyst reads funnel_ref.%s" % t, len(rows(
        "SELECT * FROM funnel_ref.%s" % t, user="alice")) > 0, True)
    refused("analyst writes funnel_ref.%s" % t,
            "DELETE FROM funnel_ref.%s" % t, "alice")
expect("analyst reads funnel.roi", rows(
    "SELECT leads FROM funnel.roi WHERE grain = 'total'", user="alice"),
    [("13",)])

# ---- documentation ---------------------------------------------------------
NEW_VIEWS = ("pipeline", "flows", "score_outcomes", "close_reasons",
             "open_sla_breaches", "recycle_response", "roi")
expect("new views and columns have COMMENTs", rows("""
    SELECT c.relname, a.attname FROM pg_class c
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
    WHERE c.relnamespace IN ('funnel'::regnamespace,
                             'funnel_ref'::regnamespace)
      AND c.relkind IN ('v', 'r')
      AND (coalesce(obj_description(c.oid, 'pg_class'), '') = ''
           OR coalesce(col_description(c.oid, a.attnum), '') = '')"""), [])
for v in NEW_VIEWS:
    expect("funnel.%s is funnel.%s_filtered(NULL, NULL, NULL)" % (v, v),
           rows("SELECT count(*) FROM (SELECT * FROM funnel.%s EXCEPT ALL "
                "SELECT * FROM funnel.%s_filtered(NULL, NULL, NULL)) x"
                % (v, v)), [("0",)])
# docs/analysts.md repeats every view's definition word for word.
SRC = os.environ.get("LEADFLOW_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
with open(os.path.join(SRC, "docs", "analysts.md")) as f:
    doc = " ".join(f.read().split())
for v in NEW_VIEWS:
    (comment,), = rows("SELECT obj_description('funnel.%s'::regclass, "
                       "'pg_class')" % v)
    expect("docs/analysts.md has the COMMENT of funnel.%s" % v,
           " ".join(comment.split()) in doc, True)

# ---- pipeline ---------------------------------------------------------------
# Now in sales_qualified: M01, M02 (ana, web, spring, EUR 1,000 + 500).
# Won: M03 (ben, web, no campaign, EUR 700), M10 (ana, events, expo, USD
# 900). Totals per currency.
expect("pipeline", rows("""
    SELECT * FROM funnel.pipeline
    ORDER BY channel IS NULL, currency, owner, channel"""), [
    ("ana", "web", "spring", "EUR", "2", "150000", "0", "0"),
    ("ben", "web", None, "EUR", "0", "0", "1", "70000"),
    ("ana", "events", "expo", "USD", "0", "0", "1", "90000"),
    (None, None, None, "EUR", "2", "150000", "1", "70000"),
    (None, None, None, "USD", "0", "0", "1", "90000")])
expect("pipeline_filtered(only_channel events)", rows("""
    SELECT owner, currency, open_opportunities, won, won_amount_minor
    FROM funnel.pipeline_filtered(NULL, NULL, 'events')
    ORDER BY owner NULLS LAST"""), [
    ("ana", "USD", "0", "1", "90000"), (None, "USD", "0", "1", "90000")])

# ---- flows ------------------------------------------------------------------
# Per month (entered, exited, open at the end), from the histories above.
FLOWS = {
    "2024-03-01": {CAPTURED: (7, 7, 0), MQL: (8, 8, 0), HANDED_OFF: (8, 8, 0),
                   ACCEPTED: (4, 4, 0), SQL: (4, 2, 2), WON: (2, 0, 2),
                   LOST: (0, 0, 0), NURTURE: (3, 1, 2), DISQ: (1, 0, 1)},
    "2024-04-01": {CAPTURED: (6, 5, 1), MQL: (3, 3, 0), HANDED_OFF: (4, 2, 2),
                   ACCEPTED: (2, 1, 1), SQL: (1, 1, 2), WON: (0, 0, 2),
                   LOST: (1, 0, 1), NURTURE: (0, 0, 2), DISQ: (1, 0, 2)},
    "2024-05-01": {CAPTURED: (0, 0, 1), MQL: (1, 0, 1), HANDED_OFF: (0, 0, 2),
                   ACCEPTED: (0, 0, 1), SQL: (0, 0, 2), WON: (0, 0, 2),
                   LOST: (0, 0, 1), NURTURE: (0, 1, 1), DISQ: (0, 0, 2)},
}
want = []
for month, stages in FLOWS.items():
    for stage in (CAPTURED, MQL, HANDED_OFF, ACCEPTED, SQL, WON, LOST,
                  NURTURE, DISQ):
        want.append((month, stage) + tuple(str(n) for n in stages[stage]))
expect("flows (monthly)", rows("""
    SELECT period_start, stage, entered, exited, open_at_end
    FROM funnel.flows ORDER BY period_start, stage_order"""), want)
expect("flows period_end", rows(
    "SELECT DISTINCT period_start, period_end FROM funnel.flows ORDER BY 1"),
    [("2024-03-01", "2024-04-01"), ("2024-04-01", "2024-05-01"),
     ("2024-05-01", "2024-06-01")])
# ISO week of Monday 2024-03-04, events only: M10 (captured 03-05, to
# nurture the same day), M11 (03-06, to nurture), M04 (Sunday 03-10,
# disqualified the same day).
expect("flows_by week, one week, events", rows("""
    SELECT period_start, period_end, stage, entered, exited, open_at_end
    FROM funnel.flows_by('week', '2024-03-06', '2024-03-10', 'events')
    WHERE entered + exited + open_at_end > 0"""), [
    ("2024-03-04", "2024-03-11", CAPTURED, "3", "3", "0"),
    ("2024-03-04", "2024-03-11", MQL, "3", "3", "0"),
    ("2024-03-04", "2024-03-11", HANDED_OFF, "3", "3", "0"),
    ("2024-03-04", "2024-03-11", NURTURE, "2", "0", "2"),
    ("2024-03-04", "2024-03-11", DISQ, "1", "0", "1")])
expect("flows_by quarter", rows("""
    SELECT period_start, stage, entered, exited, open_at_end
    FROM funnel.flows_by('quarter', NULL, NULL, NULL)
    WHERE stage IN ('captured', 'nurture')"""), [
    ("2024-01-01", CAPTURED, "7", "7", "0"),
    ("2024-01-01", NURTURE, "3", "1", "2"),
    ("2024-04-01", CAPTURED, "6", "5", "1"),
    ("2024-04-01", NURTURE, "0", "1", "1")])
# A day: M01's MQL entered 2024-03-01 10:00 and is left the next day at
# 20:00... no: handed off 2024-03-01 20:00; M02 captured 03-02.
expect("flows_by day", rows("""
    SELECT period_start, stage, entered, exited, open_at_end
    FROM funnel.flows_by('day', '2024-03-01', '2024-03-01', 'web')
    WHERE entered + exited + open_at_end > 0"""), [
    ("2024-03-01", CAPTURED, "1", "1", "0"),
    ("2024-03-01", MQL, "1", "1", "0"),
    ("2024-03-01", HANDED_OFF, "1", "0", "1")])
rc, _, err = psql("SELECT * FROM funnel.flows_by('year')", check=False)
expect("flows_by refuses another grain",
       rc != 0 and "grain must be day, week, month or quarter" in err, True)
expect("flows_by takes its grain in any case", rows(
    "SELECT count(*) FROM (SELECT * FROM funnel.flows_by(' Week ', NULL, "
    "NULL, NULL) EXCEPT ALL SELECT * FROM funnel.flows_by('week', NULL, "
    "NULL, NULL)) x"), [("0",)])
expect("flows_by(' Week ') has rows", rows(
    "SELECT count(*) > 0 FROM funnel.flows_by(' Week ')"), [("t",)])
expect("flows_filtered: leads captured in April", rows("""
    SELECT period_start, stage, entered FROM funnel.flows_filtered(
        '2024-04-01', '2024-04-30', NULL) WHERE stage = 'captured'"""),
    [("2024-04-01", CAPTURED, "6")])

# ---- score_outcomes ---------------------------------------------------------
# Deciding scores: M01 85, M02 72, M03 55, M04 60 (the 30 before it is
# older), M05 45 (tie at 2 h: event_id M05-x after M05-e2; the 20 after the
# handoff does not count), M08 81, M09 77, M10 88 (its 70 came after the
# first handoff), M11 65, M12 95 (its 15 at the handoff's millisecond comes
# after it), M07 35 (at its capture's millisecond, after it); M06 scored
# only before its capture (the same millisecond, a smaller event_id), M13
# handed off before any score: the model NULL row.
expect("score_outcomes", rows("""
    SELECT * FROM funnel.score_outcomes
    ORDER BY model NULLS LAST, score_band"""), [
    # model band thr leads below mql ho sa sq won nur dq acc won_rate
    ("m1", "30", "50", "1", "1", "0", "0", "0", "0", "0", "0", "1",
     None, None),                                           # M07
    ("m1", "40", "50", "1", "1", "1", "1", "1", "0", "0", "0", "0",
     "1.0000", "0.0000"),                                   # M05
    ("m1", "50", "50", "1", "0", "1", "1", "1", "1", "1", "0", "0",
     "1.0000", "1.0000"),                                   # M03
    ("m1", "60", "50", "2", "0", "2", "2", "0", "0", "0", "1", "1",
     "0.0000", "0.0000"),                                   # M04 M11
    ("m1", "70", "50", "2", "0", "2", "2", "1", "1", "0", "1", "0",
     "0.5000", "0.0000"),                                   # M02 M09
    ("m1", "80", "50", "3", "0", "3", "3", "3", "3", "1", "1", "0",
     "1.0000", "0.3333"),                                   # M01 M08 M10
    ("m1", "90", "50", "1", "0", "1", "1", "0", "0", "0", "0", "0",
     "0.0000", "0.0000"),                                   # M12
    (None, None, None, "2", "0", "0", "1", "0", "0", "0", "0", "0",
     "0.0000", "0.0000")])                                  # M06 M13
expect("score_outcomes_filtered(web)", rows("""
    SELECT model, score_band, leads FROM funnel.score_outcomes_filtered(
        NULL, NULL, 'web') ORDER BY model NULLS LAST, score_band"""), [
    ("m1", "30", "1"), ("m1", "50", "1"), ("m1", "70", "2"),
    ("m1", "80", "1"), ("m1", "90", "1"), (None, None, "1")])

# ---- close_reasons ----------------------------------------------------------
expect("close_reasons", rows("""
    SELECT * FROM funnel.close_reasons
    ORDER BY kind, breakdown, reason, owner, channel"""), [
    ("disqualified", "reason", "no fit", None, None, "1", "0.5000"),
    ("disqualified", "reason", "spam", None, None, "1", "0.5000"),
    ("disqualified", "reason, channel", "no fit", None, "events", "1",
     "0.5000"),
    ("disqualified", "reason, channel", "spam", None, "web", "1", "0.5000"),
    ("disqualified", "reason, owner", "no fit", "ben", None, "1", "0.5000"),
    ("disqualified", "reason, owner", "spam", None, None, "1", "0.5000"),
    ("lost", "reason", "price", None, None, "1", "1.0000"),
    ("lost", "reason, channel", "price", None, "events", "1", "1.0000"),
    ("lost", "reason, owner", "price", "cara", None, "1", "1.0000")])

# ---- open_sla_breaches ------------------------------------------------------
expect("open_sla_breaches, most overdue first", rows("""
    SELECT lead_id, owner, channel, campaign, handed_off_at, sla_hours,
           due_at FROM funnel.open_sla_breaches"""), [
    ("M12", "dan", "web", "spring", "2024-04-20 02:00:00+00", "24",
     "2024-04-21 02:00:00+00"),
    ("M13", "eve", "events", "expo", "2024-04-21 01:00:00+00", "48",
     "2024-04-23 01:00:00+00")])
expect("hours_overdue: now() - due_at", rows("""
    SELECT count(*) FROM funnel.open_sla_breaches
    WHERE hours_overdue = round(extract(epoch FROM now() - due_at) / 3600,
                                2)"""), [("2",)])
# A handoff due exactly now is not breached yet; one due a second ago is.
# now() is the transaction's start, so both are made in the query's
# transaction.
expect("due exactly now vs a second ago", rows("""
    BEGIN;
    INSERT INTO funnel.events VALUES
        ('N1-e1', 'N1', 'handed_off', now() - interval '24 hours', 'fixture',
         NULL, '{"owner": "fay", "sla_hours": 24}', 'lead-events', 2, 1),
        ('N2-e1', 'N2', 'handed_off',
         now() - interval '24 hours 1 second', 'fixture', NULL,
         '{"owner": "fay", "sla_hours": 24}', 'lead-events', 2, 2);
    INSERT INTO funnel.leads (lead_id, stage, stage_entered_at, cycle,
        channel, captured_at, last_event_at, last_event_id,
        stage_entered_by, visits)
    SELECT l, 'handed_off', now(), 1, 'web', now() - interval '30 hours',
           now(), l || '-e1', l || '-e1', 1 FROM unnest('{N1,N2}'::text[]) l;
    INSERT INTO funnel.stage_history (lead_id, visit, cycle, stage,
        entered_at, entered_by)
    SELECT e.lead_id, 1, 1, 'handed_off', e.occurred_at, e.event_id
    FROM funnel.events e WHERE e.lead_id IN ('N1', 'N2');
    SELECT lead_id, hours_overdue FROM funnel.open_sla_breaches
    WHERE lead_id LIKE 'N%';
    ROLLBACK;"""), [("N2", "0.00")])

# ---- recycle_response -------------------------------------------------------
# M09 no_budget: never back. M10 not_ready: back to MQL after 480 h (within
# 30 days), won later. M11 not_ready: back after 1440 h (within 90 days,
# not 30). Median of 480 and 1440: 960.
expect("recycle_response", rows("""
    SELECT * FROM funnel.recycle_response ORDER BY reason NULLS LAST"""), [
    ("no_budget", "1", "0", "0", "0", "0.0000", "0.0000", None, "0"),
    ("not_ready", "2", "2", "1", "2", "0.5000", "1.0000", "960.00", "1"),
    (None, "3", "2", "1", "2", "0.3333", "0.6667", "960.00", "1")])

# ---- roi --------------------------------------------------------------------
# Leads per (channel, campaign, capture month), costs per (channel,
# campaign, month) in USD (EUR 200.00 in March at 1.1 = 22000; GBP has no
# rate: missing). Won: M03 EUR 700.00 won in March = 77000; M10 USD 900.00.
ROI = [
    # grain channel campaign month cost leads mqls sqls won revenue
    #   cpl cpm cps cac roi missing
    ("month", "events", "", "2024-04-01", None, "1", "1", "1", "0", "0",
     None, None, None, None, None, "0"),                       # M08
    ("month", "events", "expo", "2024-03-01", "22000", "3", "3", "1", "1",
     "90000", "7333", "7333", "22000", "22000", "3.0909", "0"),
    ("month", "events", "expo", "2024-04-01", None, "2", "1", "0", "0", "0",
     None, None, None, None, None, "1"),                       # GBP
    ("month", "web", "", "2024-03-01", "0", "1", "1", "1", "1", "77000",
     "0", "0", "0", "0", None, "0"),                           # zero cost
    ("month", "web", "spring", "2024-03-01", "10000", "3", "3", "2", "0",
     "0", "3333", "3333", "5000", None, "-1.0000", "0"),
    ("month", "web", "spring", "2024-04-01", None, "2", "1", "0", "0", "0",
     None, None, None, None, None, "0"),
    ("month", "web", "summer", "2024-04-01", "3000", "1", "0", "0", "0",
     "0", "3000", None, None, None, "-1.0000", "0"),
    ("campaign", "events", "", None, None, "1", "1", "1", "0", "0", None,
     None, None, None, None, "0"),
    ("campaign", "events", "expo", None, "22000", "5", "4", "1", "1",
     "90000", "4400", "5500", "22000", "22000", "3.0909", "1"),
    ("campaign", "web", "", None, "0", "1", "1", "1", "1", "77000", "0",
     "0", "0", "0", None, "0"),
    ("campaign", "web", "spring", None, "10000", "5", "4", "2", "0", "0",
     "2000", "2500", "5000", None, "-1.0000", "0"),
    ("campaign", "web", "summer", None, "3000", "1", "0", "0", "0", "0",
     "3000", None, None, None, "-1.0000", "0"),
    ("channel", "events", None, None, "22000", "6", "5", "2", "1", "90000",
     "3667", "4400", "11000", "22000", "3.0909", "1"),
    ("channel", "web", None, None, "13000", "7", "5", "3", "1", "77000",
     "1857", "2600", "4333", "13000", "4.9231", "0"),
    ("total", None, None, None, "35000", "13", "10", "5", "2", "167000",
     "2692", "3500", "7000", "17500", "3.7714", "1"),
]
GRAIN_ORDER = "array_position('{month,campaign,channel,total}', grain)"
expect("roi", rows("""
    SELECT grain, channel, campaign, month, cost_minor, leads, mqls, sqls,
           won, won_revenue_minor, cost_per_lead, cost_per_mql,
           cost_per_sql, cac, roi, missing_rates
    FROM funnel.roi ORDER BY %s, channel, campaign, month""" % GRAIN_ORDER),
    ROI)
expect("roi currency", rows("SELECT DISTINCT currency FROM funnel.roi"),
       [("USD",)])
expect("roi_filtered(April on, web)", rows("""
    SELECT grain, cost_minor, leads, mqls, cost_per_lead, cost_per_mql, roi
    FROM funnel.roi_filtered('2024-04-01', NULL, 'web')
    WHERE grain = 'total'"""), [
    ("total", "3000", "3", "1", "1000", "3000", "-1.0000")])
# Another reporting currency: EUR. USD has no rate then: every USD amount
# is missing; EUR has rate 1.
psql("UPDATE funnel_ref.settings SET reporting_currency = 'EUR'",
     user="mops")
expect("roi in EUR", rows("""
    SELECT currency, cost_minor, won_revenue_minor, missing_rates
    FROM funnel.roi WHERE grain = 'total'"""), [
    ("EUR", "20000", "70000", "5")])  # 3 USD costs, 1 GBP, 1 USD win
# M10's USD win has no rate in EUR: its rows' revenue (and ROI) is unknown,
# not 0 (nor -100 %); events' other row won nothing: 0.
expect("roi in EUR, a win without a rate", rows("""
    SELECT grain, campaign, month, won, won_revenue_minor, roi, missing_rates
    FROM funnel.roi WHERE channel = 'events' AND grain <> 'channel'
    ORDER BY %s, campaign, month""" % GRAIN_ORDER), [
    ("month", "", "2024-04-01", "0", "0", None, "0"),
    ("month", "expo", "2024-03-01", "1", None, None, "1"),
    ("month", "expo", "2024-04-01", "0", "0", None, "1"),
    ("campaign", "", None, "0", "0", None, "0"),
    ("campaign", "expo", None, "1", None, None, "2")])
psql("UPDATE funnel_ref.settings SET reporting_currency = 'USD'",
     user="mops")
# Each amount is converted and rounded on its own, then summed: three costs
# of EUR 0.15 in March (16.5 US cents each) are 17 each, and their channel
# and total add up (51, not a rounded 49.5).
psql("INSERT INTO funnel_ref.campaign_costs (channel, campaign, month, "
     "amount_minor, currency) VALUES ('zz', 'a', '2024-03-01', 15, 'EUR'), "
     "('zz', 'b', '2024-03-01', 15, 'EUR'), ('zz', 'c', '2024-03-01', 15, "
     "'EUR')", user="mops")
expect("roi: converted amounts rounded one by one, the grains add up", rows(
    """SELECT grain, campaign, cost_minor FROM funnel.roi
       WHERE channel = 'zz' ORDER BY %s, campaign""" % GRAIN_ORDER), [
    ("month", "a", "17"), ("month", "b", "17"), ("month", "c", "17"),
    ("campaign", "a", "17"), ("campaign", "b", "17"), ("campaign", "c", "17"),
    ("channel", None, "51")])
expect("roi: the total adds the channels", rows(
    """SELECT (SELECT cost_minor FROM funnel.roi WHERE grain = 'total') =
              (SELECT sum(cost_minor) FROM funnel.roi
               WHERE grain = 'channel')"""), [("t",)])
psql("DELETE FROM funnel_ref.campaign_costs WHERE channel = 'zz'",
     user="mops")
# Minor units follow the currency (ISO 4217): JPY has none, BHD three
# (fils). JPY 1,500,000 at 0.0065 is USD 9,750.00 = 975000 cents; BHD
# 1,234.567 at 2.65 is USD 3,271.60255 = 327160 cents. In JPY as the
# reporting currency, USD 19.99 at 150 is JPY 2,998.5 = 2999 (rounded half
# away from zero), and JPY 1,500,000 stays 1500000 (migration 024)
psql("""INSERT INTO funnel_ref.fx_rates VALUES ('JPY', '2024-03-01', 0.0065),
        ('BHD', '2024-03-01', 2.65), ('USD', '2024-03-01', 150);
        DELETE FROM funnel_ref.campaign_costs WHERE channel = 'zz';
        INSERT INTO funnel_ref.campaign_costs (channel, campaign, month,
        amount_minor, currency) VALUES ('zz', 'j', '2024-03-01', 1500000,
        'JPY'), ('zz', 'b', '2024-03-01', 1234567, 'BHD'), ('zz', 'u',
        '2024-03-01', 1999, 'USD')""", user="mops")
ZZ = """SELECT campaign, currency, cost_minor FROM funnel.roi
        WHERE channel = 'zz' AND grain = 'campaign' ORDER BY campaign"""
expect("roi: JPY and BHD costs in USD, by their minor units", rows(ZZ), [
    ("b", "USD", "327160"), ("j", "USD", "975000"), ("u", "USD", "1999")])
psql("UPDATE funnel_ref.settings SET reporting_currency = 'JPY'",
     user="mops")
# (the rates are read as JPY per unit then: BHD 1,234.567 at 2.65 is
# JPY 3,271.6 = 3272)
expect("roi: in JPY, by the minor units of each", rows(ZZ), [
    ("b", "JPY", "3272"), ("j", "JPY", "1500000"), ("u", "JPY", "2999")])
psql("UPDATE funnel_ref.settings SET reporting_currency = 'USD'",
     user="mops")
psql("""UPDATE funnel.leads SET account_id = 'acme', currency = 'JPY',
        won_amount_minor = 1500000 WHERE lead_id = 'M03'""")
expect("accounts: a JPY win in USD, by its minor units", rows(
    """SELECT won_revenue_reporting_minor FROM funnel.accounts
       WHERE account_id = 'acme'"""), [("975000",)])
psql("""UPDATE funnel.leads SET account_id = NULL, currency = 'EUR',
        won_amount_minor = 70000 WHERE lead_id = 'M03'""")
psql("""DELETE FROM funnel_ref.fx_rates WHERE currency IN ('JPY', 'BHD',
        'USD'); DELETE FROM funnel_ref.campaign_costs WHERE channel = 'zz'""",
     user="mops")
expect("funnel.currency_exponent", rows(
    """SELECT funnel.currency_exponent(c) FROM unnest(ARRAY['JPY', 'KRW',
       'BHD', 'KWD', 'CLF', 'USD', 'EUR']) AS c"""),
    [("0",), ("0",), ("3",), ("3",), ("4",), ("2",), ("2",)])

# ---- accounts: revenue in the reporting currency ---------------------------
# M03 (won EUR 700.00 in March: 77000 USD) is acme's, M10 (won USD 900.00)
# initech's, M01 (not won) globex's. The average per account is over the
# accounts that won: (77000 + 90000) / 2.
psql("""UPDATE funnel.leads SET account_id = CASE lead_id WHEN 'M03' THEN
        'acme' WHEN 'M10' THEN 'initech' WHEN 'M01' THEN 'globex' END""")
ACCOUNTS_SQL = """
    SELECT account_id, won, won_revenue_reporting_minor,
           avg_won_revenue_per_account_minor, missing_rates
    FROM funnel.accounts ORDER BY account_id NULLS LAST"""
expect("accounts in USD", rows(ACCOUNTS_SQL), [
    ("acme", "1", "77000", "83500", "0"),
    ("globex", "0", "0", "83500", "0"),
    ("initech", "1", "90000", "83500", "0"),
    (None, "0", "0", "83500", "0")])
# In EUR: acme's EUR at rate 1, initech's USD has no rate (missing): its
# revenue is unknown, and the average is over the accounts whose is known.
psql("UPDATE funnel_ref.settings SET reporting_currency = 'EUR'",
     user="mops")
expect("accounts in EUR", rows(ACCOUNTS_SQL), [
    ("acme", "1", "70000", "70000", "0"),
    ("globex", "0", "0", "70000", "0"),
    ("initech", "1", None, "70000", "1"),
    (None, "0", "0", "70000", "0")])
psql("UPDATE funnel_ref.settings SET reporting_currency = 'USD'",
     user="mops")
psql("UPDATE funnel.leads SET account_id = NULL")

# ---- amounts at the contract's limit -----------------------------------------
# The contract takes any amount up to 2^63 - 1 minor units: two open ones in
# EUR, a won EUR one converted at 1.1 and a won USD one sum past bigint. The
# views give the exact sums (migration 021), and the report runs.
BIG = 2 ** 63 - 1
REVENUE = "SELECT won_revenue_minor FROM funnel.roi WHERE grain = 'total'"
revenue = int(rows(REVENUE)[0][0])
psql("""UPDATE funnel.leads SET opportunity_amount_minor = %d
        WHERE lead_id IN ('M01', 'M02');
        UPDATE funnel.leads SET won_amount_minor = %d
        WHERE lead_id IN ('M03', 'M10');
        UPDATE funnel.leads SET account_id = 'acme'
        WHERE lead_id IN ('M03', 'M10')""" % (BIG, BIG))
expect("pipeline: open amounts past bigint", rows(
    """SELECT open_amount_minor FROM funnel.pipeline
       WHERE owner IS NULL AND currency = 'EUR'"""), [(str(2 * BIG),)])
# M03's EUR 700.00 (77000 US cents) becomes round(BIG * 1.1) =
# 10145709240540253388 (.7 rounded up), M10's USD 900.00 becomes BIG.
expect("roi: won revenue past bigint", rows(REVENUE),
       [(str(revenue - 77000 - 90000 + 10145709240540253388 + BIG),)])
expect("accounts: revenue past bigint", rows(
    """SELECT won_revenue_reporting_minor FROM funnel.accounts
       WHERE account_id = 'acme'"""), [(str(10145709240540253388 + BIG),)])
p = subprocess.run([os.path.join(BIN, "leadflow-report"), "-f", "csv"],
                   capture_output=True, text=True)
expect("the report runs with amounts past bigint", (p.returncode, p.stderr),
       (0, ""))
expect("the report shows the pipeline's sum", str(2 * BIG) in p.stdout,
       True)
# ... and its JSON as exact numbers too (a double would round them)
p = subprocess.run([os.path.join(BIN, "leadflow-report"), "-f", "json"],
                   capture_output=True, text=True)
doc = json.loads(p.stdout, parse_float=decimal.Decimal)
totals = [r for r in doc["pipeline"] if r["source"] is None
          and r["currency"] == "EUR"]  # the total row of EUR
expect("JSON: the pipeline's sum past 2^63, exact",
       [r["open_amount_minor"] for r in totals], [2 * BIG])
expect("JSON: the accounts' revenue past 2^63, exact", [
    r["won_revenue_reporting_minor"] for r in doc["accounts_by_leads"]
    if r.get("account_id") == "acme"], [10145709240540253388 + BIG])
psql("""UPDATE funnel.leads SET opportunity_amount_minor = CASE lead_id
        WHEN 'M01' THEN 100000 ELSE 50000 END WHERE lead_id IN ('M01', 'M02');
        UPDATE funnel.leads SET won_amount_minor = CASE lead_id
        WHEN 'M03' THEN 70000 ELSE 90000 END WHERE lead_id IN ('M03', 'M10');
        UPDATE funnel.leads SET account_id = NULL""")
for v in ("pipeline", "roi", "accounts"):
    rows("SELECT count(*) FROM funnel.%s" % v, user="alice")
    rows("SELECT count(*) FROM funnel.%s_filtered(NULL, NULL, NULL)" % v,
         user="alice")

# ---- funnel_ref survives a rebuild and promote of funnel --------------------
before = rows("SELECT * FROM funnel.roi ORDER BY 1, 2, 3, 4")
p = subprocess.run([os.path.join(BIN, "leadflow-replay"), "rebuild",
                    "--into", "r_money", "--from-db", "-q"],
                   capture_output=True, text=True)
if p.returncode:
    fail("leadflow-replay rebuild exited %d: %s" % (p.returncode, p.stderr))
expect("a rebuild leaves funnel_ref alone", rows(
    "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'r_money%'"),
    [("1",)])
p = subprocess.run([os.path.join(BIN, "leadflow-replay"), "promote",
                    "r_money", "--no-group-check", "-q"],
                   capture_output=True, text=True)
if p.returncode:
    fail("leadflow-replay promote exited %d: %s" % (p.returncode, p.stderr))
expect("funnel_ref after promote", rows(
    "SELECT count(*) FROM funnel_ref.campaign_costs UNION ALL "
    "SELECT count(*) FROM funnel_ref.fx_rates"), [("5",), ("1",)])
expect("funnel.roi reads funnel_ref after promote, same numbers",
       rows("SELECT * FROM funnel.roi ORDER BY 1, 2, 3, 4"), before)
for v in NEW_VIEWS:
    rows("SELECT count(*) FROM funnel.%s" % v, user="alice")
expect("analyst still reads funnel.roi after promote", rows(
    "SELECT leads FROM funnel.roi WHERE grain = 'total'", user="alice"),
    [("13",)])

# A funnel schema dropped and migrated again: the reference data stays.
psql("DROP SCHEMA funnel CASCADE")
migrate()
expect("funnel_ref kept when funnel is migrated again", rows(
    "SELECT (SELECT count(*) FROM funnel_ref.campaign_costs), "
    "(SELECT count(*) FROM funnel_ref.settings), "
    "(SELECT cost_minor FROM funnel.roi WHERE grain = 'total')"),
    [("5", "1", "35000")])

print("ok   test_money: %d checks" % checks)
