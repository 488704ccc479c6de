"""test_identity.py: merged leads, voided events and erased people, model
based.

For several seeds: leadflow-gen's workload with merges, voids and erasures,
plus hand-made identity events for what gen does not make (chains A->B->C,
cycles, a lead merged into two targets and the same target twice, merges
into a lead with no events, merges sent before and after the merged lead's
own events; voids of missing targets, of targets that arrive later, of
another person's events, of merged, voided and erased events, of the same
event twice, of a captured event; a lead erased, then leads merged into it
and its own events arriving after the erasure, a lead erased in the middle
of a chain and through an anomalous merge), and a tangle of random
merges, voids and an erasure among a few leads. The lines are duplicated,
shuffled and sent in two rounds (each projected before the next is sent),
so that merges, voids and erasures meet their events in either order.

After each round funnel.leads, stage_history, anomalies (state, merge,
void; the reasons name the case and no lead), merges, erasures,
erased_leads, the voided_events view and the lead ids of funnel.events
must equal an independent model
(identity_model.py, funnel_model.py), with erased lead ids replaced by
their pseudonym computed here (HMAC-SHA-256 under the test's key). Then
leadflow-replay rebuild from Kafka and from the database give the same
tables (the model, and leadflow-replay diff finds them equal to the live
ones).

    /usr/bin/python3 tests/integration/test_identity.py BIN_DIR
    LF_IDENTITY_SEEDS=1,2,3 LF_IDENTITY_LEADS=250 (the defaults)
"""
import atexit
import collections
import datetime
import json
import os
import random
import shutil
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emit_lib import BIN, Broker, check, parse_time, step  # noqa: E402
import emit_lib  # noqa: E402
from emit_lib import REJOIN, run_now as run  # noqa: E402
from funnel_model import order_key  # noqa: E402
from identity_model import (Identity, differences, distinct,  # noqa: E402
                            read_tables)
from lf_funnel_fixture import Postgres, psql  # noqa: E402

TMP = tempfile.mkdtemp(prefix="leadflow-identity.")
atexit.register(shutil.rmtree, TMP, True)
KEY_HEX = "5b1e0c3a9f7d4e2b8c6a1f0e3d5c7b9a2e4f6a8c0b1d3e5f7a9c2b4d6e8f0a1c"
KEY = bytes.fromhex(KEY_HEX)
HOUR, DAY = 3600 * 1000, 86400 * 1000


def iso(ms):
    d = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


class Maker:
    """Hand-made events with ids drawn from the test's generator."""

    def __init__(self, rng):
        self.rng = rng

    def uuid(self):
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def __call__(self, lead, type_, ms, **payload):
        e = {"event_id": self.uuid(), "lead_id": lead, "type": type_,
             "occurred_at": iso(ms), "source": "identity-test"}
        e.update(payload)
        return e


def gen(seed, leads, path):
    p = run([os.path.join(BIN, "leadflow-gen"), "--leads", str(leads),
             "--seed", str(seed), "--anomalies", "0.1", "--merges", "0.05",
             "--voids", "0.05", "--erasures", "0.02", "-o", path, "-q"])
    check(p.returncode == 0, "leadflow-gen: %s" % p.stderr.decode())
    return emit_lib.read_jsonl(path)


def handmade(rng, events):
    """The identity cases gen does not make, on leads gen's own merges and
    erasures leave alone: (early, late, anywhere, late_leads): events for
    the first round, for the second, for either, and leads whose gen
    events all wait for the second round."""
    mk = Maker(rng)
    by_lead = collections.defaultdict(list)
    busy = set()
    for e in events:
        by_lead[e["lead_id"]].append(e)
        if e["type"] in ("merged", "erased"):
            busy |= {e["lead_id"], e.get("into_lead_id")}
    for evs in by_lead.values():
        evs.sort(key=order_key)
    pool = sorted(lead for lead, evs in by_lead.items()
                  if lead not in busy and len(evs) >= 3 and
                  evs[0]["type"] == "captured")
    rng.shuffle(pool)

    def first(lead):
        return parse_time(by_lead[lead][0]["occurred_at"])

    def last(lead):
        return parse_time(by_lead[lead][-1]["occurred_at"])

    def stage_event(lead, n=1):
        return by_lead[lead][n]

    early, late, anywhere, late_leads = [], [], [], set()
    # A chain A -> B -> C: A's merge occurred before A's own events and is
    # sent before them; B's after B's events and sent after them.
    a, b, c = pool.pop(), pool.pop(), pool.pop()
    m_ab = mk(a, "merged", first(a) - DAY, into_lead_id=b)
    early.append(m_ab)
    late_leads.add(a)
    late.append(mk(b, "merged", last(b) + HOUR, into_lead_id=c))
    # Cycles: x -> y -> z -> x (the last in time is refused), u -> v -> u.
    x, y, z, u, v = (pool.pop() for _ in range(5))
    t = max(last(x), last(y), last(z))
    anywhere += [mk(x, "merged", t + 1 * HOUR, into_lead_id=y),
                 mk(y, "merged", t + 2 * HOUR, into_lead_id=z),
                 mk(z, "merged", t + 3 * HOUR, into_lead_id=x)]
    early.append(mk(v, "merged", last(v) + 5 * DAY, into_lead_id=u))
    late.append(mk(u, "merged", last(u) + HOUR, into_lead_id=v))
    # A lead merged into two targets (the second refused) and into the
    # first again (a duplicate); the refused one is sent first.
    p, q, r = pool.pop(), pool.pop(), pool.pop()
    late.append(mk(p, "merged", last(p) + HOUR, into_lead_id=q))
    early.append(mk(p, "merged", last(p) + 2 * HOUR, into_lead_id=r))
    anywhere.append(mk(p, "merged", last(p) + 3 * HOUR, into_lead_id=q))
    # Into a lead that has no events; ids other tests would choke on.
    g = pool.pop()
    ghost = "\u03a9-ghost-%d 'x\"" % rng.randint(1, 10 ** 6)
    anywhere.append(mk(g, "merged", last(g) + HOUR, into_lead_id=ghost))
    # Voids.
    w1, w2, w3, w4, f1, f2 = (pool.pop() for _ in range(6))
    anywhere.append(mk(w1, "voided", last(w1), voided_event_id=mk.uuid(),
                       reason="never sent"))
    later = mk(w1, "disqualified", last(w1) + HOUR,
               reason="target of a void sent before it")
    late.append(later)
    early.append(mk(w1, "voided", last(w1) + 2 * HOUR,
                    voided_event_id=later["event_id"], reason="mistake"))
    foreign = mk(w2, "voided", last(w2) + HOUR,
                 voided_event_id=stage_event(w3)["event_id"],
                 reason="another person's")
    anywhere.append(foreign)
    void_of_void = mk(w2, "voided", last(w2) + 2 * HOUR,
                      voided_event_id=foreign["event_id"], reason="void")
    anywhere += [void_of_void,
                 mk(a, "voided", last(a) + HOUR,
                    voided_event_id=m_ab["event_id"], reason="a merge")]
    target = stage_event(w4, 2)
    anywhere += [mk(w4, "voided", last(w4) + HOUR,
                    voided_event_id=target["event_id"], reason="once"),
                 mk(w4, "voided", last(w4) + 2 * HOUR,
                    voided_event_id=target["event_id"], reason="twice"),
                 mk(w3, "voided", last(w3) + HOUR,
                    voided_event_id=by_lead[w3][0]["event_id"],
                    reason="the capture")]
    # Voided on a lead merged into the target's lead: the same person once
    # the merge is there (sent after the void).
    early.append(mk(f1, "voided", last(f1) + HOUR,
                    voided_event_id=stage_event(f2)["event_id"],
                    reason="same person"))
    late.append(mk(f1, "merged", last(f1) + 2 * HOUR, into_lead_id=f2))
    # Voids sent before their targets, which are another person's and no
    # stage events: "not received", then "not a stage event".
    o1, o2, o3, o4, o5 = (pool.pop() for _ in range(5))
    targets = [mk(o2, "merged", last(o2) + HOUR, into_lead_id=o3),
               mk(o4, "voided", last(o4) + HOUR, voided_event_id=mk.uuid(),
                  reason="a void voided later"),
               mk(o5, "erased", last(o5) + DAY, request_id="REQ-o5")]
    late += targets
    early += [mk(o1, "voided", last(o1) + n * HOUR,
                 voided_event_id=t["event_id"], reason="before its target")
              for n, t in enumerate(targets, start=1)]
    # Erasures: e1 erased, then a lead merged into it and e1's own events
    # after the erasure, all sent later; the middle of a chain n1 -> n2 ->
    # n3; e2 reached only through a refused merge (k -> h counts, k -> e2
    # is another target); e3 erased twice and a void of its erasure.
    e1, f, n1, n2, n3, k, h, e2, e3 = (pool.pop() for _ in range(9))
    te = last(e1) + DAY
    early.append(mk(e1, "erased", te, request_id="REQ-e1"))
    late += [mk(f, "merged", max(te, last(f)) + HOUR, into_lead_id=e1),
             mk(e1, "scored", te + HOUR, score=99, threshold=60,
                model="after-erasure"),
             mk(e1, "lost", te + 2 * HOUR, reason="said after erasure")]
    anywhere += [mk(n1, "merged", last(n1) + HOUR, into_lead_id=n2),
                 mk(n2, "merged", last(n2) + HOUR, into_lead_id=n3),
                 mk(n2, "erased", last(n2) + DAY, request_id="REQ-n2"),
                 mk(k, "merged", last(k) + HOUR, into_lead_id=h),
                 mk(k, "merged", last(k) + 2 * HOUR, into_lead_id=e2),
                 mk(e2, "erased", last(e2) + DAY, request_id="REQ-e2")]
    er3 = mk(e3, "erased", last(e3) + DAY, request_id="REQ-e3a of " + e3)
    anywhere += [er3, mk(e3, "erased", last(e3) + 2 * DAY,
                         request_id="REQ-e3b"),
                 mk(e3, "voided", last(e3) + 3 * DAY,
                    voided_event_id=er3["event_id"], reason="undo")]
    anywhere += tangle(mk, rng, [pool.pop() for _ in range(12)], by_lead,
                       early + late + anywhere)
    return early, late, anywhere, late_leads


def tangle(mk, rng, leads, by_lead, made):
    """Random merges among a few leads (chains, cycles, several targets,
    before or after their events), random voids (of any event of theirs or
    the hand-made ones, of missing ones, several of one) and an erasure."""
    lo = min(parse_time(by_lead[lead][0]["occurred_at"]) for lead in leads)
    hi = max(parse_time(by_lead[lead][-1]["occurred_at"]) for lead in leads)
    out = []
    for _ in range(18):
        a, b = rng.sample(leads, 2)
        out.append(mk(a, "merged", rng.randint(lo - DAY, hi + DAY),
                      into_lead_id=b))
    targets = [e["event_id"] for lead in leads for e in by_lead[lead]]
    targets += [e["event_id"] for e in made + out]
    for _ in range(14):
        t = rng.choice(targets) if rng.random() < 0.85 else mk.uuid()
        v = mk(rng.choice(leads), "voided", rng.randint(lo, hi + DAY),
               voided_event_id=t, reason="tangle")
        out.append(v)
        targets.append(v["event_id"])
    out.append(mk(rng.choice(leads), "erased", rng.randint(lo, hi + DAY),
                  request_id="REQ-tangle"))
    return out


def workload(seed, leads):
    """Two rounds of lines (duplicated, shuffled) and the distinct events."""
    rng = random.Random(seed)
    events = gen(seed, leads, os.path.join(TMP, "gen-%d.jsonl" % seed))
    early, late, anywhere, late_leads = handmade(rng, events)
    rounds = [list(early), list(late)]
    for e in events + anywhere:
        rounds[1 if e["lead_id"] in late_leads else rng.randrange(2)] \
            .append(e)
    # Exact copies, in a round where the event may be: the late ones
    # (and late leads') stay late.
    late_ids = {e["event_id"] for e in late}
    everything = events + early + late + anywhere
    for e in rng.sample(everything, len(everything) // 20):
        stays = e["event_id"] in late_ids or e["lead_id"] in late_leads
        rounds[1 if stays else rng.randrange(2)].append(e)
    paths = []
    for n, lines in enumerate(rounds):
        rng.shuffle(lines)
        path = os.path.join(TMP, "round-%d-%d.jsonl" % (seed, n))
        with open(path, "w") as out:
            for e in lines:
                out.write(json.dumps(e, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths, distinct(everything)


def emit(broker, topic, path):
    p = run([os.path.join(BIN, "leadflow-emit"), "-b", broker.servers, "-t",
             topic, "-q", path])
    check(p.returncode == 0, "leadflow-emit %s: %s" % (path,
                                                        p.stderr.decode()))


def project(broker, topic, db, keyf):
    p = run([os.path.join(BIN, "leadflow-project"), "-b", broker.servers,
             "-t", topic, "-g", "g-" + topic, "-d", "dbname=" + db,
             "-X", "pseudonym.key.file=" + keyf, "--idle-exit", "2", "-q"]
            + REJOIN, timeout=120)
    check(p.returncode == 0, "leadflow-project into %s exited %d: %s" % (
        db, p.returncode, p.stderr.decode()))


def replay(*args, expect_rc=0):
    p = run([os.path.join(BIN, "leadflow-replay")] + list(args), timeout=120)
    check(p.returncode == expect_rc, "leadflow-replay %s exited %d: %s%s" % (
        " ".join(args), p.returncode, p.stdout.decode()[-2000:],
        p.stderr.decode()))
    return p.stdout.decode()


def same(what, got, want):
    d = differences(got, want)
    check(not d, "%s differs from the model:\n  %s" % (what, "\n  ".join(d)))


def check_reasons(what, db, ident, schema="funnel"):
    """Merge and void anomalies say why, as the rules name the cases, and
    name no lead (event ids only)."""
    leads = {e["lead_id"] for e in ident.events.values()}
    for eid, kind, reason in psql("SELECT event_id, kind, reason FROM "
                                  "%s.anomalies WHERE kind IN "
                                  "('merge', 'void')" % schema, db=db):
        says = ident.reasons.get(eid)
        check(says is not None and says in reason.lower(),
              "%s: the %s anomaly of %s says %r, want it to say %r" % (
                  what, kind, eid, reason, says))
        named = [lead for lead in leads if lead in reason]
        check(not named, "%s: the %s anomaly of %s names leads %s: %r" % (
            what, kind, eid, named[:3], reason))


def coverage(ident, want):
    """The workload must hold every case the test is about."""
    kinds = collections.Counter(k for _, _, k in want["anomalies"])
    check(len(want["merges"]) >= 8 and kinds["merge"] >= 3 and
          kinds["void"] >= 4 and kinds["state"] > 0 and
          len(ident.voided) >= 3 and len(want["erasures"]) >= 5 and
          len(ident.erased) >= 7,
          "the workload lacks cases: merges %d, anomalies %s, voided %d, "
          "erasures %d, erased leads %d" % (
              len(want["merges"]), dict(kinds), len(ident.voided),
              len(want["erasures"]), len(ident.erased)))
    chains = sum(1 for lead in ident.parent
                 if ident.parent[lead][0] in ident.parent)
    check(chains >= 2, "no chains of merges")
    return "%d leads, %d merges (%d chained), anomalies %s, %d voided, " \
        "%d erased leads" % (len(want["leads"]), len(want["merges"]),
                             chains, dict(kinds), len(ident.voided),
                             len(ident.erased))


def one_seed(broker, seed, leads, keyf):
    topic, db = "ids%d" % seed, "ids%d" % seed
    broker.cmd("topic %s 3" % topic)
    psql("CREATE DATABASE " + db)
    paths, events = workload(seed, leads)
    ident = Identity(events, KEY)
    want = ident.tables()
    step("seed %d: %s" % (seed, coverage(ident, want)))
    for n, path in enumerate(paths):
        emit(broker, topic, path)
        project(broker, topic, db, keyf)
        if n == 0:
            first = Identity(distinct(emit_lib.read_jsonl(path)), KEY)
            same("seed %d after the first round" % seed,
                 read_tables(psql, db), first.tables())
            check_reasons("seed %d after the first round" % seed, db, first)
    same("seed %d live" % seed, read_tables(psql, db), want)
    check_reasons("seed %d" % seed, db, ident)
    raw = sorted(ident.erased)
    rows = psql("SELECT count(*) FROM funnel.events WHERE lead_id = "
                "ANY(%s)" % lit_array(raw), db=db)
    check(rows == [["0"]], "seed %d: erased ids still in events" % seed)

    conn = ["-d", "dbname=" + db, "-X", "pseudonym.key.file=" + keyf]
    kafka = ["-b", broker.servers, "-t", topic, "-g", "g-" + topic]
    replay("rebuild", "--into", "r_kafka", "--from-kafka", "-q",
           *(conn + kafka))
    replay("rebuild", "--into", "r_db", "--from-db", "-q", *conn)
    replay("rebuild", "--into", "r_time", "--from-db", "--order", "time",
           "--batch", "97", "-q", *conn)
    for schema in ("r_kafka", "r_db", "r_time"):
        same("seed %d rebuilt into %s" % (seed, schema),
             read_tables(psql, db, schema), want)
        check_reasons("seed %d rebuilt into %s" % (seed, schema), db, ident,
                      schema)
        replay("diff", "--against", schema, "-q", *conn)
    step("seed %d: live, rebuilt from Kafka and from the database: the "
         "model's tables" % seed)


def lit_array(values):
    return "ARRAY[%s]::text[]" % ", ".join(
        "'" + v.replace("'", "''") + "'" for v in values) if values \
        else "ARRAY[]::text[]"


def main():
    seeds = [int(s) for s in os.environ.get("LF_IDENTITY_SEEDS",
                                            "1,2,3").split(",")]
    leads = int(os.environ.get("LF_IDENTITY_LEADS", "250"))
    Postgres()
    broker = Broker(topic="unused", partitions=1)
    keyf = emit_lib.key_file(KEY_HEX)
    for seed in seeds:
        one_seed(broker, seed, leads, keyf)
    broker.stop()
    print("ok: test_identity")


if __name__ == "__main__":
    main()
