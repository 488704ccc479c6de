#!/usr/bin/python3
"""sr_client.py: the other side of the ecosystem for test_registry.sh: a
producer and a consumer written with independent libraries (python3-avro,
python3-kafka, urllib) that use the schema registry the Confluent way.

("v2" in the command names is the test schema v1x, not contract v2.)

  sr_client.py produce-v2 TOPIC < events.jsonl
      register tests/data/lead_event.v1x.avsc under TOPIC-value, write each
      event with it (correlation_id and, for captured, landing_page set),
      framed with the registry's id; prints the id
  sr_client.py read-v2 TOPIC EXPECTED.jsonl
      read every message, fetch its writer schema by id from the registry,
      decode it with v1x as the reader schema (Avro schema resolution),
      and check it against the expected events; prints "v1-written=N
      v2-written=M" (N: written without v1x's fields, by leadflow in
      contract v1 or v2, read with the new fields as their defaults, null;
      M: written with v1x)
  sr_client.py ids TOPIC
      print the schema id framed into each message, one per line

Environment: LEADFLOW_BROKERS, SR_URL, SR_USER (user:password, optional).
"""

import base64
import datetime
import io
import json
import os
import sys
import urllib.request

import avro.io
import avro.schema
from kafka import KafkaProducer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emit_lib import consume_all  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
V2 = os.path.join(HERE, "..", "data", "lead_event.v1x.avsc")
UTC = datetime.timezone.utc
TYPES = ["captured", "scored", "handed_off", "accepted", "recycled",
         "qualified", "won", "lost", "disqualified"]
PAYLOAD = {
    "captured": ["channel", "campaign", "attributes"],
    "scored": ["score", "threshold", "model"],
    "handed_off": ["owner", "sla_hours"],
    "accepted": ["owner"],
    "recycled": ["reason", "note"],
    "qualified": ["opportunity_id", "amount_minor", "currency"],
    "won": ["amount_minor", "currency"],
    "lost": ["reason"],
    "disqualified": ["reason"],
}


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def registry(method, path, body=None):
    req = urllib.request.Request(
        os.environ["SR_URL"] + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    if os.environ.get("SR_USER"):
        req.add_header("Authorization", "Basic " + base64.b64encode(
            os.environ["SR_USER"].encode()).decode())
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def format_time(dt):
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (
        dt.microsecond // 1000)


def to_datum(e):
    """Our JSON form -> a v2 datum (the v2 fields filled in)."""
    t = e["type"]
    payload = {}
    for f in PAYLOAD[t]:
        v = e.get(f)
        if f == "attributes":
            v = dict(sorted((v or {}).items()))
        elif t == "recycled" and f == "reason":
            v = v.upper()
        payload[f] = v
    if t == "captured":
        payload["landing_page"] = "/lp/" + e["lead_id"]
    return {"event_id": e["event_id"], "lead_id": e["lead_id"],
            "type": t.upper(), "occurred_at": parse_time(e["occurred_at"]),
            "source": e["source"], "actor": e.get("actor"),
            "correlation_id": "corr-" + e["event_id"][:8],
            "payload": payload}


def from_datum(d):
    """A datum read as v2 -> (our JSON form, the v2 fields)."""
    t = d["type"].lower()
    e = {"event_id": d["event_id"], "lead_id": d["lead_id"], "type": t,
         "occurred_at": format_time(d["occurred_at"]), "source": d["source"]}
    if d["actor"] is not None:
        e["actor"] = d["actor"]
    for f in PAYLOAD[t]:
        v = d["payload"][f]
        if v is None or (f == "attributes" and not v):
            continue
        if t == "recycled" and f == "reason":
            v = v.lower()
        e[f] = v
    extra = {"correlation_id": d["correlation_id"],
             "landing_page": d["payload"].get("landing_page")}
    return e, extra


def normal(e):
    return {k: v for k, v in e.items() if v is not None and v != {}}


def encode(schema, datum, branch):
    """Encode with python3-avro, the payload branch chosen explicitly (it
    resolves a union of records by shape, and several are alike)."""
    buf = io.BytesIO()
    enc = avro.io.BinaryEncoder(buf)
    writer = avro.io.DatumWriter(schema)
    for f in schema.fields:
        if f.name == "payload":
            enc.write_long(branch)
            writer.write_data(f.type.schemas[branch], datum["payload"], enc)
        else:
            writer.write_data(f.type, datum[f.name], enc)
    return buf.getvalue()


def produce_v2(topic):
    text = open(V2).read()
    schema = avro.schema.parse(text)
    sid = registry("POST", "/subjects/%s-value/versions" % topic,
                   {"schema": text})["id"]
    producer = KafkaProducer(bootstrap_servers=os.environ["LEADFLOW_BROKERS"],
                             acks="all", api_version=(2, 5, 0))
    for line in sys.stdin:
        if not line.strip():
            continue
        e = json.loads(line)
        value = b"\x00" + sid.to_bytes(4, "big") + encode(
            schema, to_datum(e), TYPES.index(e["type"]))
        producer.send(topic, key=e["lead_id"].encode(), value=value)
    producer.flush()
    print(sid)


def read_v2(topic, expected_path):
    with open(expected_path) as f:
        want = {e["event_id"]: normal(e)
                for e in (json.loads(x) for x in f if x.strip())}
    reader_schema = avro.schema.parse(open(V2).read())
    writers, counts, seen = {}, {"v1": 0, "v2": 0}, set()
    for rec in consume_all(os.environ["LEADFLOW_BROKERS"], topic,
                           expect=len(want)):
        v = rec.value
        if v[0] != 0:
            fail("offset %d: magic byte %d" % (rec.offset, v[0]))
        sid = int.from_bytes(v[1:5], "big")
        if sid not in writers:
            writers[sid] = avro.schema.parse(
                registry("GET", "/schemas/ids/%d" % sid)["schema"])
        w = writers[sid]
        d = avro.io.DatumReader(w, reader_schema).read(
            avro.io.BinaryDecoder(io.BytesIO(v[5:])))
        e, extra = from_datum(d)
        if normal(e) != want.get(e["event_id"]):
            fail("schema id %d: read %s, expected %s"
                 % (sid, e, want.get(e["event_id"])))
        v2_written = any(f.name == "correlation_id" for f in w.fields)
        if not v2_written and any(x is not None for x in extra.values()):
            fail("a v1-written event read as v2 has %s: expected the "
                 "defaults (null)" % extra)
        if v2_written and extra["correlation_id"] != \
                "corr-" + e["event_id"][:8]:
            fail("v2 field lost: %s" % extra)
        counts["v2" if v2_written else "v1"] += 1
        seen.add(e["event_id"])
    if seen != set(want):
        fail("%d events expected, %d read" % (len(want), len(seen)))
    print("v1-written=%d v2-written=%d" % (counts["v1"], counts["v2"]))


def ids(topic):
    for rec in consume_all(os.environ["LEADFLOW_BROKERS"], topic, timeout=10):
        print(int.from_bytes(rec.value[1:5], "big"))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "produce-v2" and len(sys.argv) == 3:
        produce_v2(sys.argv[2])
    elif cmd == "read-v2" and len(sys.argv) == 4:
        read_v2(sys.argv[2], sys.argv[3])
    elif cmd == "ids" and len(sys.argv) == 3:
        ids(sys.argv[2])
    else:
        sys.exit(__doc__)
