"""test_emit.py: leadflow-emit and lf_producer against the dev broker, checked
by independent readers (python3-kafka, python3-avro, kcat).

    /usr/bin/python3 tests/integration/test_emit.py BIN_DIR

Scenarios, each on its own devbroker:
  roundtrip    leadflow-gen | leadflow-emit: one message per line, keyed by
               lead_id, values decoded by Apache Avro equal to the input,
               CloudEvents headers, each on Java's murmur2 partition, each
               lead's events in input order; kcat sees the same.
  rejects      every kind of bad line lands in the rejects file with its
               line number, the original text and a reason naming the
               field; BOM, CRLF, blank and over-long lines; exit 65; the
               good lines around them are delivered.
  too_large    an event over message.max.bytes fails for good: exit 69.
  down_up      the broker goes down in the middle and comes back: every
               line delivered once, no duplicate in the topic, exit 0.
  lost_acks    responses slower than socket.timeout.ms (acks lost, requests
               retried): each line is reported delivered exactly once and
               the topic holds every event (see the note there).
  stays_away   the broker goes down for good: the rest end as failed in
               the rejects file, exit 75; every line reported delivered is
               in the topic, no failed one is.
  sigint       SIGINT while reading stdin: stop, flush, summary, exit 75;
               twice with the broker down: in-flight lines purged into the
               rejects file.
Takes about 40 s.
"""
import collections
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emit_lib import (BIN, ENV, Broker, check, consume_all,  # noqa: E402
                      decode_value, fail, java_partition, normalize, run,
                      spawn, step, summary, tmpdir)

EMIT = os.path.join(BIN, "leadflow-emit")
GEN = os.path.join(BIN, "leadflow-gen")
TOPIC = "lead-events"


def emit(broker, *args, stdin=None, timeout=90):
    return run([EMIT, "-b", broker.servers, "-t", TOPIC] + list(args),
               input=stdin, timeout=timeout)


def rejects_of(path):
    with open(path, "rb") as f:
        return [json.loads(line) for line in f]


def iso(ms):
    t = time.gmtime(ms // 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%03dZ" % (ms % 1000)


def check_messages(recs, events, partitions):
    """The topic holds exactly @events (parsed input lines, each once), as
    keyed, framed Avro with CloudEvents headers, on Java's partition, and
    each lead's events in input order."""
    by_id = {e["event_id"]: normalize(e) for e in events}
    check(len(by_id) == len(events), "test input has duplicate event ids")
    check(len(recs) == len(events),
          "%d messages in the topic for %d lines" % (len(recs), len(events)))
    seen = set()
    per_lead = collections.defaultdict(list)
    for r in recs:
        ev = decode_value(r.value)
        eid = ev["event_id"]
        check(eid in by_id, "unexpected event %s in the topic" % eid)
        check(eid not in seen, "event %s twice in the topic" % eid)
        seen.add(eid)
        check(ev == by_id[eid], "decoded %r\n  != input %r" % (ev, by_id[eid]))
        check(r.key == ev["lead_id"].encode(),
              "key %r is not the lead_id %r" % (r.key, ev["lead_id"]))
        want = java_partition(r.key, partitions)
        check(r.partition == want,
              "lead %s on partition %d, Java's murmur2 says %d"
              % (ev["lead_id"], r.partition, want))
        h = {k: v.decode() for k, v in r.headers}
        expect = {"ce_specversion": "1.0", "ce_id": eid,
                  "ce_type": "leadflow.lead." + ev["type"],
                  "ce_source": ev["source"], "ce_subject": ev["lead_id"],
                  "ce_time": iso(ev["occurred_at"]),
                  "content-type": "application/avro"}
        check(h == expect, "headers %r, expected %r" % (h, expect))
        per_lead[ev["lead_id"]].append(eid)
    want_order = collections.defaultdict(list)
    for e in events:
        want_order[e["lead_id"]].append(e["event_id"])
    for lead, ids in want_order.items():
        check(per_lead[lead] == ids,
              "lead %s: events out of input order in its partition" % lead)


def test_roundtrip():
    step("roundtrip: leadflow-gen | leadflow-emit, read back independently")
    d = tmpdir()
    b = Broker(TOPIC, partitions=6)
    gen = [GEN, "--leads", "1500", "--seed", "11", "-q"]
    r = run(gen + ["-o", d + "/events.jsonl"])
    check(r.returncode == 0, "leadflow-gen failed: %s" % r.stderr)
    pipe = subprocess.run(
        "%s | %s -b %s --rejects %s/rejects.jsonl" % (
            " ".join(gen), EMIT, b.servers, d),
        shell=True, stderr=subprocess.PIPE, env=ENV, timeout=90,
        executable="/bin/bash")
    check(pipe.returncode == 0, "gen | emit exited %d:\n%s"
          % (pipe.returncode, pipe.stderr.decode()[-2000:]))
    s = summary(pipe.stderr)
    with open(d + "/events.jsonl", "rb") as f:
        events = [json.loads(line) for line in f]
    check(int(s["read"]) == len(events) == int(s["delivered"]),
          "summary %r for %d lines" % (s, len(events)))
    check(int(s["rejected"]) == int(s["failed"]) == 0, "summary %r" % s)
    check(os.path.getsize(d + "/rejects.jsonl") == 0, "rejects not empty")
    recs = consume_all(b.servers, TOPIC, expect=len(events))
    check_messages(recs, events, 6)
    # kcat, a third reader: same keys on the same partitions.
    k = run(["kcat", "-b", b.servers, "-C", "-t", TOPIC, "-e", "-q",
             "-f", "%k\t%p\t%o\n"])
    check(k.returncode == 0, "kcat failed: %s" % k.stderr)
    rows = sorted(tuple(l.split("\t")) for l in k.stdout.decode().splitlines())
    mine = sorted((r.key.decode(), str(r.partition), str(r.offset))
                  for r in recs)
    check(rows == mine, "kcat and python3-kafka disagree")
    b.stop()
    print("ok: %d events, one message each, Avro, headers, murmur2" %
          len(events))


# Each bad kind: (line, what the reason must name).
def bad_lines():
    good = {"lead_id": "L-9", "type": "scored", "source": "marketo",
            "occurred_at": "2026-03-01T10:00:00.000Z", "score": 70,
            "threshold": 60, "model": "m1"}

    def j(**kw):
        e = dict(good)
        for k, v in kw.items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        return json.dumps(e, ensure_ascii=False).encode()

    ho = {"lead_id": "L-9", "type": "handed_off", "source": "marketo",
          "occurred_at": "2026-03-01T11:00:00Z", "owner": "rep-1",
          "sla_hours": -1}
    won = {"lead_id": "L-9", "type": "won", "source": "sf",
           "occurred_at": 1767225600000, "amount_minor": 100,
           "currency": "usd"}
    return [
        (b'{"lead_id": "L-9", "type": "scored", ', "invalid JSON"),
        (j(lead_id=None), '"lead_id"'),
        (j(type="teleported"), '"type"'),
        (j(score="high"), '"score"'),
        (json.dumps(ho).encode(), '"sla_hours"'),
        (json.dumps(won).encode(), '"currency"'),
        (j(colour="blue"), '"colour"'),
        (j(channel="web"), '"channel"'),
        (j(lead_id=""), '"lead_id"'),
        (j(lead_id="x" * 200), '"lead_id"'),
        (j(source="caf").replace(b"caf", b"caf\xe9"), '"source"'),
        (j(occurred_at="1969-12-31T23:59:59Z"), '"occurred_at"'),
        (b"[1, 2]", "object"),
        (json.dumps(dict(won, currency="USD", amount_minor=-5)).encode(),
         '"amount_minor"'),
        (j(score=-3), '"score"'),
        (j(occurred_at="last tuesday"), '"occurred_at"'),
    ]


def test_rejects():
    step("rejects: every kind of bad line, with BOM, CRLF, blank, long")
    d = tmpdir()
    b = Broker(TOPIC, partitions=4)
    good = [
        {"lead_id": "L-1", "type": "captured", "source": "web-forms",
         "occurred_at": "2026-03-01T09:00:00.000Z", "channel": "webinar",
         "attributes": {"company": "Müller \"&\" Söhne\tGmbH"}},
        {"lead_id": "L-1", "type": "scored", "source": "marketo",
         "occurred_at": "2026-03-01T09:30:00Z", "score": 80,
         "threshold": 60, "model": "m1"},
        {"lead_id": "L-2", "type": "handed_off", "source": "marketo",
         "occurred_at": 1772359200000, "owner": "rep-7", "sla_hours": 24},
    ]
    enc = [json.dumps(e, ensure_ascii=False).encode() for e in good]
    lines, expect = [], {}
    lines.append(b"\xef\xbb\xbf" + enc[0])  # 1: BOM, then a good line
    lines.append(b"")  # 2: blank
    lines.append(enc[1])  # 3
    for text, field in bad_lines():
        lines.append(text)
        expect[len(lines)] = (field, text)
    lines.append(b"  \t ")  # blank, spaces only
    long_line = b'{"lead_id":"' + b"y" * (8 << 20) + b'"}'
    lines.append(long_line)
    expect[len(lines)] = ("8388608", long_line[:1024])
    lines.append(enc[2])  # last line, no newline at the end
    data = b"\r\n".join(lines)
    with open(d + "/in.jsonl", "wb") as f:
        f.write(data)
    with open(d + "/more.jsonl", "wb") as f:
        f.write(b'{"lead_id":"L-3","type":"lost","source":"sf",'
                b'"occurred_at":"2026-03-02T00:00:00Z","reason":"price"}\n'
                b'{"lead_id":"L-3","type":"lost"}\n')
    r = emit(b, "--rejects", d + "/rejects.jsonl", d + "/in.jsonl",
             d + "/more.jsonl")
    check(r.returncode == 65, "exit %d, expected 65:\n%s"
          % (r.returncode, r.stderr.decode()[-2000:]))
    rej = rejects_of(d + "/rejects.jsonl")
    for x in rej:
        check(set(x) - {"lossy"} == {"file", "line", "reason", "text"},
              "reject keys %r" % sorted(x))
    got = {x["line"]: x for x in rej if x["file"] == d + "/in.jsonl"}
    check(sorted(got) == sorted(expect),
          "rejected lines %r, expected %r" % (sorted(got), sorted(expect)))
    for n, (field, text) in expect.items():
        x = got[n]
        check(field in x["reason"], "line %d: reason %r does not name %s"
              % (n, x["reason"], field))
        want = text.decode("utf-8", errors="replace")
        check(x["text"] == want, "line %d: text %r, expected %r"
              % (n, x["text"][:80], want[:80]))
        cut = "text holds its first" in x["reason"]  # a long line, cut
        check(x.get("lossy", False) is (cut or want.encode() != text),
              "line %d: lossy %r" % (n, x.get("lossy")))
    other = [x for x in rej if x["file"] == d + "/more.jsonl"]
    check(len(other) == 1 and other[0]["line"] == 2 and
          "missing required field" in other[0]["reason"],
          "second file's reject: %r" % other)
    s = summary(r.stderr)
    nbad = len(expect) + 1
    check(int(s["read"]) == 3 + nbad + 1 and int(s["blank"]) == 2 and
          int(s["rejected"]) == nbad and int(s["delivered"]) == 4 and
          int(s["failed"]) == 0, "summary %r" % s)
    recs = consume_all(b.servers, TOPIC, expect=4)
    events = [json.loads(e) for e in enc] + [json.loads(
        b'{"lead_id":"L-3","type":"lost","source":"sf",'
        b'"occurred_at":"2026-03-02T00:00:00Z","reason":"price"}')]
    got_ev = sorted((decode_value(r.value) for r in recs),
                    key=lambda e: e["occurred_at"])
    want_ev = sorted((normalize(e) for e in events),
                     key=lambda e: e["occurred_at"])
    for e in got_ev:
        e.pop("event_id")  # derived from the content; checked below
    check(got_ev == want_ev, "delivered %r\n  expected %r" % (got_ev, want_ev))
    # Derived ids are stable: sending the good lines again gives the same.
    ids = sorted(decode_value(r.value)["event_id"] for r in recs)
    r2 = emit(b, "-q", d + "/in.jsonl", d + "/more.jsonl")
    recs2 = consume_all(b.servers, TOPIC, expect=8)
    ids2 = sorted(decode_value(r.value)["event_id"] for r in recs2)
    check(ids2 == sorted(ids + ids), "re-sent lines got new event ids")
    check(r2.returncode == 65, "second run exit %d" % r2.returncode)
    # Without --rejects the reject lines go to stderr, still JSON.
    r3 = emit(b, "-qq", "--dry-run", d + "/more.jsonl")
    errs = [json.loads(l) for l in r3.stderr.decode().splitlines()]
    check(r3.returncode == 65 and len(errs) == 1 and errs[0]["line"] == 2,
          "dry run to stderr: %d %r" % (r3.returncode, r3.stderr))
    b.stop()
    print("ok: %d kinds of bad line, each named; good lines delivered"
          % len(expect))


def test_too_large():
    step("too_large: an event over message.max.bytes fails for good (69)")
    d = tmpdir()
    b = Broker(TOPIC)
    attrs = {"a%02d" % i: "v" * 60000 for i in range(20)}
    big = {"lead_id": "L-big", "type": "captured", "source": "web",
           "occurred_at": "2026-03-01T00:00:00Z", "channel": "web",
           "attributes": attrs}
    ok = {"lead_id": "L-ok", "type": "captured", "source": "web",
          "occurred_at": "2026-03-01T00:00:00Z", "channel": "web"}
    data = (json.dumps(ok) + "\n" + json.dumps(big) + "\n").encode()
    r = emit(b, "--rejects", d + "/rej", stdin=data)
    check(r.returncode == 69, "exit %d, expected 69:\n%s"
          % (r.returncode, r.stderr.decode()[-1500:]))
    rej = rejects_of(d + "/rej")
    check(len(rej) == 1 and rej[0]["line"] == 2 and rej[0]["file"] == "-" and
          "too large" in rej[0]["reason"].lower(), "rejects %r" %
          [(x["line"], x["reason"]) for x in rej])
    check(len(consume_all(b.servers, TOPIC, expect=1)) == 1, "ok line lost")
    b.stop()
    print("ok: exit 69, reason %r" % rej[0]["reason"])


def feed(proc, lines):
    proc.stdin.write(b"".join(lines))
    proc.stdin.flush()


def wait_count(b, n, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(consume_all(b.servers, TOPIC, timeout=5)) >= n:
            return
        time.sleep(0.2)
    fail("the topic never reached %d messages" % n)


def gen_lines(d, leads, seed):
    r = run([GEN, "--leads", str(leads), "--seed", str(seed), "-q",
             "-o", d + "/in.jsonl"])
    check(r.returncode == 0, "gen: %s" % r.stderr)
    with open(d + "/in.jsonl", "rb") as f:
        return f.read().splitlines(True)


def test_down_up():
    step("down_up: the broker goes down in the middle and comes back")
    d = tmpdir()
    b = Broker(TOPIC)
    lines = gen_lines(d, 800, 21)
    half = len(lines) // 2
    err = open(d + "/err", "wb")
    p = spawn([EMIT, "-b", b.servers, "--rejects", d + "/rej"],
              stdin=subprocess.PIPE, stderr=err)
    feed(p, lines[:half])
    wait_count(b, half)
    b.cmd("down 1")
    feed(p, lines[half:])
    time.sleep(8)  # emit waits, and says so after 5 s
    b.cmd("up 1")
    p.stdin.close()
    rc = p.wait(60)
    log = open(d + "/err", "rb").read()
    check(rc == 0, "exit %d:\n%s" % (rc, log.decode()[-2000:]))
    check(b"waiting for the broker" in log, "no progress report while down")
    s = summary(log)
    check(int(s["delivered"]) == len(lines), "summary %r" % s)
    recs = consume_all(b.servers, TOPIC, expect=len(lines))
    check_messages(recs, [json.loads(l) for l in lines], 4)
    b.stop()
    print("ok: %d lines, each once in the topic, exit 0" % len(lines))


def test_lost_acks():
    # The acks of a whole window of requests are lost (responses slower than
    # socket.timeout.ms), so librdkafka retries requests the broker already
    # wrote. A real broker drops those retries by producer id and sequence
    # (enable.idempotence). librdkafka 2.0.2's mock cluster checks sequences
    # only for transactional producers, so here copies can reach the topic;
    # what must hold whatever the broker: emit reports each line delivered
    # exactly once, every event is in the topic, and any copy is the same
    # bytes with the same event_id (the projector's idempotence key).
    step("lost_acks: retried requests after lost acks")
    d = tmpdir()
    b = Broker(TOPIC)
    lines = gen_lines(d, 400, 23)
    half = len(lines) // 2
    p = spawn([EMIT, "-b", b.servers, "--rejects", d + "/rej",
               "-X", "socket.timeout.ms=1000"],
              stdin=subprocess.PIPE, stderr=open(d + "/err", "wb"))
    feed(p, lines[:half])
    wait_count(b, half)
    b.cmd("rtt 1 2500")
    feed(p, lines[half:])
    time.sleep(4)
    b.cmd("rtt 1 0")
    p.stdin.close()
    rc = p.wait(60)
    log = open(d + "/err", "rb").read()
    check(rc == 0, "exit %d:\n%s" % (rc, log.decode()[-2000:]))
    check(b"Timed out" in log, "no request timed out: the test did not bite")
    s = summary(log)
    check(int(s["delivered"]) == len(lines) and int(s["failed"]) == 0,
          "summary %r" % s)
    recs = consume_all(b.servers, TOPIC, expect=len(lines))
    by_id = collections.defaultdict(set)
    for r in recs:
        by_id[decode_value(r.value)["event_id"]].add(r.value)
    want = {json.loads(l)["event_id"] for l in lines}
    check(set(by_id) == want, "topic events differ from the input")
    check(all(len(v) == 1 for v in by_id.values()),
          "a copy differs from its original")
    print("ok: %d lines delivered once each; %d copies in the mock's topic"
          % (len(lines), len(recs) - len(lines)))
    b.stop()


def test_stays_away():
    step("stays_away: the broker goes down for good")
    d = tmpdir()
    b = Broker(TOPIC)
    lines = gen_lines(d, 300, 25)
    half = len(lines) // 2
    p = spawn([EMIT, "-b", b.servers, "--rejects", d + "/rej",
               "-X", "message.timeout.ms=3000"],
              stdin=subprocess.PIPE, stderr=open(d + "/err", "wb"))
    feed(p, lines[:half])
    wait_count(b, half)
    b.cmd("down 1")
    feed(p, lines[half:])
    p.stdin.close()
    rc = p.wait(60)
    log = open(d + "/err", "rb").read()
    check(rc == 75, "exit %d, expected 75:\n%s" % (rc, log.decode()[-2000:]))
    s = summary(log)
    rej = rejects_of(d + "/rej")
    check(int(s["failed"]) == len(rej) > 0 and
          int(s["delivered"]) + len(rej) == len(lines),
          "summary %r with %d rejects" % (s, len(rej)))
    for x in rej:
        check("timed out" in x["reason"], "reason %r" % x["reason"])
        check(x["text"].encode() + b"\n" == lines[x["line"] - 1],
              "line %d: reject text is not the line" % x["line"])
    b.cmd("up 1")
    failed = {x["line"] for x in rej}
    delivered = {json.loads(l)["event_id"] for i, l in enumerate(lines)
                 if i + 1 not in failed}
    maybe = {json.loads(lines[x["line"] - 1])["event_id"] for x in rej
             if "may have" in x["reason"]}
    recs = consume_all(b.servers, TOPIC, expect=len(delivered))
    topic = {decode_value(r.value)["event_id"] for r in recs}
    check(delivered <= topic, "%d lines reported delivered are not in the "
          "topic" % len(delivered - topic))
    check(topic <= delivered | maybe, "%d failed lines are in the topic"
          % len(topic - delivered - maybe))
    # The broker is back: the rejects file is re-sent as it is (exit 75
    # says so), and then every line is in the topic, once.
    r = emit(b, "-q", "--rejects", d + "/rej3", d + "/rej")
    check(r.returncode == 0 and os.path.getsize(d + "/rej3") == 0,
          "re-sending the rejects file: exit %d, %r" % (
              r.returncode, open(d + "/rej3").read()[:300]))
    recs = consume_all(b.servers, TOPIC,
                       expect=len({json.loads(l)["event_id"]
                                   for l in lines}))
    check({decode_value(r.value)["event_id"] for r in recs} ==
          {json.loads(l)["event_id"] for l in lines},
          "after the re-send the topic lacks lines")
    # Nothing there at all: every line fails, exit 75.
    r = run([EMIT, "-b", "127.0.0.1:1", "-X", "message.timeout.ms=1500",
             "-q", "--rejects", d + "/rej2", d + "/in.jsonl"])
    check(r.returncode == 75 and
          len(rejects_of(d + "/rej2")) == len(lines),
          "no broker: exit %d, %d rejects" % (r.returncode,
                                              len(rejects_of(d + "/rej2"))))
    b.stop()
    print("ok: %d delivered, %d failed into the rejects file, exit 75"
          % (len(delivered), len(rej)))


def test_sigint():
    step("sigint: stop reading, flush, report")
    d = tmpdir()
    b = Broker(TOPIC)
    lines = gen_lines(d, 200, 27)
    p = spawn([EMIT, "-b", b.servers, "--rejects", d + "/rej"],
              stdin=subprocess.PIPE, stderr=open(d + "/err", "wb"))
    feed(p, lines)  # stdin stays open: emit blocks in read()
    wait_count(b, len(lines))
    p.send_signal(signal.SIGINT)
    rc = p.wait(20)
    s = summary(open(d + "/err", "rb").read())
    check(rc == 75 and int(s["delivered"]) == len(lines) and
          s.get("interrupted") == "true", "exit %d, summary %r" % (rc, s))
    # Broker down: the lines stay in flight; two signals give up at once,
    # and every one of them is in the rejects file as failed.
    b.cmd("down 1")
    p = spawn([EMIT, "-b", b.servers, "--rejects", d + "/rej2"],
              stdin=subprocess.PIPE, stderr=open(d + "/err2", "wb"))
    feed(p, lines[:50])
    time.sleep(2)
    p.send_signal(signal.SIGINT)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    rc = p.wait(20)
    log = open(d + "/err2", "rb").read()
    s = summary(log)
    rej = rejects_of(d + "/rej2")
    check(rc == 75 and int(s["failed"]) == 50 == len(rej) and
          int(s["delivered"]) == 0, "exit %d, summary %r, %d rejects:\n%s"
          % (rc, s, len(rej), log.decode()[-1500:]))
    check(all("urge" in x["reason"] for x in rej),
          "reasons %r" % {x["reason"] for x in rej})
    b.stop()
    print("ok: SIGINT flushes and reports; a second gives up into rejects")


def test_cli():
    step("cli: --help, --version, usage errors, -X dump")
    r = run([EMIT, "--help"])
    check(r.returncode == 0 and b"Exit status" in r.stdout and
          not r.stderr, "--help")
    r = run([EMIT, "--version"])
    out = r.stdout.decode()
    check(r.returncode == 0 and all(w in out for w in
                                    ("leadflow-emit", "librdkafka",
                                     "avro-c", "libpq")), "--version")
    r = run([EMIT, "--bogus"])
    check(r.returncode == 64 and b"Usage" in r.stderr, "bad option")
    r = run([EMIT, "-X", "noequals"])
    check(r.returncode == 64, "bad -X")
    r = run([EMIT, "-X", "dump", "-X", "sasl.password=hunter2",
             "-b", "h:1"])
    out = r.stdout.decode()
    check(r.returncode == 0 and "hunter2" not in out and
          "sasl.password=***" in out and "bootstrap.servers=h:1" in out and
          "enable.idempotence=true" in out and "acks=all" in out and
          "partitioner=murmur2_random" in out and
          "compression.type=lz4" in out, "-X dump:\n" + out)
    r = run([EMIT, "-X", "no.such.property=1", "-b", "h:1"], input=b"")
    check(r.returncode == 78 and b"no.such.property" in r.stderr,
          "unknown librdkafka key: %d %r" % (r.returncode, r.stderr))
    r = run([EMIT, "-n", "/nonexistent/file"])
    check(r.returncode == 66, "missing input: exit %d" % r.returncode)
    print("ok")


def test_closed_pipe():
    step("closed_pipe: the reader of the rejects goes away: 74, summarised")
    d = tmpdir()
    b = Broker(TOPIC)
    r = run([GEN, "--leads", "300", "--seed", "9", "--bad", "0.05", "-q",
             "-o", d + "/in.jsonl"])
    check(r.returncode == 0, "gen: %s" % r.stderr)
    lines = [x for x in open(d + "/in.jsonl", "rb").read().splitlines()
             if x.strip()]
    r = run([EMIT, "--dry-run", "-qq", "-r", d + "/dry", d + "/in.jsonl"])
    good = len(lines) - len(rejects_of(d + "/dry"))
    check(r.returncode == 65 and 0 < good < len(lines),
          "dry run: exit %d, %d good" % (r.returncode, good))
    # A dry run refuses the settings a real run would (78), not only
    # leadflow's own.
    for bad in ("no.such.key=1", "linger.ms=abc"):
        r = run([EMIT, "--dry-run", "-qq", "-X", bad, d + "/in.jsonl"])
        check(r.returncode == 78 and b"configuration" in r.stderr,
              "dry run with -X %s: exit %d, %r" % (bad, r.returncode,
                                                   r.stderr[-300:]))
    # `| head -n 1`: head reads one reject and exits; emit used to die of
    # SIGPIPE (141) with nothing sent and no summary.
    r = run(["bash", "-c", 'set -o pipefail; "$0" -b "$1" -t "$2" -r '
             '/dev/stdout "$3" 2>"$4" | head -n 1 >/dev/null; '
             'echo "${PIPESTATUS[0]}"', EMIT, b.servers, TOPIC,
             d + "/in.jsonl", d + "/err"])
    rc = int(r.stdout.decode().split()[-1])
    err = open(d + "/err").read()
    check(rc == 74 and "summary" in err,
          "exit %d, stderr %r" % (rc, err[-600:]))
    check(len(consume_all(b.servers, TOPIC, expect=good)) == good,
          "the good lines were not all sent")
    b.stop()
    print("ok: exit 74, %d good lines of %d sent" % (good, len(lines)))


def test_rejects_resent():
    """A reject whose text is not the line (U+FFFD for bytes that were not
    UTF-8) is not sent as it is: a re-send would deliver an id no one
    wrote. A NUL is carried, so its re-sent reject says the line's own
    reason. A rejects file that could not be written is 74, not 75."""
    step("re-sent rejects: lossy text refused until fixed; /dev/full is 74")
    d = tmpdir()
    good = ('{"lead_id":"U-1","type":"captured","occurred_at":'
            '"2026-01-05T09:00:00Z","source":"s","channel":"web",'
            '"attributes":{}}')
    latin1 = good.replace('U-1', 'U-2\xe9').encode('latin-1')
    nul = b'{"lead_id":"U-3\x00","type":"captured"}'
    with open(d + "/in.jsonl", "wb") as f:
        f.write(good.encode() + b"\n" + latin1 + b"\n" + nul + b"\n")
    dry = [EMIT, "-q", "--dry-run", "-t", TOPIC]
    r = run(dry + ["-r", d + "/r1", d + "/in.jsonl"])
    r1 = rejects_of(d + "/r1")
    check(r.returncode == 65 and len(r1) == 2, "first run %d, %r" % (
        r.returncode, r1))
    check(r1[0].get("lossy") is True and "\ufffd" in r1[0]["text"] and
          "lossy" not in r1[1], "marks: %r" % r1)
    r = run(dry + ["-r", d + "/r2", d + "/r1"])
    r2 = rejects_of(d + "/r2")
    check(r.returncode == 65 and len(r2) == 2, "re-send %d, %r" % (
        r.returncode, r2))
    check(r2[0].get("lossy") is True and "not its line" in r2[0]["reason"],
          "lossy re-sent: %r" % r2[0])
    check(r2[1]["reason"] == r1[1]["reason"], "NUL re-sent: %r, first %r" % (
        r2[1]["reason"], r1[1]["reason"]))
    # fixed as the message says: valid again
    fixed = dict(r2[0], text=r2[0]["text"].replace("\ufffd", "e"))
    del fixed["lossy"]
    with open(d + "/r3", "w") as f:
        f.write(json.dumps(fixed) + "\n")
    r = run(dry + [d + "/r3"])
    check(r.returncode == 0, "fixed reject: %d %r" % (r.returncode,
                                                     r.stderr))
    r = run([EMIT, "-q", "-b", "127.0.0.1:1", "-t", TOPIC, "-X",
             "message.timeout.ms=1000", "-r", "/dev/full", d + "/in.jsonl"])
    check(r.returncode == 74 and b"cannot write the rejects file" in
          r.stderr, "rejects to /dev/full: exit %d" % r.returncode)
    print("ok: lossy rejects refused until fixed, NUL keeps its reason, 74")


if __name__ == "__main__":
    t0 = time.time()
    for t in (test_cli, test_roundtrip, test_rejects, test_too_large,
              test_down_up, test_lost_acks, test_stays_away, test_sigint,
              test_closed_pipe, test_rejects_resent):
        t()
    print("PASS test_emit (%.0f s)" % (time.time() - t0))
