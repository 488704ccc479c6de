#!/usr/bin/python3
"""Interop of our Avro codec with an independent implementation: Apache
Avro's Python library (Debian's python3-avro).

Each of 1 and 2 for both published contracts: v2 (what we write by
default, schema id 2) and v1 (-X contract.version=1, schema id 1).

1. Bytes we encode (lf_codec_tool encode) carry the Confluent framing
   (magic 0, the schema id big-endian) and python3-avro decodes the body,
   with the parsed lead_event.vN.avsc, to the same values, consuming every
   byte and choosing the payload branch of the event's type. For events
   with maps in key order the bytes are identical to python3-avro's own.
2. Bytes python3-avro encodes from the .avsc are decoded by us
   (lf_codec_tool decode) to the same JSON; contract violations that Avro's
   types cannot express are rejected with an error naming the field.
3. With contract.version=1, each kind of event v1 cannot carry (account_id,
   merged, voided, erased) is refused with a reason that says so.
4. Through the schema registry (tests/integration/sr_standin.py: a
   stand-in, because no real registry (Java) can be installed here, that
   hands out ids from 300, never the pinned 1 or 2), python3-avro writes
   v2 and a synthetic v3 (v2 plus an envelope field and a Captured field)
   framed with the registry's ids; we read every field: the known ones
   into the event, the v3 ones as JSON (extra, payload_extra).

Usage: test_avro_interop.py BIN_DIR   (run by CTest; env LEADFLOW_TESTS is
the directory holding lf_codec_tool, LEADFLOW_SRC the source tree).
Exits 0 when everything matches, 1 with a description of every mismatch.
"""

import copy
import datetime
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

try:
    import avro.io
    import avro.schema
except ImportError:
    sys.exit("test_avro_interop: python3-avro is missing (apt-get install "
             "python3-avro)")

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("LEADFLOW_SRC") or os.path.dirname(os.path.dirname(HERE))
if os.environ.get("LEADFLOW_TESTS"):
    TESTS = os.environ["LEADFLOW_TESTS"]
elif len(sys.argv) > 1:
    TESTS = os.path.join(os.path.dirname(os.path.abspath(sys.argv[1])),
                         "tests")
else:
    sys.exit("usage: test_avro_interop.py BIN_DIR (or set LEADFLOW_TESTS)")
TOOL = os.path.join(TESTS, "lf_codec_tool")
AVSC = {v: os.path.join(SRC, "schemas", "avro", "lead_event.v%d.avsc" % v)
        for v in (1, 2)}

TYPES = ["captured", "scored", "handed_off", "accepted", "recycled",
         "qualified", "won", "lost", "disqualified", "merged", "voided",
         "erased"]
V1_TYPES = 9  # the first nine: contract v1's
# Payload fields of each type, in the order of its Avro record.
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
    "merged": ["into_lead_id"],
    "voided": ["voided_event_id", "reason"],
    "erased": ["request_id"],
}
OPTIONAL = {"actor", "account_id", "campaign", "note", "attributes"}
RECYCLE_REASONS = ["not_ready", "no_budget", "no_authority", "no_need",
                   "no_response", "bad_timing", "other"]
UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)

failures = []


def fail(msg):
    failures.append(msg)
    print("MISMATCH: " + msg, file=sys.stderr)


def ev(n, type_, when="2026-03-01T09:30:00.250Z", **fields):
    e = {"event_id": "00000000-0000-4000-8000-%012d" % n,
         "lead_id": "L-%d" % n, "type": type_, "occurred_at": when,
         "source": "crm"}
    e.update(fields)
    return e


# Every type, with unicode (multi-byte, emoji), escapes, maps, nulls and
# the extreme values of each field. In our JSON form, as we write it:
# optional fields absent when null or empty.
EVENTS = [
    ev(1, "captured", actor="rule \"a\" \\ b",
       lead_id="L-\u00fcn\u00ef-\U0001F600", channel="paid\tsearch\nline\r",
       campaign="\u65e5\u672c\u8a9e", source="web-forms",
       attributes={"a": "ctl\u0001\u001f\u007f", "k\"ey": "",
                   "utm_source": "\U0001F600", "z": "\u00e9"}),
    ev(2, "captured", when="1970-01-01T00:00:00.000Z", channel="c"),
    ev(3, "captured", channel="web", campaign="", attributes={"only": "one"}),
    ev(4, "scored", when="9999-12-31T23:59:59.999Z", actor="model-v2",
       score=2147483647, threshold=0, model="m\u00fc"),
    ev(5, "scored", score=0, threshold=2147483647, model=""),
    ev(6, "handed_off", owner="rep \U0001F600", sla_hours=24),
    ev(7, "handed_off", owner="o", sla_hours=0, actor=""),
    ev(8, "accepted", owner="\u0420\u0435\u043f"),
    ev(9, "recycled", reason="no_budget",
       note="next quarter \u2014 \"maybe\"\\"),
    ev(10, "qualified", opportunity_id="O-\u20ac",
       amount_minor=9223372036854775807, currency="EUR"),
    ev(11, "qualified", opportunity_id="O", amount_minor=0, currency="USD"),
    ev(12, "won", amount_minor=0, currency="JPY"),
    ev(13, "won", when="2024-02-29T23:59:59.999Z",
       amount_minor=123456789012, currency="GBP"),
    ev(14, "lost", reason="\u4fa1\u683c"),
    ev(15, "disqualified", reason="spam\r\n", actor="\u001b[31m"),
] + [ev(20 + i, "recycled", reason=r) for i, r in enumerate(RECYCLE_REASONS)]
# What only contract v2 carries: account_id on any type, and the identity
# events.
EVENTS_V2 = EVENTS + [
    ev(40, "captured", account_id="ACME \u00e9", channel="web",
       attributes={"b": "2", "a": "1"}),
    ev(41, "won", account_id="A" * 128, amount_minor=5, currency="USD"),
    ev(42, "merged", into_lead_id="L-\U0001F600", actor="dedup"),
    ev(43, "merged", account_id="ACME", into_lead_id="L-1"),
    ev(44, "voided", voided_event_id="00000000-0000-4000-8000-000000000001",
       reason="entered twice"),
    ev(45, "erased", request_id="DSR-2026-001", source="privacy"),
]


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def format_time(dt):
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (
        dt.microsecond // 1000)


def to_datum(e, version=2):
    """Our JSON form -> the python3-avro datum of leadflow.LeadEvent vN."""
    t = e["type"]
    payload = {}
    for f in PAYLOAD[t]:
        v = e.get(f)
        if f == "attributes":
            v = dict(sorted((v or {}).items()))
        elif t == "recycled" and f == "reason":
            v = v.upper()
        payload[f] = v
    d = {"event_id": e["event_id"], "lead_id": e["lead_id"],
         "type": t.upper(), "occurred_at": parse_time(e["occurred_at"]),
         "source": e["source"], "actor": e.get("actor")}
    if version >= 2:
        d["account_id"] = e.get("account_id")
    d["payload"] = payload
    return d


def from_datum(d, type_):
    """A python3-avro datum -> our JSON form (nulls and {} omitted)."""
    e = {"event_id": d["event_id"], "lead_id": d["lead_id"],
         "type": d["type"].lower(),
         "occurred_at": format_time(d["occurred_at"]), "source": d["source"]}
    if d["actor"] is not None:
        e["actor"] = d["actor"]
    if d.get("account_id") is not None:
        e["account_id"] = d["account_id"]
    for f in PAYLOAD[type_]:
        v = d["payload"][f]
        if v is None or (f == "attributes" and not v):
            continue
        if type_ == "recycled" and f == "reason":
            v = v.lower()
        e[f] = v
    return e


def py_encode(schema, datum, branch, sid=2):
    """Encode with python3-avro, choosing the payload branch explicitly:
    python3-avro resolves a union of records by shape, and Lost,
    Disqualified and Recycled are ambiguous to it (it would pick the last
    record whose fields validate)."""
    buf = io.BytesIO()
    enc = avro.io.BinaryEncoder(buf)
    writer = avro.io.DatumWriter(schema)
    for f in schema.fields:
        if f.name == "payload":
            enc.write_long(branch)
            writer.write_data(f.type.schemas[branch], datum["payload"], enc)
        else:
            writer.write_data(f.type, datum[f.name], enc)
    return b"\x00" + sid.to_bytes(4, "big") + buf.getvalue()


def py_decode(schema, body):
    """Decode one body with python3-avro: (datum, payload branch, bytes
    consumed). Read twice: the plain DatumReader, and field by field to see
    the union index that the plain reader does not return."""
    bio = io.BytesIO(body)
    datum = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(bio))
    used = bio.tell()
    bio = io.BytesIO(body)
    dec = avro.io.BinaryDecoder(bio)
    reader = avro.io.DatumReader(schema)
    branch = None
    for f in schema.fields:
        if f.name == "payload":
            branch = dec.read_long()
            s = f.type.schemas[branch]
            reader.read_data(s, s, dec)
        else:
            reader.read_data(f.type, f.type, dec)
    if bio.tell() != used:
        raise AssertionError("field-by-field read used %d bytes, plain read "
                             "%d" % (bio.tell(), used))
    return datum, branch, used


def run_tool(mode, lines, args=()):
    proc = subprocess.run([TOOL, *args, mode],
                          input="\n".join(lines) + "\n",
                          capture_output=True, text=True, encoding="utf-8",
                          timeout=60)
    out = proc.stdout.splitlines()
    if len(out) != len(lines):
        sys.exit("test_avro_interop: lf_codec_tool %s answered %d lines for "
                 "%d (exit %d): %s" % (mode, len(out), len(lines),
                                       proc.returncode, proc.stderr))
    return out, proc.returncode


def contract_args(version):
    return ("-X", "contract.version=%d" % version)


def events_of(version):
    return EVENTS_V2 if version >= 2 else EVENTS


def we_encode_python_decodes(schema, version):
    events = events_of(version)
    lines = [json.dumps(e, ensure_ascii=False) for e in events]
    out, rc = run_tool("encode", lines, contract_args(version))
    if rc != 0:
        fail("lf_codec_tool encode exited %d" % rc)
    for e, line in zip(events, out):
        name = "v%d event %s (%s)" % (version, e["event_id"][-3:], e["type"])
        if line.startswith("error:"):
            fail("%s: we could not encode it: %s" % (name, line))
            continue
        msg = bytes.fromhex(line)
        if len(msg) < 5 or msg[0] != 0:
            fail("%s: magic byte is not 0: %s" % (name, line[:10]))
            continue
        if int.from_bytes(msg[1:5], "big") != version:
            fail("%s: schema id %d, expected %d" %
                 (name, int.from_bytes(msg[1:5], "big"), version))
        body = msg[5:]
        try:
            datum, branch, used = py_decode(schema, body)
        except Exception as exc:  # any python3-avro failure is a mismatch
            fail("%s: python3-avro cannot decode our bytes: %r" % (name, exc))
            continue
        if used != len(body):
            fail("%s: python3-avro read %d of our %d bytes" %
                 (name, used, len(body)))
        if branch != TYPES.index(e["type"]):
            fail("%s: payload branch %d, expected %d" %
                 (name, branch, TYPES.index(e["type"])))
        want = to_datum(e, version)
        if datum != want:
            fail("%s: python3-avro decoded\n  %r\nexpected\n  %r" %
                 (name, datum, want))
        if from_datum(datum, e["type"]) != e:
            fail("%s: values differ after python3-avro: %r" %
                 (name, from_datum(datum, e["type"])))
        # Avro's binary encoding of a datum is unique up to map order and
        # blocking; both sides write maps in key order in one block.
        theirs = py_encode(schema, want, TYPES.index(e["type"]), version)
        if theirs != msg:
            fail("%s: bytes differ from python3-avro's\n  ours   %s\n"
                 "  theirs %s" % (name, msg.hex(), theirs.hex()))


def python_encodes_we_decode(schema, version):
    msgs = []
    events = events_of(version)
    for e in events:
        datum = to_datum(e, version)
        # python3-avro's own check that the datum fits the schema, field by
        # field: its union check takes the first record branch whose field
        # names cover the datum's, so it cannot check the payload union
        branch = TYPES.index(e["type"])
        for f in schema.fields:
            s = f.type.schemas[branch] if f.name == "payload" else f.type
            if not avro.io.validate(s, datum[f.name]):
                fail("event %s: python3-avro says field %s does not fit the "
                     "schema: %r" % (e["event_id"], f.name, datum[f.name]))
        # python3-avro writes the map in its insertion order: reverse it,
        # our decoder must not depend on the order
        if e["type"] == "captured":
            datum["payload"]["attributes"] = dict(
                reversed(list(datum["payload"]["attributes"].items())))
        msgs.append(py_encode(schema, datum, TYPES.index(e["type"]),
                              version).hex())
    out, rc = run_tool("decode", msgs)
    if rc != 0:
        fail("lf_codec_tool decode exited %d" % rc)
    for e, line in zip(events, out):
        name = "v%d event %s (%s)" % (version, e["event_id"][-3:], e["type"])
        if line.startswith("error:"):
            fail("%s: we reject python3-avro's bytes: %s" % (name, line))
            continue
        got = json.loads(line)
        if got != e:
            fail("%s: we decoded python3-avro's bytes to\n  %s\nexpected\n"
                 "  %s" % (name, line, json.dumps(e, ensure_ascii=False)))
        if list(got) != [k for k in ["event_id", "lead_id", "type",
                                     "occurred_at", "source", "actor",
                                     "account_id"] +
                         PAYLOAD[e["type"]] if k in e]:
            fail("%s: keys not in schema order: %s" % (name, list(got)))


def python_encodes_we_reject(schema):
    """Well-formed Avro that breaks the contract: we must refuse it and
    name the field (or the framing problem)."""
    base = to_datum(ev(90, "scored", score=1, threshold=1, model="m"))

    def variant(**over):
        d = copy.deepcopy(base)
        for k, v in over.items():
            if k in d:
                d[k] = v
            else:
                d["payload"][k] = v
        return d

    cases = [
        (py_encode(schema, variant(score=-1), 1), '"score"'),
        (py_encode(schema, variant(lead_id=""), 1), '"lead_id"'),
        (py_encode(schema, variant(lead_id="x" * 129), 1), '"lead_id"'),
        (py_encode(schema, variant(occurred_at=EPOCH -
                                   datetime.timedelta(milliseconds=1)), 1),
         '"occurred_at"'),
        (py_encode(schema, variant(event_id=""), 1), '"event_id"'),
        (py_encode(schema, variant(source="a\u0000b"), 1), '"source"'),
    ]
    won = to_datum(ev(91, "won", amount_minor=5, currency="usd"))
    cases.append((py_encode(schema, won, 6), '"currency"'))
    won = to_datum(ev(92, "won", amount_minor=-5, currency="USD"))
    cases.append((py_encode(schema, won, 6), '"amount_minor"'))
    # a Lost payload on a DISQUALIFIED event: the same shape, so only the
    # branch index tells them apart
    lost = to_datum(ev(93, "lost", reason="r"))
    lost["type"] = "DISQUALIFIED"
    cases.append((py_encode(schema, lost, 7), "payload"))
    # contract v2's own checks
    cases.append((py_encode(schema, variant(account_id=""), 1),
                  '"account_id"'))
    for e, field in [(ev(94, "merged", into_lead_id="L-94"), "into_lead_id"),
                     (ev(95, "voided", voided_event_id="",
                         reason="r"), "voided_event_id"),
                     (ev(96, "voided", voided_event_id="00000000-0000-4000-"
                         "8000-000000000001", reason=""), "reason"),
                     (ev(97, "erased", request_id=""), "request_id")]:
        cases.append((py_encode(schema, to_datum(e), TYPES.index(e["type"])),
                      '"%s"' % field))
    good = py_encode(schema, base, 1)
    cases.append((b"\x01" + good[1:], "magic"))
    cases.append((good[:1] + (3).to_bytes(4, "big") + good[5:], "schema id"))
    cases.append((good + b"\x00", "trailing"))
    out, rc = run_tool("decode", [c[0].hex() for c in cases])
    if rc == 0:
        fail("lf_codec_tool decode exited 0 for invalid input")
    for (msg, needle), line in zip(cases, out):
        if not line.startswith("error:") or needle not in line:
            fail("%s: expected an error naming %s, got: %s" %
                 (msg.hex()[:60], needle, line))


def v1_refuses_what_it_cannot_carry():
    """contract.version=1: each kind of line v1 cannot carry is refused
    with its reason, never written with the field dropped."""
    cases = [
        (ev(50, "lost", reason="r", account_id="ACME"),
         'field "account_id": contract v1 cannot carry it'),
        (ev(51, "merged", into_lead_id="L-9"),
         'field "type": contract v1 cannot carry merged events'),
        (ev(52, "voided", voided_event_id="00000000-0000-4000-8000-0000000"
            "00001", reason="r"),
         'field "type": contract v1 cannot carry voided events'),
        (ev(53, "erased", request_id="R"),
         'field "type": contract v1 cannot carry erased events'),
    ]
    out, rc = run_tool("encode", [json.dumps(c[0]) for c in cases],
                       contract_args(1))
    if rc == 0:
        fail("contract v1: lf_codec_tool encode exited 0")
    for (e, want), line in zip(cases, out):
        if not line.startswith("error: " + want):
            fail("contract v1, %s: expected \"%s\", got: %s"
                 % (e["type"], want, line))


def v3_schema_text(v2_text):
    """v2 plus an envelope field (tenant, a nullable record with an enum)
    after account_id, and Captured.landing_page: a later contract."""
    s = json.loads(v2_text)
    s["doc"] = "TEST: a synthetic v3"
    i = [f["name"] for f in s["fields"]].index("account_id") + 1
    s["fields"].insert(i, {"name": "tenant", "default": None, "type": [
        "null", {"type": "record", "name": "Tenant", "fields": [
            {"name": "region", "type": "string"},
            {"name": "tier", "type": {"type": "enum", "name": "Tier",
                                      "symbols": ["GOLD", "SILVER"]}},
            {"name": "seats", "type": "long"}]}]})
    payload = [f for f in s["fields"] if f["name"] == "payload"][0]
    payload["type"][0]["fields"].append(
        {"name": "landing_page", "type": "string", "default": ""})
    return json.dumps(s)


def start_registry(tmp):
    port_file = os.path.join(tmp, "sr.port")
    proc = subprocess.Popen(
        ["/usr/bin/python3", os.path.join(HERE, "sr_standin.py"), "--port",
         "0", "--port-file", port_file, "--first-id", "300"])
    for _ in range(200):
        if os.path.exists(port_file):
            with open(port_file) as f:
                return proc, "http://127.0.0.1:%d" % int(f.read())
        time.sleep(0.05)
    proc.kill()
    sys.exit("test_avro_interop: the stand-in registry did not start")


def register(url, subject, text):
    req = urllib.request.Request(
        "%s/subjects/%s/versions" % (url, subject), method="POST",
        data=json.dumps({"schema": text}).encode(),
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)["id"]


def through_the_registry(v2):
    """python3-avro writes v2 and a synthetic v3 framed with registry ids
    (300 and up, never the pinned 1 or 2); we read every field."""
    v2_text = open(AVSC[2], encoding="utf-8").read()
    v3_text = v3_schema_text(v2_text)
    v3 = avro.schema.parse(v3_text)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_registry(tmp)
        try:
            ids = {2: register(url, "interop-value", v2_text),
                   3: register(url, "interop-value", v3_text)}
            if ids[2] in (1, 2) or ids[3] in (1, 2) or ids[2] == ids[3]:
                fail("registry ids %r: expected two ids other than 1, 2"
                     % ids)
            msgs, want = [], []
            for n, e in enumerate(EVENTS_V2):
                branch = TYPES.index(e["type"])
                msgs.append(py_encode(v2, to_datum(e), branch, ids[2]).hex())
                want.append((e, None, None))
                d = to_datum(e)
                tenant = None if n % 3 == 0 else {
                    "region": "eu-%d" % n, "tier": ["GOLD", "SILVER"][n % 2],
                    "seats": -n * 1000}
                d["tenant"] = tenant
                if e["type"] == "captured":
                    d["payload"]["landing_page"] = "/lp/\u00e9/%d" % n
                msgs.append(py_encode(v3, d, branch, ids[3]).hex())
                # A field left null is the field not sent: left out.
                want.append((e, {"tenant": tenant} if tenant else None,
                             {"landing_page": "/lp/\u00e9/%d" % n}
                             if e["type"] == "captured" else None))
            out, rc = run_tool("decode-extra", msgs,
                               ("-X", "schema.registry.url=" + url))
        finally:
            proc.terminate()
            proc.wait()
    if rc != 0:
        fail("lf_codec_tool decode-extra through the registry exited %d"
             % rc)
    for (e, extra, pextra), line in zip(want, out):
        name = "registry event %s (%s)" % (e["event_id"][-3:], e["type"])
        if line.startswith("error:"):
            fail("%s: %s" % (name, line))
            continue
        got = json.loads(line)
        if got["event"] != e:
            fail("%s: read %s, expected %s" % (name, got["event"], e))
        if got["extra"] != extra or got["payload_extra"] != pextra:
            fail("%s: unknown fields %s / %s, expected %s / %s"
                 % (name, got["extra"], got["payload_extra"], extra, pextra))


def main():
    if not os.access(TOOL, os.X_OK):
        sys.exit("test_avro_interop: %s not built" % TOOL)
    schemas = {}
    for version in (2, 1):
        with open(AVSC[version], encoding="utf-8") as f:
            schemas[version] = avro.schema.parse(f.read())
        we_encode_python_decodes(schemas[version], version)
        python_encodes_we_decode(schemas[version], version)
    python_encodes_we_reject(schemas[2])
    v1_refuses_what_it_cannot_carry()
    through_the_registry(schemas[2])
    if failures:
        print("test_avro_interop: %d mismatch(es) with python3-avro" %
              len(failures), file=sys.stderr)
        return 1
    print("test_avro_interop: %d events of all %d types agree with "
          "python3-avro %s in both directions, as contract v2 and v1; "
          "v2 and v3 through the registry read every field" %
          (len(EVENTS_V2), len(TYPES), getattr(avro, "__version__", "")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
