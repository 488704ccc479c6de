"""test_erasure.py: an erased person is gone from the database, and stays
gone through every replay.

One person, three lead ids with hostile text (quotes, unicode): E1, E2
merged into E1 before the erasure, E3 merged into E1 after it. Their
form fields (attributes), recycle notes and the free-text reasons of lost
and disqualified hold e-mails and names; an undecodable message keyed E1
is dead-lettered before the erasure, one keyed E3 before E3's merge. Every
personal string holds the token "qx77", which nothing else in the
database can (q and x are not hex digits).

- Before the erasure pg_dump (plain SQL, as postgres) holds the token (the
  check below can see it); the analysts' views (stage_counts, conversion,
  time_in_stage, handoff_sla) are recorded.
- After the erased event is projected: pg_dump holds neither the ids (as
  text, or as the hex of a bytea) nor the token; the views give the same
  numbers; the dead letters keyed E1 lost key and value;
  funnel.erasures holds the pseudonym (computed here) and not the id.
- After E3's merge, E1's events after the erasure and E3's dead letter:
  the same.
- After leadflow-replay rewind to the beginning and a projector run; after
  dead-letters retry --all; after rebuild from Kafka and from the database
  (diff equal) and promote: the same, with the tables unchanged.

    /usr/bin/python3 tests/integration/test_erasure.py BIN_DIR
"""
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emit_lib import BIN, Broker, check, step  # noqa: E402
import emit_lib  # noqa: E402
from emit_lib import REJOIN, run_now as run  # noqa: E402
from identity_model import pseudonym  # noqa: E402
from kafka import KafkaProducer  # noqa: E402
from lf_funnel_fixture import Postgres, psql  # noqa: E402

TMP = tempfile.mkdtemp(prefix="leadflow-erasure.")
atexit.register(shutil.rmtree, TMP, True)
KEY_HEX = "c0ffee00" * 8
KEY = bytes.fromhex(KEY_HEX)
TOKEN = "qx77"
E1 = "PRIV-Zo\u00eb-O'Hara-qx7731"
E2 = 'PRIV-dup-"qx7732"-\u2603'
E3 = "PRIV-late-qx7733 \\ \u00df"
PERSON = (E1, E2, E3)
# The privacy request quotes the lead id: the reference is kept, with the
# pseudonym in its place.
REQUEST = "DSR-2026-0042 (lead %s)"
TOPIC, GROUP, DB = "priv", "g-priv", "priv"
DEAD_E1 = b"\x07not avro: zoe.ohara.qx7731@example.org"
DEAD_E3 = b"\x07not avro either: qx7733@example.com"


def uid(n):
    return "00000000-0000-4000-8000-%012d" % n


def ev(n, lead, type_, day, **payload):
    e = {"event_id": uid(n), "lead_id": lead, "type": type_,
         "occurred_at": "2026-01-%02dT%02d:00:00.000Z" % (day, n % 24),
         "source": "erasure-test", "actor": "sdr-01"}
    e.update(payload)
    return e


def attributes(tag, name):
    return {"email": "zoe.%s@example.org" % tag, "full_name": name,
            "phone": "+44 20 7946 %s" % tag,
            "zz_%s" % tag: "a form field named after the person"}


def person_before():
    """E1's and E2's lives before the erasure: every stage, every kind of
    free text."""
    return [
        ev(1, E1, "captured", 2, channel="web", campaign="spring",
           attributes=attributes("qx7731",
                                 "Zo\u00eb \"Zed\" O'Hara qx7731")),
        ev(2, E1, "scored", 3, score=90, threshold=60, model="fit"),
        ev(3, E1, "handed_off", 3, owner="sdr-01", sla_hours=24),
        ev(4, E1, "accepted", 4, owner="ae-02"),
        ev(5, E1, "qualified", 5, opportunity_id="OPP-1", amount_minor=500000,
           currency="EUR"),
        ev(6, E1, "lost", 6, reason="Zo\u00eb said: \"too dear\" qx7731"),
        ev(7, E1, "recycled", 7, reason="no_budget",
           note="call Zo\u00eb at home, qx7731 \u2603"),
        ev(8, E2, "captured", 1, channel="events", campaign="expo",
           attributes=attributes("qx7732", "Z. O\u2019Hara qx7732")),
        ev(10, E2, "merged", 9, into_lead_id=E1),
        ev(11, E1, "scored", 10, score=70, threshold=60, model="fit"),
        ev(12, E1, "handed_off", 10, owner="sdr-03", sla_hours=48),
        ev(13, E2, "disqualified", 12,
           reason="duplicate of Zo\u00eb's other record qx7732"),
        ev(14, E1, "voided", 11, voided_event_id=uid(11),
           reason="Zo\u00eb's score was typed in by hand, qx7731"),
    ]


def person_after():
    """What arrives after the erasure: E1's own events, E3 and its merge."""
    return [
        ev(21, E1, "recycled", 21, reason="not_ready",
           note="she asked us to forget her qx7731"),
        ev(22, E3, "captured", 22, channel="web",
           attributes=attributes("qx7733", "Zoe O'Hara (new form) qx7733")),
        ev(23, E3, "disqualified", 23, reason="spam from qx7733"),
        ev(24, E3, "merged", 24, into_lead_id=E1),
    ]


def write(name, events):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        for e in events:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
    return path


class Stack:
    def __init__(self):
        Postgres()
        psql("CREATE DATABASE " + DB)
        self.broker = Broker(topic=TOPIC, partitions=3)
        self.keyf = emit_lib.key_file(KEY_HEX, "the test's key")
        self.conn = ["-d", "dbname=" + DB, "-X",
                     "pseudonym.key.file=" + self.keyf]
        self.kafka = ["-b", self.broker.servers, "-t", TOPIC, "-g", GROUP]

    def emit(self, path):
        p = run([os.path.join(BIN, "leadflow-emit"), "-b",
                 self.broker.servers, "-t", TOPIC, "-q", path])
        check(p.returncode == 0, "leadflow-emit: %s" % p.stderr.decode())

    def send_raw(self, key, value):
        prod = KafkaProducer(bootstrap_servers=self.broker.servers,
                             acks="all", api_version=(2, 5, 0))
        prod.send(TOPIC, key=key.encode(), value=value).get(timeout=30)
        prod.flush()
        prod.close()

    def send_keyed(self, key, events):
        """events (of other leads) encoded by leadflow-emit on a scratch
        topic, then sent to TOPIC under Kafka key @key: each makes a 'key'
        anomaly whose reason quotes the key."""
        scratch = "scratch%d" % events[0]["event_id"].__hash__().__abs__()
        self.broker.cmd("topic %s 1" % scratch)
        p = run([os.path.join(BIN, "leadflow-emit"), "-b",
                 self.broker.servers, "-t", scratch, "-q",
                 write(scratch + ".jsonl", events)])
        check(p.returncode == 0, "leadflow-emit: %s" % p.stderr.decode())
        recs = emit_lib.consume_all(self.broker.servers, scratch,
                                    expect=len(events))
        for r in recs:
            self.send_raw(key, r.value)

    def send_self_merge(self, n, day):
        """E1 merged into itself: the contract refuses it (leadflow-emit
        too), so a merge into a stand-in of the same length is encoded and
        the stand-in's bytes swapped for E1's. The dead letter's error
        quotes the lead id."""
        stand_in = "X" * len(E1.encode())
        scratch = "selfmerge%d" % n
        self.broker.cmd("topic %s 1" % scratch)
        p = run([os.path.join(BIN, "leadflow-emit"), "-b",
                 self.broker.servers, "-t", scratch, "-q",
                 write(scratch + ".jsonl", [ev(n, E1, "merged", day,
                                                into_lead_id=stand_in)])])
        check(p.returncode == 0, "leadflow-emit: %s" % p.stderr.decode())
        (rec,) = emit_lib.consume_all(self.broker.servers, scratch, expect=1)
        value = rec.value.replace(stand_in.encode(), E1.encode())
        check(value != rec.value, "the stand-in is not in the encoded merge")
        self.send_raw(E1, value)

    def project(self, keyed=True, expect_rc=0, env=None):
        conn = self.conn if keyed else self.conn[:2]
        p = run([os.path.join(BIN, "leadflow-project")] + self.kafka +
                conn + ["--idle-exit", "2", "-q"] + REJOIN, timeout=120,
                **({"env": env} if env else {}))
        check(p.returncode == expect_rc, "leadflow-project exited %d, want "
              "%d: %s" % (p.returncode, expect_rc, p.stderr.decode()))
        return p.stderr.decode()

    def replay(self, *args, kafka=True, expect_rc=0):
        p = run([os.path.join(BIN, "leadflow-replay")] + list(args) +
                (self.kafka if kafka else []) + self.conn +
                ["--progress", "none"], timeout=120)
        check(p.returncode == expect_rc, "leadflow-replay %s exited %d: "
              "%s%s" % (" ".join(args), p.returncode,
                        p.stdout.decode()[-2000:], p.stderr.decode()))
        return p.stdout.decode()


def dump():
    p = subprocess.run(["pg_dump", "-U", "postgres", "-d", DB],
                       capture_output=True)
    check(p.returncode == 0, "pg_dump: %s" % p.stderr.decode())
    return p.stdout


def secrets():
    """Every form a personal string can take in a plain dump: text (COPY
    escapes only backslashes and control characters; JSON escapes quotes
    and backslashes: the token has neither), and bytea as hex."""
    out = {TOKEN.encode(): "the token " + TOKEN}
    out[b"PRIV-"] = "the start of the person's lead ids"
    for lead in PERSON:
        out[lead.encode()] = "lead id %r" % lead
        out[lead.encode().hex().encode()] = "lead id %r as hex" % lead
    for v in (DEAD_E1, DEAD_E3):
        out[v.hex().encode()] = "a dead letter's value as hex"
        out[v[1:].hex().encode()] = "a dead letter's value as hex"
    return out


def clean(when):
    d = dump()
    found = [(needle, what) for needle, what in secrets().items()
             if needle in d]
    if found:
        line = next(ln for ln in d.splitlines() if found[0][0] in ln)
        check(False, "%s: pg_dump still holds %s; the first line: %s" % (
            when, ", ".join(w for _, w in found),
            line.decode(errors="replace")[:400]))


def views():
    """The analysts' numbers (not the lead ids, not the ages that grow
    with the clock)."""
    out = {}
    for name, drop in (("stage_counts", []), ("conversion", []),
                       ("time_in_stage", ["current_median_hours",
                                          "current_max_hours"]),
                       ("handoff_sla", ["lead_id"]),
                       ("handoff_sla_by_owner", [])):
        expr = "to_jsonb(v)" + "".join(" - '%s'" % c for c in drop)
        out[name] = sorted(r[0] for r in psql(
            "SELECT (%s)::text FROM funnel.%s v" % (expr, name), db=DB))
    return out


def sums(schema="funnel"):
    """Checksums of the tables an erasure touches (no wall clock, no
    Kafka coordinates)."""
    q = {
        "events": "event_id, lead_id, type, occurred_at, payload::text",
        "leads": "lead_id, stage, stage_entered_at, cycle, visits, "
                 "last_event_id",
        "stage_history": "lead_id, visit, cycle, stage, entered_at, "
                         "exited_at, entered_by, exit_reason",
        "anomalies": "event_id, lead_id, kind, reason",
        "merges": "lead_id, into_lead_id, surviving_lead_id, merged_at, "
                  "event_id",
        "erasures": "event_id, pseudonym, request_id, erased_at",
        "dead_letters": "key, value, error",
    }
    out = {}
    for table, cols in q.items():
        out[table] = psql("SELECT count(*), md5(coalesce(string_agg(h, ',' "
                          "ORDER BY h), '')) FROM (SELECT md5(concat_ws("
                          "'|', %s)) AS h FROM %s.%s) AS t" % (
                              cols, schema, table), db=DB)[0]
    return out


def check_erased_rows():
    ps = {lead: pseudonym(KEY, lead) for lead in PERSON}
    rows = psql("SELECT pseudonym, request_id FROM funnel.erasures WHERE "
                "pseudonym = '%s'" % ps[E1], db=DB)
    check(rows == [[ps[E1], REQUEST % ps[E1]]], "funnel.erasures: %s" % rows)
    rows = psql("SELECT lead_id, stage FROM funnel.leads WHERE lead_id "
                "LIKE 'erased:%%' AND lead_id <> '%s'" % pseudonym(KEY, "Q42"),
                db=DB)
    check(rows and all(r[0] == ps[E1] for r in rows),
          "the person's lead row is not under E1's pseudonym: %s" % rows)
    rows = psql("SELECT count(*) FROM funnel.dead_letters WHERE key IS NULL "
                "AND value IS NULL", db=DB)
    return ps, int(rows[0][0])


def without_key(s):
    """Without a key nothing can be erased: the projector exits 78 naming
    pseudonym.key.file, once people are erased (at start) and at the batch
    that erases the first one, writing nothing of that batch."""
    step("without a key: a database with erased people")
    err = s.project(keyed=False, expect_rc=78)
    check("pseudonym.key.file" in err, "exit 78 without naming "
          "pseudonym.key.file: %s" % err)
    step("without a key: the batch of the first erasure")
    psql("CREATE DATABASE nokey")
    args = [os.path.join(BIN, "leadflow-project"), "-b", s.broker.servers,
            "-t", TOPIC, "-g", "g-nokey", "-d", "dbname=nokey",
            "--idle-exit", "2", "-q"] + REJOIN
    try:
        p = run(args, timeout=60)
    except subprocess.TimeoutExpired:
        check(False, "without a key, the batch of the first erasure: "
              "leadflow-project still running after 60 s, want exit 78 "
              "(it retries the batch instead)")
    check(p.returncode == 78 and b"pseudonym.key.file" in p.stderr,
          "without a key, the batch of the first erasure: exit %d, want 78 "
          "naming pseudonym.key.file: %s" % (p.returncode,
                                             p.stderr.decode()[-600:]))
    rows = psql("SELECT count(*) FROM funnel.events WHERE type = 'erased'",
                db="nokey")
    check(rows == [["0"]], "without a key the erased event was stored")


def main():
    s = Stack()
    step("before the erasure: the person is in the database")
    gen = os.path.join(TMP, "gen.jsonl")
    p = run([os.path.join(BIN, "leadflow-gen"), "--leads", "120", "--seed",
             "7", "-o", gen, "-q"])
    check(p.returncode == 0, "leadflow-gen: %s" % p.stderr.decode())
    s.emit(gen)
    s.send_raw(E1, DEAD_E1)
    s.send_self_merge(45, 2)
    s.emit(write("before.jsonl", person_before()))
    # Another lead's event sent under E1 as its Kafka key: its 'key'
    # anomaly quotes E1.
    s.send_keyed(E1, [ev(40, "KEYED-1", "captured", 2, channel="web")])
    s.project()
    d = dump()
    check(TOKEN.encode() in d and E1.encode() in d and
          E1.encode().hex().encode() in d,
          "before the erasure the dump should hold the person (the check "
          "cannot see them otherwise)")
    check(psql("SELECT count(*) FROM funnel.anomalies WHERE lead_id = "
               "'KEYED-1' AND kind = 'key' AND strpos(reason, '%s') > 0"
               % E1.replace("'", "''"), db=DB) == [["1"]],
          "KEYED-1's key anomaly does not quote E1 (the check cannot see "
          "it otherwise)")
    check(psql("SELECT count(*) FROM funnel.merges", db=DB) == [["1"]],
          "E2 was not merged into E1")
    before = views()
    before_rows = psql("SELECT stage, cycle, visits FROM funnel.leads "
                       "WHERE lead_id = '%s'" % E1.replace("'", "''"),
                       db=DB)

    step("the key: never on the command line, masked by -X dump")
    p = run([os.path.join(BIN, "leadflow-project"), "-X",
             "pseudonym.key=" + KEY_HEX, "--idle-exit", "1"])
    check(p.returncode == 64, "-X pseudonym.key=... exited %d" % p.returncode)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LEADFLOW_")}
    env["LEADFLOW_PSEUDONYM_KEY"] = KEY_HEX
    p = run([os.path.join(BIN, "leadflow-project"), "-X", "dump"], env=env)
    out = p.stdout + p.stderr
    check(p.returncode == 0 and b"pseudonym.key" in out and
          KEY_HEX.encode() not in out, "-X dump (exit %d) shows the key or "
          "not the setting: %s" % (p.returncode, out.decode()[-600:]))

    step("a what-if rebuilt before the erasure holds the person too")
    s.replay("rebuild", "--into", "pre_erase", "--from-db", "-q",
             kafka=False)
    pre = psql("SELECT count(*), sum(visits) FROM pre_erase.leads", db=DB)

    step("the erased event: ids, attributes, notes, reasons, dead letter")
    # ... and in the batch of the erasure itself, another one keyed E1 (an
    # event of a lead never captured: no number of the views moves).
    s.send_keyed(E1, [ev(44, "KEYED-3", "accepted", 19, owner="ae-09")])
    s.emit(write("erase.jsonl", [ev(20, E1, "erased", 20,
                                    request_id=REQUEST % E1)]))
    s.project()
    clean("after the erasure")
    ps, dead = check_erased_rows()
    check(dead == 2, "the dead letters keyed E1 kept their key or value")
    # clean() read the whole database: the what-if made before is erased
    # too, its numbers kept.
    check(psql("SELECT count(*), sum(visits) FROM pre_erase.leads",
               db=DB) == pre, "the what-if's numbers changed")
    check(psql("SELECT count(*) FROM pre_erase.leads WHERE lead_id = '%s'"
               % ps[E1], db=DB) == [["1"]],
          "the what-if's row of the person is not under its pseudonym")
    after_rows = psql("SELECT stage, cycle, visits FROM funnel.leads "
                      "WHERE lead_id = '%s'" % ps[E1], db=DB)
    check(after_rows == before_rows, "the lead's row changed: %s -> %s" % (
        before_rows, after_rows))
    after = views()
    for name in before:
        check(before[name] == after[name],
              "funnel.%s changed with the erasure:\n%s\n%s" % (
                  name, before[name][:5], after[name][:5]))
    # lost's and disqualified's reasons are free text, gone; recycle
    # reasons are a closed list, kept.
    rows = psql("SELECT exit_reason FROM funnel.stage_history WHERE lead_id "
                "= '%s' AND exit_reason IS NOT NULL" % ps[E1], db=DB)
    check(rows == [["no_budget"]], "the exit reasons left: %s" % rows)
    rows = psql("SELECT reason FROM funnel.voided_events", db=DB)
    check(rows == [["(erased)"]], "the void's free-text reason: %s" % rows)
    rows = psql("SELECT error FROM funnel.dead_letters WHERE key IS NULL",
                db=DB)
    check(len(rows) == 2 and all("erased" in r[0] for r in rows),
          "the dead letters' errors do not say they were erased: %s" % rows)
    # The self-merge's error quoted E1 (clean() saw it go): the pseudonym
    # stands in its place.
    check(any(ps[E1] in r[0] for r in rows),
          "the self-merge's error does not quote the pseudonym: %s" % rows)

    step("after the erasure: E1's events, E3 merged into E1, E3's dead "
         "letter")
    s.send_raw(E3, DEAD_E3)
    s.send_self_merge(46, 21)  # erased on the way in, its error too
    s.emit(write("after.jsonl", person_after()))
    s.send_keyed(E1, [ev(41, "KEYED-2", "captured", 22, channel="web")])
    # Q42's request reference holds "42" inside a word: only the id as a
    # word of its own is replaced.
    s.emit(write("q42.jsonl", [
        ev(42, "Q42", "captured", 22, channel="web"),
        ev(43, "Q42", "erased", 23, request_id="TICKET-Q4242 for Q42")]))
    s.project()
    clean("after E3's merge")
    rows = psql("SELECT reason FROM funnel.anomalies WHERE lead_id IN "
                "('KEYED-1', 'KEYED-2', 'KEYED-3') AND kind = 'key'", db=DB)
    check(rows == [["Kafka key differs from lead_id (the key was erased)"]]
          * 3, "the key anomalies of other leads sent under E1: %s" % rows)
    q42 = pseudonym(KEY, "Q42")
    rows = psql("SELECT request_id FROM funnel.erasures WHERE pseudonym = "
                "'%s'" % q42, db=DB)
    check(rows == [["TICKET-Q4242 for " + q42]],
          "Q42's request reference: %s" % rows)
    _, dead = check_erased_rows()
    check(dead == 4, "the dead letters keyed E3 and E1 kept their key or "
          "value")
    rows = psql("SELECT lead_id, into_lead_id, surviving_lead_id FROM "
                "funnel.merges ORDER BY event_id", db=DB)
    check(rows == [[ps[E2], ps[E1], ps[E1]], [ps[E3], ps[E1], ps[E1]]],
          "funnel.merges: %s" % rows)
    live = sums()

    step("rewind to the beginning, re-projected")
    s.replay("rewind", "--to-offset", "0:beginning,1:beginning,2:beginning",
             "--no-group-check", "-q")
    s.project()
    clean("after rewind and replay")
    check(sums() == live, "rewind and replay changed the tables:\n%s\n%s" %
          (live, sums()))

    step("rebuild from Kafka and from the database, diff, promote")
    # Without the key, refused (78) before the schema is made.
    env = {k: v for k, v in os.environ.items()
           if k != "LEADFLOW_PSEUDONYM_KEY_FILE"}
    p = run([os.path.join(BIN, "leadflow-replay"), "rebuild", "--into",
             "r_nokey", "--from-db", "-d", "dbname=" + DB, "--progress",
             "none"], env=env, timeout=120)
    check(p.returncode == 78 and b"no pseudonym key" in p.stderr,
          "rebuild without the key: exit %d: %s" % (p.returncode,
                                                   p.stderr[-400:]))
    check(psql("SELECT count(*) FROM pg_namespace WHERE nspname = "
               "'r_nokey'", db=DB) == [["0"]], "rebuild without the key made "
          "its schema")
    s.replay("rebuild", "--into", "r_kafka", "--from-kafka", "-q")
    s.replay("rebuild", "--into", "r_db", "--from-db", "-q", kafka=False)
    clean("after the rebuilds")
    for schema in ("r_kafka", "r_db"):
        s.replay("diff", "--against", schema, "-q", kafka=False)
        check(sums(schema) == live, "%s differs from funnel" % schema)
    s.replay("promote", "r_kafka", "--no-group-check", "-q", kafka=False)
    clean("after promote")
    s.project()
    clean("after promote and a projector run")
    check(sums() == live, "the promoted rebuild differs")

    step("dead-letters retry --all")
    s.replay("dead-letters", "retry", "--all", "-q", kafka=False)
    clean("after dead-letters retry --all")
    _, dead = check_erased_rows()
    check(dead == 4, "retry gave an erased dead letter its key or value")
    rows = psql("SELECT error FROM funnel.dead_letters WHERE key IS NULL "
                "AND value IS NULL ORDER BY id", db=DB)
    check(len(rows) == 4 and all(r[0].endswith(
        "[erased: key and value removed]") for r in rows),
        "retry lost the erased letters' errors or their note: %s" % rows)
    without_key(s)
    s.broker.stop()
    print("ok: test_erasure")


if __name__ == "__main__":
    main()
