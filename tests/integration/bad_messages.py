"""bad_messages.py: a corpus of hostile Kafka messages for the projector.

Prints one line per message: "KEYHEX VALUEHEX<TAB>WHERE<TAB>EXPECT" where
WHERE is "dead" (must land in funnel.dead_letters) or "key" (must be
projected and listed in funnel.anomalies with kind 'key') and EXPECT is a
substring the stored reason must contain. Each bad message gets its own
lead id B-<n> so a test can check that nothing of it was projected.

The Avro body is written here by hand (zig-zag varints, length-prefixed
strings), independently of our C encoder, following the Avro 1.11
specification for record leadflow.LeadEvent v1.
"""
import sys


def zz(n):
    """Avro long: zig-zag, then base-128 varint."""
    u = (n << 1) ^ (n >> 63)
    u &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = u & 0x7F
        u >>= 7
        if u:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def s(text):
    raw = text if isinstance(text, bytes) else text.encode()
    return zz(len(raw)) + raw


def frame(body, schema_id=1, magic=0):
    return bytes([magic]) + schema_id.to_bytes(4, "big", signed=True) + body


EVENT_TYPES = ["CAPTURED", "SCORED", "HANDED_OFF", "ACCEPTED", "RECYCLED",
               "QUALIFIED", "WON", "LOST", "DISQUALIFIED"]


def body(lead, etype=0, event_id=None, occurred=1767225600000, source="test",
         actor=None, payload=None, branch=None, raw_lead=None):
    """A LeadEvent body; payload bytes default to a valid one for etype."""
    if payload is None:
        payload = {
            0: s("web") + zz(0) + zz(0),               # Captured, no map
            1: zz(80) + zz(50) + s("m"),               # Scored
            6: zz(100) + s("EUR"),                     # Won
            7: s("price"),                             # Lost
        }[etype]
    out = s(event_id if event_id is not None else "bad-" + lead)
    out += raw_lead if raw_lead is not None else s(lead)
    out += zz(etype) + zz(occurred) + s(source)
    out += zz(0) if actor is None else zz(1) + s(actor)
    out += zz(etype if branch is None else branch) + payload
    return out


def main():
    rows = []

    def dead(n, value, expect, key=None):
        lead = "B-%02d" % n
        k = (key if key is not None else lead.encode())
        rows.append((k, value, "dead", expect, lead))

    def good_key_anomaly(n, key, expect):
        lead = "B-%02d" % n
        rows.append((key, frame(body(lead)), "key", expect, lead))

    n = 0

    def nxt():
        nonlocal n
        n += 1
        return n

    i = nxt(); dead(i, b"", "empty message")
    i = nxt(); dead(i, frame(body("B-%02d" % i), magic=1), "magic byte")
    i = nxt(); dead(i, frame(body("B-%02d" % i), schema_id=7),
                    "unknown schema id 7")
    i = nxt(); dead(i, b"\x00\x00\x00", "shorter than the 5-byte header")
    i = nxt(); dead(i, frame(body("B-%02d" % i))[:-3], "truncated")
    i = nxt(); dead(i, frame(body("B-%02d" % i)) + b"\x00junk",
                    "trailing bytes")
    i = nxt(); dead(i, frame(body("B-%02d" % i, branch=9)),
                    "union branch 9 out of range")
    i = nxt(); dead(i, frame(body("B-%02d" % i, branch=-1)),
                    "union branch -1 out of range")
    i = nxt()
    b = s("bad-x") + zz(-5) + b"abc"
    dead(i, frame(b), "negative")
    i = nxt()
    b = s("bad-x") + zz(1 << 40) + b"abc"
    dead(i, frame(b), "exceeds")
    i = nxt()
    b = s("bad-x") + s("B-%02d" % i) + zz(12)
    dead(i, frame(b + zz(0) + s("t") + zz(0) + zz(0)),
         "enum index 12 out of range")
    i = nxt(); dead(i, frame(body("B-%02d" % i, source=b"\xff\xfe")),
                    "UTF-8")
    i = nxt(); dead(i, frame(body("B-%02d" % i, source=b"te\x00st")),
                    "NUL")
    i = nxt(); dead(i, frame(body("B-%02d" % i, actor="x" * (1 << 20))),
                    "more than")
    i = nxt(); dead(i, frame(body("B-%02d" % i, etype=1, branch=0,
                                  payload=s("web") + zz(0) + zz(0))),
                    "payload")
    i = nxt(); dead(i, frame(body("B-%02d" % i, raw_lead=s(""))),
                    "lead_id")
    i = nxt(); dead(i, frame(body("B-%02d" % i, raw_lead=s("L" * 129))),
                    "lead_id")
    i = nxt(); dead(i, frame(body("B-%02d" % i, occurred=-1)),
                    "occurred_at")
    i = nxt(); dead(i, frame(body("B-%02d" % i, occurred=253402300800000)),
                    "occurred_at")
    i = nxt(); dead(i, frame(body("B-%02d" % i, etype=6,
                                  payload=zz(-100) + s("EUR"))),
                    "amount_minor")
    i = nxt(); dead(i, frame(body("B-%02d" % i, etype=6,
                                  payload=zz(100) + s("eur"))),
                    "currency")
    # a reason that quotes a terminal's escapes (a retry's line escapes it)
    i = nxt(); dead(i, frame(body("B-%02d" % i, etype=6,
                                  payload=zz(100) + s("\x1b]0;t\x07"))),
                    "currency")
    i = nxt(); dead(i, frame(body("B-%02d" % i, etype=6,
                                  payload=zz(100) + s(b"\xc2\x9b31m"))),
                    "currency")  # a C1 control (CSI) in the reason
    i = nxt(); dead(i, frame(body("B-%02d" % i, etype=1,
                                  payload=zz(-3) + zz(50) + s("m"))),
                    "score")
    i = nxt(); dead(i, frame(body("B-%02d" % i, event_id="")), "event_id")
    i = nxt()
    b = s("bad-x") + b"\xff" * 11
    dead(i, frame(b), "varint")
    i = nxt()
    # a map whose block count claims more entries than bytes exist
    dead(i, frame(body("B-%02d" % i, payload=s("web") + zz(0) + zz(1000000)
                       + s("k") + s("v") + zz(0))), "exceeds")
    i = nxt()
    dead(i, frame(body("B-%02d" % i, payload=s("web") + zz(0) + zz(-2) +
                       zz(-7) + s("k") + s("v") + zz(0))), "block size")
    i = nxt(); dead(i, frame(body("B-%02d" % i, etype=4,
                                  payload=zz(9) + zz(0))),
                    "enum index 9 out of range")
    i = nxt(); good_key_anomaly(i, None, "key missing")
    i = nxt(); good_key_anomaly(i, b"someone-else", "differs from lead_id")

    for key, value, where, expect, lead in rows:
        khex = "-" if key is None else key.hex()
        vhex = value.hex() if value else ""
        if not vhex:
            vhex = "-" if value is None else ""
        sys.stdout.write("%s %s\t%s\t%s\t%s\n" % (khex, vhex or "-", where,
                                                  expect, lead))


if __name__ == "__main__":
    main()
