"""emit_lib.py: helpers for the producer tests (test_emit.py, test_gen.py).

An independent reading of what leadflow-emit and leadflow-gen write: Kafka
through python3-kafka, Avro through python3-avro with the published .avsc,
partitions through python3-kafka's Java-compatible murmur2. Nothing here
uses libleadflow, so a bug there cannot hide itself.
"""
import atexit
import datetime
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import avro.io
import avro.schema
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

try:  # python3-kafka reads our lz4-compressed batches only with it
    import lz4.frame  # noqa: F401
except ImportError:
    print("FAIL: python3-lz4 is not installed (apt-get install python3-lz4)",
          file=sys.stderr)
    sys.exit(1)

BIN = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
    "LEADFLOW_BIN", "build/bin")
SRC = os.environ.get("LEADFLOW_SRC", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", ".."))
# CTest exports LEADFLOW_* for the test itself; our programs read LEADFLOW_*
# as settings, so they get a clean environment.
ENV = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}

_children = []


def _cleanup():
    for p in _children:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def step(msg):
    print("--- " + msg, flush=True)


def tmpdir():
    d = tempfile.mkdtemp(prefix="leadflow-emit-test.")
    atexit.register(lambda: subprocess.call(["rm", "-rf", d]))
    return d


def spawn(args, **kw):
    """Start a child process that is killed when the test exits."""
    kw.setdefault("env", ENV)
    p = subprocess.Popen(args, **kw)
    _children.append(p)
    return p


def run(args, **kw):
    """Run a program; returns CompletedProcess (stdout/stderr as bytes)."""
    kw.setdefault("env", ENV)
    kw.setdefault("timeout", 90)
    return subprocess.run(args, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, **kw)


def run_now(args, **kw):
    """run() with the environment as it is now (a test that started a
    throwaway PostgreSQL has put its PG* variables in it), without the
    LEADFLOW_* settings of the caller's shell."""
    kw.setdefault("env", {k: v for k, v in os.environ.items()
                          if not k.startswith("LEADFLOW_")})
    return run(args, **kw)


# A projector of the same group again: the mock cluster waits out the last
# member's session first; 6 s is the smallest it accepts.
REJOIN = ["-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500"]


def key_file(key_hex, comment=None):
    """A pseudonym key file in the test's directory that only its owner can
    read (leadflow refuses one others can), with an optional comment line."""
    path = os.path.join(tmpdir(), "pseudonym.key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        if comment:
            f.write("# " + comment + "\n")
        f.write(key_hex + "\n")
    return path


class Broker:
    """leadflow-devbroker as a child: bootstrap servers from its first line,
    fault commands on its stdin, one answer line each."""

    def __init__(self, topic="lead-events", partitions=4, brokers=1):
        self.log = open(os.path.join(tmpdir(), "broker.log"), "w+b")
        self.proc = spawn([os.path.join(BIN, "leadflow-devbroker"),
                           "--brokers", str(brokers),
                           "--topic", "%s:%d" % (topic, partitions)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=self.log)
        self.servers = self.proc.stdout.readline().decode().strip()
        check(self.servers.startswith("127.0.0.1:"),
              "devbroker printed no bootstrap servers: %r" % self.servers)
        self.topic = topic
        self.partitions = partitions

    def cmd(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().decode().strip()
        check(answer.startswith("ok"), "devbroker %r: %r" % (line, answer))
        return answer

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


_schemas = {}


def schema(version=1):
    """The published lead_event.vN.avsc (pinned schema id N), parsed."""
    if version not in _schemas:
        with open(os.path.join(SRC, "schemas", "avro",
                               "lead_event.v%d.avsc" % version)) as f:
            _schemas[version] = avro.schema.parse(f.read())
    return _schemas[version]


def _ms(dt):
    if isinstance(dt, int):
        return dt
    return int(round(dt.timestamp() * 1000))


def parse_time(s):
    """RFC 3339 (as leadflow-gen writes it) or epoch ms -> epoch ms."""
    if isinstance(s, int):
        return s
    d = datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return _ms(d)


def decode_value(value, version=2):
    """A framed Kafka value -> the flat event dict (JSON mapping), decoded
    by Apache Avro's Python library. The value must be of contract
    @version (pinned schema id 2 by default, what producers write)."""
    check(len(value) > 5 and value[0] == 0, "bad magic byte: %r" % value[:5])
    check(int.from_bytes(value[1:5], "big") == version,
          "schema id %d, expected %d" % (int.from_bytes(value[1:5], "big"),
                                         version))
    buf = io.BytesIO(value[5:])
    rec = avro.io.DatumReader(schema(version)).read(
        avro.io.BinaryDecoder(buf))
    check(buf.read() == b"", "trailing bytes after the Avro record")
    flat = {"event_id": rec["event_id"], "lead_id": rec["lead_id"],
            "type": rec["type"].lower(),
            "occurred_at": _ms(rec["occurred_at"]), "source": rec["source"]}
    if rec["actor"] is not None:
        flat["actor"] = rec["actor"]
    if rec.get("account_id") is not None:
        flat["account_id"] = rec["account_id"]
    for k, v in rec["payload"].items():
        if v is None or v == {}:
            continue
        if k == "reason" and flat["type"] == "recycled":
            v = v.lower()
        flat[k] = v
    return flat


def normalize(event):
    """A JSON-mapping event (as parsed from a line) in the form
    decode_value() returns: epoch ms, optional fields omitted when empty."""
    e = {k: v for k, v in event.items()
         if v is not None and v != {} and k != "_kafka"}
    e["occurred_at"] = parse_time(e["occurred_at"])
    return e


def java_partition(key, partitions):
    """Where Java's default partitioner puts a keyed record."""
    return (murmur2(key) & 0x7fffffff) % partitions


def consume_all(servers, topic, expect=None, timeout=30):
    """Every message of every partition of topic, in offset order per
    partition: list of ConsumerRecord. Waits until the end offsets are
    reached (and, if expect is given, until that many were seen)."""
    c = KafkaConsumer(bootstrap_servers=servers, api_version=(2, 5, 0),
                      enable_auto_commit=False, group_id=None,
                      consumer_timeout_ms=1000)
    try:
        deadline = time.time() + timeout
        parts = None
        while not parts and time.time() < deadline:
            parts = c.partitions_for_topic(topic)
            if not parts:
                time.sleep(0.2)
        check(parts, "topic %s has no partitions" % topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        out = []
        while time.time() < deadline:
            end = c.end_offsets(tps)
            batch = c.poll(timeout_ms=500, max_records=100000)
            for recs in batch.values():
                out.extend(recs)
            done = all(c.position(tp) >= end[tp] for tp in tps)
            if done and (expect is None or len(out) >= expect):
                break
        out.sort(key=lambda r: (r.partition, r.offset))
        return out
    finally:
        c.close()


def read_jsonl(path):
    with open(path, "rb") as f:
        return [json.loads(line) for line in f if line.strip()]


def summary(stderr):
    """The key=value summary line of leadflow-emit / leadflow-gen."""
    for line in stderr.decode(errors="replace").splitlines():
        if 'msg="summary"' in line:
            return dict(kv.split("=", 1) for kv in line.split()
                        if "=" in kv and not kv.startswith('msg='))
    fail("no summary line in:\n" + stderr.decode(errors="replace"))
