"""lf_funnel_fixture.py: a throwaway PostgreSQL with the funnel schema and a
hand-made funnel of 13 leads whose numbers the view and report tests work
out by hand. Imported by test_views.py, test_roles.py and test_report.py.

The fixture is written straight into funnel.events, funnel.stage_history and
funnel.leads (no Kafka, no projector): each lead is a list of stage visits,
and the rows are derived from that list the way the projector's state
machine would write them (the funnel table in README.md), so the three
tables agree.

Histories (hours after capture; every visit ends when the next begins):

 lead channel campaign captured (UTC)   visits
 L01  web    spring   2024-01-05 00:00  captured 0, MQL 10, handed_off 20
                                        (ana, SLA 24), accepted 30 (ana),
                                        SQL 50, won 100 (EUR 5,000.00)
 L02  web    spring   2024-01-10 00:00  captured 0, MQL 20, handed_off 40
                                        (ben, 24), accepted 70 (ben), SQL 90,
                                        lost 130 ("price")
 L03  web    -        2024-01-15 00:00  captured 0, MQL 5, handed_off 15
                                        (ana, 24), nurture 35 (no_budget)
 L04  events expo     2024-01-20 00:00  captured 0, MQL 30
 L05  events expo     2024-01-25 00:00  captured 0
 L12  web    -        2024-01-31 23:30  captured 0   (a January lead in UTC,
                                        February in any zone east of UTC)
 L06  events expo     2024-02-03 00:00  captured 0, handed_off 8 (ben, 48),
                                        accepted 20 (cara), nurture 40
                                        (not_ready), MQL 100 (cycle 2),
                                        handed_off 110 (ana, 24), accepted
                                        140 (ana), SQL 150, won 200
                                        (USD 2,500.00)
 L07  web    spring   2024-02-10 00:00  captured 0, MQL 12, handed_off 24
                                        (ana, 24) still open
 L08  web    summer   2024-02-12 00:00  captured 0, disqualified 6 ("spam")
 L09  events -        2024-02-15 00:00  captured 0, MQL 10, handed_off 30
                                        (ben, 24), disqualified 40 ("no fit")
 L10  web    spring   2024-02-20 00:00  captured 0, MQL 4, handed_off 14
                                        (ana, 48), accepted 50 (ana), SQL 70,
                                        lost 90 ("competitor"), nurture 110
                                        (bad_timing)
 L11  events expo     2024-02-25 00:00  captured 0, MQL 50, handed_off 60
                                        (ben, 24), accepted 84 (ben),
                                        nurture 90 (no_budget)
 L13  events expo     2024-02-28 00:00  captured 0, handed_off 2 (ana, SLA
                                        1,000,000 h) still open: pending
"""

import atexit
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ.get("LEADFLOW_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = (sys.argv[1] if len(sys.argv) > 1 else None) or os.environ.get(
    "LEADFLOW_BIN") or os.path.join(SRC, "build", "bin")

CAPTURED, MQL, HANDED_OFF, ACCEPTED, SQL, WON, LOST, NURTURE, DISQ = (
    "captured", "marketing_qualified", "handed_off", "sales_accepted",
    "sales_qualified", "won", "lost", "nurture", "disqualified")

# (lead, channel, campaign, captured_at, [(stage, hours, payload), ...])
FIXTURE = [
    ("L01", "web", "spring", "2024-01-05T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 10, {}),
        (HANDED_OFF, 20, {"owner": "ana", "sla_hours": 24}),
        (ACCEPTED, 30, {"owner": "ana"}), (SQL, 50, {}),
        (WON, 100, {"amount_minor": 500000, "currency": "EUR"})]),
    ("L02", "web", "spring", "2024-01-10T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 20, {}),
        (HANDED_OFF, 40, {"owner": "ben", "sla_hours": 24}),
        (ACCEPTED, 70, {"owner": "ben"}), (SQL, 90, {}),
        (LOST, 130, {"reason": "price"})]),
    ("L03", "web", None, "2024-01-15T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 5, {}),
        (HANDED_OFF, 15, {"owner": "ana", "sla_hours": 24}),
        (NURTURE, 35, {"reason": "no_budget", "note": None})]),
    ("L04", "events", "expo", "2024-01-20T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 30, {})]),
    ("L05", "events", "expo", "2024-01-25T00:00:00", [(CAPTURED, 0, {})]),
    ("L12", "web", None, "2024-01-31T23:30:00", [(CAPTURED, 0, {})]),
    ("L06", "events", "expo", "2024-02-03T00:00:00", [
        (CAPTURED, 0, {}),
        (HANDED_OFF, 8, {"owner": "ben", "sla_hours": 48}),
        (ACCEPTED, 20, {"owner": "cara"}),
        (NURTURE, 40, {"reason": "not_ready", "note": "call in Q3"}),
        (MQL, 100, {}),
        (HANDED_OFF, 110, {"owner": "ana", "sla_hours": 24}),
        (ACCEPTED, 140, {"owner": "ana"}), (SQL, 150, {}),
        (WON, 200, {"amount_minor": 250000, "currency": "USD"})]),
    ("L07", "web", "spring", "2024-02-10T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 12, {}),
        (HANDED_OFF, 24, {"owner": "ana", "sla_hours": 24})]),
    ("L08", "web", "summer", "2024-02-12T00:00:00", [
        (CAPTURED, 0, {}), (DISQ, 6, {"reason": "spam"})]),
    ("L09", "events", None, "2024-02-15T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 10, {}),
        (HANDED_OFF, 30, {"owner": "ben", "sla_hours": 24}),
        (DISQ, 40, {"reason": "no fit"})]),
    ("L10", "web", "spring", "2024-02-20T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 4, {}),
        (HANDED_OFF, 14, {"owner": "ana", "sla_hours": 48}),
        (ACCEPTED, 50, {"owner": "ana"}), (SQL, 70, {}),
        (LOST, 90, {"reason": "competitor"}),
        (NURTURE, 110, {"reason": "bad_timing", "note": None})]),
    ("L11", "events", "expo", "2024-02-25T00:00:00", [
        (CAPTURED, 0, {}), (MQL, 50, {}),
        (HANDED_OFF, 60, {"owner": "ben", "sla_hours": 24}),
        (ACCEPTED, 84, {"owner": "ben"}),
        (NURTURE, 90, {"reason": "no_budget", "note": None})]),
    ("L13", "events", "expo", "2024-02-28T00:00:00", [
        (CAPTURED, 0, {}),
        (HANDED_OFF, 2, {"owner": "ana", "sla_hours": 1000000})]),
]

# funnel.events.type and the recycle reasons as the projector stores them
# (lf_event_type_name, lf_recycle_reason_name: lower case).
EVENT_TYPE = {CAPTURED: "captured", MQL: "scored", HANDED_OFF: "handed_off",
              ACCEPTED: "accepted", SQL: "qualified", WON: "won",
              LOST: "lost", NURTURE: "recycled", DISQ: "disqualified"}


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def skip(msg):
    # CTest has no skip code wired up here: say so loudly and pass.
    print("SKIP: " + msg)
    sys.exit(0)


def lit(v):
    """A SQL literal for the fixture's own values (the test writes them)."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, dt.datetime):
        return "'" + v.strftime("%Y-%m-%dT%H:%M:%SZ") + "'"
    return "'" + str(v).replace("'", "''") + "'"


def psql(sql, db=None, user=None, check=True):
    """Run sql; return the rows (lists of str, None for NULL), or on
    check=False a (returncode, rows, stderr) triple."""
    cmd = ["psql", "-X", "-q", "-A", "-t", "-F", "\x1f", "-P", "null=\\N",
           "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose"]
    if db:
        cmd += ["-d", db]
    if user:
        cmd += ["-U", user]
    p = subprocess.run(cmd, input=sql, capture_output=True, text=True)
    rows = [[None if f == "\\N" else f for f in line.split("\x1f")]
            for line in p.stdout.splitlines() if line != ""]
    if not check:
        return p.returncode, rows, p.stderr
    if p.returncode:
        fail("psql failed: %s\n--- SQL:\n%s" % (p.stderr.strip(), sql))
    return rows


class Postgres:
    """A throwaway PostgreSQL (tools/pg-throwaway.sh), its PG* variables put
    into os.environ, stopped and removed at exit."""

    def __init__(self):
        # Timestamps print in UTC whatever the machine says.
        os.environ["PGTZ"] = "UTC"
        self.tmp = tempfile.mkdtemp(prefix="leadflow-views.")
        self.dir = os.path.join(self.tmp, "pg")
        atexit.register(self.stop)
        p = subprocess.run([os.path.join(SRC, "tools", "pg-throwaway.sh"),
                            "start", self.dir], capture_output=True,
                           text=True)
        if p.returncode:
            sys.stderr.write(p.stderr)
            fail("throwaway PostgreSQL did not start")
        for line in p.stdout.splitlines():
            if line.startswith("export "):
                k, v = line[len("export "):].split("=", 1)
                os.environ[k] = v

    def stop(self):
        subprocess.run([os.path.join(SRC, "tools", "pg-throwaway.sh"),
                        "stop", self.dir], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def migrate(db=None):
    cmd = [os.path.join(BIN, "leadflow-project"), "--migrate-only", "-q"]
    if db:
        cmd += ["-d", "dbname=" + db]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        fail("leadflow-project --migrate-only exited %d: %s" %
             (p.returncode, p.stderr.strip()))


def fixture_sql(fixture=None):
    """INSERTs for events, stage_history and leads, derived from FIXTURE (or
    a list like it) as the projector would derive them."""
    out = []
    offset = 0
    for lead, channel, campaign, captured, visits in fixture or FIXTURE:
        t0 = dt.datetime.fromisoformat(captured).replace(
            tzinfo=dt.timezone.utc)
        rows = []
        cycle = 0
        prev = None
        for n, (stage, hours, payload) in enumerate(visits, start=1):
            at = t0 + dt.timedelta(hours=hours)
            etype = EVENT_TYPE[stage]
            if stage == CAPTURED:
                cycle = 1
                payload = {"channel": channel, "campaign": campaign,
                           "attributes": {}}
            elif prev == NURTURE and stage in (MQL, HANDED_OFF):
                cycle += 1  # leaving nurture starts the next cycle
            if stage == MQL:
                payload = {"score": 80, "threshold": 50, "model": "m1"}
            if stage == SQL:
                payload = {"opportunity_id": "opp-" + lead,
                           "amount_minor": 100000, "currency": "EUR"}
            rows.append({"visit": n, "stage": stage, "at": at,
                         "cycle": cycle, "event_id": "%s-e%d" % (lead, n),
                         "type": etype, "payload": payload})
            prev = stage
        for i, r in enumerate(rows):
            nxt = rows[i + 1] if i + 1 < len(rows) else None
            r["exited_at"] = nxt["at"] if nxt else None
            r["exit_reason"] = (nxt["payload"].get("reason")
                                if nxt and nxt["type"] in (
                                    "recycled", "lost", "disqualified")
                                else None)
            offset += 1
            out.append(
                "INSERT INTO funnel.events (event_id, lead_id, type, "
                "occurred_at, source, actor, payload, topic, partition, "
                "\"offset\") VALUES (%s, %s, %s, %s, 'fixture', NULL, %s, "
                "'lead-events', 0, %d);" % (
                    lit(r["event_id"]), lit(lead), lit(r["type"]),
                    lit(r["at"]), lit(json.dumps(r["payload"])), offset))
            out.append(
                "INSERT INTO funnel.stage_history (lead_id, visit, cycle, "
                "stage, entered_at, exited_at, entered_by, exit_reason) "
                "VALUES (%s, %d, %d, %s, %s, %s, %s, %s);" % (
                    lit(lead), r["visit"], r["cycle"], lit(r["stage"]),
                    lit(r["at"]), lit(r["exited_at"]), lit(r["event_id"]),
                    lit(r["exit_reason"])))

        def first(stage):
            return next((r["at"] for r in rows if r["stage"] == stage), None)

        def last(stage):
            return next((r["at"] for r in reversed(rows)
                         if r["stage"] == stage), None)

        owner = next((r["payload"]["owner"] for r in reversed(rows)
                      if r["type"] in ("handed_off", "accepted")), None)
        won = next((r["payload"] for r in rows if r["type"] == "won"), None)
        cur = rows[-1]
        out.append(
            "INSERT INTO funnel.leads (lead_id, stage, stage_entered_at, "
            "cycle, score, score_model, owner, channel, campaign, "
            "captured_at, first_marketing_qualified_at, first_handed_off_at, "
            "first_sales_accepted_at, first_sales_qualified_at, won_at, "
            "won_amount_minor, currency, lost_at, disqualified_at, "
            "last_event_at, last_event_id, stage_entered_by, visits) VALUES "
            "(%s);" % ", ".join([
                lit(lead), lit(cur["stage"]), lit(cur["at"]),
                lit(cur["cycle"]),
                lit(80 if first(MQL) else None),
                lit("m1" if first(MQL) else None), lit(owner), lit(channel),
                lit(campaign), lit(rows[0]["at"]), lit(first(MQL)),
                lit(first(HANDED_OFF)), lit(first(ACCEPTED)),
                lit(first(SQL)), lit(last(WON)),
                lit(won["amount_minor"] if won else None),
                lit(won["currency"] if won else None), lit(last(LOST)),
                lit(last(DISQ)), lit(cur["at"]), lit(cur["event_id"]),
                lit(cur["event_id"]), lit(len(rows))]))
    return "BEGIN;\n" + "\n".join(out) + "\nCOMMIT;\n"


def setup(db=None):
    """Start PostgreSQL, apply the migrations, load the fixture."""
    pg = Postgres()
    migrate(db)
    psql(fixture_sql(), db=db)
    return pg
