#!/usr/bin/env python3
"""long_history.py: leads with long histories, shuffled, as JSON lines.

    bench/long_history.py LEADS EVENTS_PER_LEAD [SEED] > FILE

Each lead is captured, then scored EVENTS_PER_LEAD - 1 times (a second to
an hour apart); the whole stream is shuffled. A shuffled drain of it makes
every batch recompute persons whose stored histories are long: the
workload of "Long histories under disorder" in BENCHMARKS.md, where the
projector's peak RSS is measured with /usr/bin/time -f %M.
"""
import datetime
import json
import random
import sys
import uuid


def stamp(ms):
    t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.strip().splitlines()[2].strip())
    leads, per = int(sys.argv[1]), int(sys.argv[2])
    r = random.Random(int(sys.argv[3]) if len(sys.argv) == 4 else 1)
    out = []
    for i in range(leads):
        lead, t = "LL-%06d" % i, 1767225600000 + r.randrange(80 * 86400000)
        out.append({"event_id": str(uuid.UUID(int=r.getrandbits(128))),
                    "lead_id": lead, "type": "captured",
                    "occurred_at": stamp(t), "source": "web",
                    "channel": "direct",
                    "attributes": {"company": "Company %d" % i,
                                   "country": "DE"}})
        for _ in range(per - 1):
            t += r.randrange(1000, 3600000)
            out.append({"event_id": str(uuid.UUID(int=r.getrandbits(128))),
                        "lead_id": lead, "type": "scored",
                        "occurred_at": stamp(t), "source": "marketo",
                        "score": r.randrange(100), "threshold": 60,
                        "model": "fit-engagement-v3"})
    r.shuffle(out)
    for e in out:
        print(json.dumps(e))


if __name__ == "__main__":
    main()
