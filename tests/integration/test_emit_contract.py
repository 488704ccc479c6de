"""test_emit_contract.py: the contract version producers write.

    /usr/bin/python3 tests/integration/test_emit_contract.py BIN_DIR

- leadflow-emit writes contract v2 (schema id 2) by default: account_id
  and the merged, voided and erased events reach the topic, read back with
  python3-avro and lead_event.v2.avsc.
- -X contract.version=1 writes v1 (schema id 1): each kind of line v1
  cannot carry (account_id, merged, voided, erased) goes to the rejects
  file with a reason that says so, exit 65 as for other rejected lines,
  and is never sent with the field dropped; the other lines are delivered.
  --dry-run rejects the same lines.
- leadflow-gen --produce with the contract v2 knobs writes what its JSON
  output says; with contract.version=1 it refuses to start (exit 78).
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emit_lib import (BIN, Broker, check, consume_all,  # noqa: E402
                      decode_value, normalize, run, step, summary, tmpdir)

EMIT = os.path.join(BIN, "leadflow-emit")
GEN = os.path.join(BIN, "leadflow-gen")


def line(n, type_, **fields):
    e = {"event_id": "00000000-0000-4000-8000-%012d" % n,
         "lead_id": "L-%d" % (n % 7), "type": type_,
         "occurred_at": "2026-03-01T09:30:%02d.250Z" % (n % 60),
         "source": "crm"}
    e.update(fields)
    return e


V1_LINES = [
    line(1, "captured", channel="web", attributes={"utm": "x"}),
    line(2, "scored", score=80, threshold=60, model="m"),
    line(3, "lost", reason="price", actor="rep-1"),
]
# Each kind of line v1 cannot carry, with the reason it is refused for.
V2_ONLY = [
    (line(10, "accepted", owner="rep-2", account_id="ACME"),
     'field "account_id": contract v1 cannot carry it; '),
    (line(11, "merged", into_lead_id="L-99"),
     'field "type": contract v1 cannot carry merged events; '),
    (line(12, "voided", voided_event_id="00000000-0000-4000-8000-000000000001",
          reason="entered twice"),
     'field "type": contract v1 cannot carry voided events; '),
    (line(13, "erased", request_id="DSR-1"),
     'field "type": contract v1 cannot carry erased events; '),
]


def write_input(d):
    lines = V1_LINES[:2] + [e for e, _ in V2_ONLY] + V1_LINES[2:]
    path = os.path.join(d, "in.jsonl")
    with open(path, "w") as f:
        for e in lines:
            f.write(json.dumps(e) + "\n")
    return path, lines


def rejects_of(path):
    with open(path) as f:
        return [json.loads(x) for x in f]


def test_default_is_v2(b, path, lines):
    step("default: contract v2, every line delivered with schema id 2")
    r = run([EMIT, "-b", b.servers, "-t", "c2", path])
    check(r.returncode == 0, "emit exit %d: %s" % (r.returncode, r.stderr))
    recs = consume_all(b.servers, "c2", expect=len(lines))
    got = sorted((decode_value(x.value, 2) for x in recs),
                 key=lambda e: e["event_id"])
    want = sorted((normalize(e) for e in lines), key=lambda e: e["event_id"])
    check(got == want, "v2 topic:\n  %r\n!= %r" % (got, want))
    print("ok: %d events, account_id and the identity events included"
          % len(got))


def test_v1_rejects(b, path, lines):
    step("contract.version=1: v2-only lines rejected with their reason")
    d = os.path.dirname(path)
    for dry in (True, False):
        rej = os.path.join(d, "rejects-%s.jsonl" % dry)
        args = [EMIT, "-b", b.servers, "-t", "c1", "-X", "contract.version=1",
                "--rejects", rej, path] + (["--dry-run"] if dry else [])
        r = run(args)
        check(r.returncode == 65, "emit%s exit %d, want 65: %s"
              % (" --dry-run" if dry else "", r.returncode, r.stderr))
        got = rejects_of(rej)
        check(len(got) == len(V2_ONLY), "%d rejects: %r" % (len(got), got))
        for (e, reason), rj in zip(V2_ONLY, got):
            check(rj["reason"].startswith(reason),
                  "%s: reason %r, want %r" % (e["type"], rj["reason"], reason))
            check(json.loads(rj["text"]) == e, "reject text %r" % rj["text"])
            check(rj["line"] == lines.index(e) + 1, "line %r" % rj["line"])
        s = summary(r.stderr)
        check(int(s["rejected"]) == len(V2_ONLY), "summary %r" % s)
    recs = consume_all(b.servers, "c1", expect=len(V1_LINES))
    got = sorted((decode_value(x.value, 1) for x in recs),
                 key=lambda e: e["event_id"])
    check(got == [normalize(e) for e in V1_LINES],
          "v1 topic holds %r" % got)
    print("ok: %d rejected with their reason (also --dry-run), %d sent as v1"
          % (len(V2_ONLY), len(got)))


def test_gen(b):
    step("leadflow-gen --produce with accounts, merges, voids, erasures")
    knobs = ["--leads", "300", "--seed", "5", "--accounts", "40",
             "--merges", "0.1", "--voids", "0.05", "--erasures", "0.05"]
    r = run([GEN] + knobs + ["-q"])
    check(r.returncode == 0, "gen: %s" % r.stderr)
    want = [normalize(json.loads(x)) for x in r.stdout.splitlines()]
    types = {e["type"] for e in want}
    check({"merged", "voided", "erased"} <= types, "types %r" % types)
    accounts = {e["account_id"] for e in want}
    check(1 < len(accounts) <= 40 and all("account_id" in e for e in want),
          "accounts %d" % len(accounts))
    r = run([GEN] + knobs + ["--produce", "-b", b.servers, "-t", "cg",
                             "-X", "contract.version=1"])
    check(r.returncode == 78 and b"contract.version=1 cannot carry"
          in r.stderr, "gen v1 with knobs: exit %d %s"
          % (r.returncode, r.stderr))
    r = run([GEN] + knobs + ["--produce", "-b", b.servers, "-t", "cg"])
    check(r.returncode == 0, "gen --produce exit %d: %s"
          % (r.returncode, r.stderr[-800:]))
    recs = consume_all(b.servers, "cg", expect=len(want))
    got = sorted((decode_value(x.value, 2) for x in recs),
                 key=lambda e: e["event_id"])
    check(got == sorted(want, key=lambda e: e["event_id"]),
          "gen --produce differs from its JSON output")
    print("ok: %d events, %d accounts; v1 refused before producing"
          % (len(got), len(accounts)))


if __name__ == "__main__":
    t0 = time.time()
    d = tmpdir()
    b = Broker("c2", partitions=2)
    for t in ("c1", "cg"):
        b.cmd("topic %s 2" % t)
    path, lines = write_input(d)
    test_default_is_v2(b, path, lines)
    test_v1_rejects(b, path, lines)
    test_gen(b)
    b.stop()
    print("PASS test_emit_contract (%.0f s)" % (time.time() - t0))
