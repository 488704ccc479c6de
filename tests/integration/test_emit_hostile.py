"""test_emit_hostile.py: hostile JSON input to leadflow-emit: every bad line
is rejected alone, with a reason, and nothing crashes or grows unbounded.

Deeply nested JSON (100,000 levels, inside a field and at top level), huge
and out-of-range numbers (1e400, 10^23, int32 and int64 limits, epoch
milliseconds past year 9999 or at INT64_MIN), duplicate keys (top level and
inside attributes), a byte order mark where none belongs, CR, CRLF and lone
CR, NUL raw and escaped, lone surrogates, overlong UTF-8, 100 KB keys, 10,000
attributes, lines of several MiB (unterminated, padded with 5 MiB of
blanks, a 3 MiB field) and one of 20 MiB. Each bad line must end as exactly
one rejects line whose reason names the problem; the good lines between
them must be delivered (read back from Kafka); emit must exit 65, never
crash, and stay within bounded memory. The same file is sent again with
CRLF line ends and must give the same rejects.

Usage: test_emit_hostile.py BIN_DIR
"""

import json
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emit_lib import (BIN, Broker, check, consume_all, decode_value,  # noqa
                      run, step, summary, tmpdir)

EMIT = os.path.join(BIN, "leadflow-emit")
TOPIC = "hostile-json"

GOOD = {"lead_id": "L-1", "type": "scored", "source": "marketo",
        "occurred_at": "2026-03-01T10:00:00Z", "score": 70,
        "threshold": 60, "model": "m1"}


def j(**kw):
    e = dict(GOOD)
    e.update(kw)
    return json.dumps(e, ensure_ascii=False).encode()


def score(text):
    """GOOD with the score's JSON text replaced verbatim."""
    return j(score=0).replace(b'"score": 0', b'"score": ' + text)


def model(raw):
    """GOOD with the model string's raw bytes (between the quotes)."""
    return j(model="@@").replace(b'"@@"', b'"' + raw + b'"')


def captured(attrs_json):
    return (b'{"lead_id":"L-2","type":"captured","source":"web",'
            b'"occurred_at":"2026-03-01T10:00:00Z","channel":"web",'
            b'"attributes":' + attrs_json + b'}')


WON = (b'{"lead_id":"L-3","type":"won","source":"sf","occurred_at":'
       b'"2026-03-01T10:00:00Z","amount_minor":%s,"currency":"EUR"}')
MiB = 1 << 20

# (line, fragment the reason must contain); fragment None: a good line.
CASES = [
    # deep nesting
    (b'{"lead_id":' + b"[" * 100000 + b"]" * 100000 + b"}",
     'field "lead_id": invalid JSON'),
    (b"[" * 100000 + b"]" * 100000, "maximum parsing depth"),
    (j()[:-1] + b',"x":' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}",
     "maximum parsing depth"),
    (captured(b'{"a":{"b":{"c":"d"}}}'), 'value of "a" must be a string'),
    (j(lead_id="L-4"), None),
    # huge numbers
    (score(b"1e400"), "real number overflow"),
    (score(b"99999999999999999999999"), "too big integer"),
    (j(score=2147483648), "out of range"),
    (j(score=-2147483649), "out of range"),
    (score(b"1.0"), "expected an integer"),
    (score(b"1e2"), "expected an integer"),
    (score(b"-0"), None),  # -0 is the integer 0
    (j(occurred_at=9223372036854775807), '"occurred_at"'),
    (j(occurred_at=-9223372036854775808), '"occurred_at"'),
    (j(occurred_at=253402300800000), '"occurred_at"'),  # 10000-01-01
    (WON % b"9223372036854775808", 'field "amount_minor"'),
    (WON % b"-9223372036854775808", '"amount_minor"'),
    (WON % b"9223372036854775807", None),
    # duplicate keys
    (b'{"lead_id":"a","lead_id":"b"' + j()[j().index(b","):],
     "duplicate object key"),
    (captured(b'{"k":"1","k":"2"}'), "duplicate object key"),
    (j()[:-1] + b',"score":71}', "duplicate object key"),
    # byte order marks, CR
    # a BOM not at the start of the file
    (b"\xef\xbb\xbf" + j(), "byte order mark (EF BB BF) before the object"),
    (model(b"\xef\xbb\xbf"), None),  # U+FEFF inside a string is text
    (j() + b"\r", None),  # CR before LF is removed
    (model(b"a\rb"), "control character"),
    # NUL, surrogates, UTF-8
    (b"\x00", "invalid JSON"),
    (model(b"a\x00b"), "control character"),
    (model(b"a\\u0000b"), "\\u0000 is not allowed"),
    (model(b"\\ud800"), "invalid Unicode"),
    (model(b"\xc0\xaf"), "not valid UTF-8"),
    (model(b"\xed\xa0\x80"), "not valid UTF-8"),  # surrogate as UTF-8
    # not an object, big keys, many keys
    (b"null", "expected"),
    (b'"str"', "expected"),
    (b"{}", 'missing required field "type"'),
    (j(**{"k" * 100000: "v"}), "unknown field"),
    (captured(b"{" + b",".join(b'"k%d":"v"' % i for i in range(10000)) +
              b"}"), "more than the 256 allowed"),
    (captured(b'{"":"v"}'), "empty key"),
    # lines of several MiB
    (b'{"lead_id":"' + b"x" * (3 * MiB), "premature end of input"),
    (b" " * (5 * MiB) + b"{}", 'missing required field "type"'),
    (j(model="m" * (3 * MiB)), "more than the 65536 allowed"),
    (b" " * (7 * MiB) + j(lead_id="L-padded"), None),  # under 8 MiB: fine
    (b'{"x":"' + b"y" * (20 * MiB) + b'"}', "8388608"),
    (j(lead_id="L-last"), None),
]


def check_rejects(path, infile, label):
    with open(path, "rb") as f:
        rej = [json.loads(line) for line in f if line.strip()]
    got = {}
    for x in rej:
        check(x["file"] == infile, "%s: reject of another file %r" %
              (label, x["file"]))
        check(x["line"] not in got, "%s: line %d rejected twice" %
              (label, x["line"]))
        got[x["line"]] = x["reason"]
    want = {n: frag for n, (_, frag) in enumerate(CASES, 1) if frag}
    check(sorted(got) == sorted(want),
          "%s: rejected lines %r, expected %r" %
          (label, sorted(got), sorted(want)))
    for n, frag in want.items():
        check(frag in got[n], "%s: line %d: reason %r does not name %r" %
              (label, n, got[n][:200], frag))
    return len(want)


def send(b, infile, label):
    rejects = infile + ".rejects"
    r = run([EMIT, "-b", b.servers, "-t", TOPIC, "--rejects", rejects,
             infile], timeout=120)
    check(r.returncode == 65, "%s: exit %d, expected 65 (a signal is "
          "negative):\n%s" % (label, r.returncode,
                              r.stderr.decode(errors="replace")[-2000:]))
    nbad = check_rejects(rejects, infile, label)
    s = summary(r.stderr)
    ngood = len(CASES) - nbad
    check(int(s["read"]) == len(CASES) and int(s["rejected"]) == nbad and
          int(s["delivered"]) == ngood and int(s["failed"]) == 0,
          "%s: summary %r" % (label, s))
    return nbad, ngood


def main():
    d = tmpdir()
    b = Broker(TOPIC, partitions=2)
    lines = [text for text, _ in CASES]

    step("hostile JSON lines, LF line ends")
    lf = os.path.join(d, "hostile.jsonl")
    with open(lf, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    nbad, ngood = send(b, lf, "LF")

    step("the same lines, CRLF line ends, a BOM at the start of the file")
    crlf = os.path.join(d, "hostile-crlf.jsonl")
    with open(crlf, "wb") as f:
        f.write(b"\xef\xbb\xbf" + b"\r\n".join(lines))  # no final newline
    send(b, crlf, "CRLF")

    # The good lines of both runs, and nothing else, reached Kafka.
    recs = consume_all(b.servers, TOPIC, expect=2 * ngood)
    check(len(recs) == 2 * ngood, "%d messages in Kafka, expected %d" %
          (len(recs), 2 * ngood))
    leads = sorted(decode_value(r.value)["lead_id"] for r in recs)
    for lead in ("L-padded", "L-last", "L-3"):
        check(lead in leads, "good line of %s not delivered" % lead)

    # Bounded memory: a 20 MiB line is refused at 8 MiB, not held whole
    # several times over.
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    check(peak_mib < 512, "leadflow-emit peaked at %.0f MiB" % peak_mib)
    b.stop()
    print("ok: %d hostile lines, one reject each with a reason that names "
          "it; %d good lines delivered from LF and CRLF files; peak RSS "
          "%.0f MiB" % (nbad, ngood, peak_mib))
    print("PASS test_emit_hostile")


main()
