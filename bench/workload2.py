#!/usr/bin/python3
"""workload2.py: a second workload for the disorder rows of bench/run.py,
written apart from leadflow-gen (common/funnel/lf_workload.c) so that the
figures do not rest on that generator's shape alone.

    bench/workload2.py [--leads N] [--seed S] [--late F] [--late-span F]
                       -o DIR
    bench/workload2.py --reorder FILE [--seed S] [--late F]
                       [--late-span F] -o DIR

Writes the same events as JSON lines (the flat mapping leadflow-emit
reads, contract v1: no account_id, no identity events) in three arrival
orders:

  DIR/inorder.jsonl   by (occurred_at, event_id): each lead's events in time
                      order, the leads interleaved by time
  DIR/late.jsonl      the same, with a fraction F (--late, 0.1) of all
                      the events late: each arrives after the next event
                      of its lead, by a further random number of
                      positions, uniform in 1 .. span * N (--late-span,
                      0.1: a tenth of the stream, ~15,000 positions at the
                      default 25,000 leads, about one batch of each of
                      leadflow-project's two writers)
  DIR/shuffled.jsonl  every event at a random place

--reorder FILE takes the events of FILE (e.g. leadflow-gen's output)
instead of generating them. Deterministic for a given --seed. A summary
goes to stderr, and as JSON to DIR/summary.json; its late_events and
shuffled_events count the events of each order that arrive after a later
event of their lead.

The shape (unlike leadflow-gen's ~3.9 events per lead): about 6 events
per lead on average, a tail of leads with 20 and more (recycled and
re-qualified again and again, or scored over and over); ties, several
events of one lead at the same occurred_at, their event_ids chosen so that
their bytewise order is the order the funnel expects; hostile strings
(quotes, backslashes, COPY's \\N and \\., array literal syntax, control
characters but NUL, bidi overrides, emoji, combining marks, long
attributes up to 12 KiB) in lead ids, attributes, actors, notes and
reasons; a few anomalies (about 1 % of leads get an event the funnel
does not expect). Only /usr/bin/python3's standard library.
"""
import argparse
import json
import os
import random
import sys
import uuid

T0 = 1767225600000  # 2026-01-01T00:00:00Z
DAY = 86400000
HOUR = 3600000

HOSTILE = [
    '"quoted" and \'single\'', 'back\\slash \\\\ double', 'C:\\Users\\"x"\\',
    'tab\there', 'new\nline', 'cr\r\nlf', '\x01\x02\x1b[31mred\x1b[0m\x7f',
    'ünïcödé façade', '日本語のテキスト、中文', 'עברית \u202eoverride\u202c',
    'emoji 👩\u200d💻🚀🏳️\u200d🌈', 'zero\u200bwidth', '\u2028line\u2029sep',
    'e\u0301\u0302\u0303 combining', '{"json":"in a string","n":[1,2]}',
    "'); DROP TABLE funnel.leads; --", '%s %n %x %%', '\\u0000 literally',
    '<script>alert(1)</script>', 'a,b;c\td|e', '\\N', '\\.', 'NULL',
    '{a,b}', '{"x\\",y}', '', ' ', '\ufeffbom', '\U0010fffd max', '\x1f\x0b\x0c',
]
SOURCES = ['marketo', 'salesforce', 'web-forms', 'hubspot',
           'crm "legacy" \\ import', 'partner-api/ü']
CHANNELS = ['organic_search', 'paid_search', 'referral', 'event', 'webinar',
            'paid_social', 'direct', 'partner "co-op"', 'trade\\show']
MODELS = ['fit-v2', 'engagement-v5', 'model "β"']
REASONS = ['not_ready', 'no_budget', 'no_authority', 'no_need',
           'no_response', 'bad_timing', 'other']
CURRENCIES = ['EUR', 'USD', 'GBP', 'JPY', 'CHF']
# The payloads of the few events the funnel does not expect.
ODD = {'accepted': {'owner': 'nobody'},
       'won': {'amount_minor': 1000, 'currency': 'EUR'},
       'qualified': {'opportunity_id': 'OPP-odd', 'amount_minor': 1000,
                     'currency': 'EUR'}}
# Characters long strings are made of: 1 to 4 bytes of UTF-8 each.
LONG_CHARS = 'abcxyz "\\\t\n\x01éßøЖж中文字😀👍\u0301\u202e{},'


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def uid(self):
        return str(uuid.UUID(int=self.r.getrandbits(128), version=4))

    def long_string(self, nbytes):
        out, size = [], 0
        while size < nbytes:
            c = self.r.choice(LONG_CHARS)
            out.append(c)
            size += len(c.encode())
        return ''.join(out)

    def text(self, plain, p=0.15):
        """A plain string, or now and then a hostile one."""
        r = self.r.random()
        if r < p * 0.03:
            return self.long_string(self.r.randint(1024, 12288))
        if r < p:
            return self.r.choice(HOSTILE) + ' ' + plain
        return plain

    def lead_id(self, i):
        r = self.r.random()
        if i == 0:
            return 'NULL'  # an unquoted NULL in a text[] literal is NULL
        if r < 0.04:
            return f'lead "{i}" \\ {{a,b}} ünï'
        if r < 0.08:
            return f'josé.o\'brien+{i}@exämple.com'
        if r < 0.10:
            return f'客户-{i}-' + 'x' * self.r.randint(0, 90)
        if r < 0.11:
            return f'\\N{i}\t,'
        return f'W2-{i:06d}'

    def attributes(self):
        a = {}
        for k in ('company', 'country', 'industry', 'size'):
            if self.r.random() < 0.8:
                a[k] = self.text(k + '-' + str(self.r.randint(1, 500)))
        for _ in range(self.r.choice((0, 0, 0, 1, 2, 6))):
            a[self.text('utm_' + str(self.r.randint(0, 40)), 0.3)] = \
                self.text(self.uid()[:8], 0.3)
        if self.r.random() < 0.01:
            a['notes'] = self.long_string(self.r.randint(2048, 12288))
        return a


class Lead:
    """One lead's life, walked through the default funnel
    (schemas/funnel/default.json)."""

    def __init__(self, g, i, t):
        self.g, self.r = g, g.r
        self.id = g.lead_id(i)
        self.t = t
        self.events = []  # [occurred_at, dict], in the order meant
        # A tail of busy leads: recycled and re-qualified, scored often.
        self.busy = self.r.random() < 0.06
        self.owner = f'sdr-{self.r.randint(1, 40)}'

    def step(self):
        """The next event's time: sometimes the same millisecond (a tie,
        a CRM writing several changes at once), else hours to days on."""
        if self.events and self.r.random() < 0.12:
            return self.t
        self.t += max(1, int(self.r.expovariate(1 / (1.5 * DAY))))
        return self.t

    def add(self, typ, **fields):
        ev = {'lead_id': self.id, 'type': typ, 'source':
              self.g.text(self.r.choice(SOURCES), 0.05)}
        if self.r.random() < 0.5:
            ev['actor'] = self.g.text(self.owner, 0.1)
        ev.update(fields)
        self.events.append([self.step(), ev])

    def scored(self, qualify):
        th = self.r.choice((50, 60, 70))
        score = self.r.randint(th, 100) if qualify else self.r.randint(0, th - 1)
        self.add('scored', score=score, threshold=th,
                 model=self.g.text(self.r.choice(MODELS), 0.05))

    def captured(self):
        ev = {'channel': self.g.text(self.r.choice(CHANNELS), 0.05),
              'attributes': self.g.attributes()}
        if self.r.random() < 0.6:
            ev['campaign'] = self.g.text(f'2026-q{self.r.randint(1, 4)}', 0.1)
        self.add('captured', **ev)

    def live(self):
        self.captured()
        stage, cycles = 'captured', 0
        for _ in range(40 if self.busy else 12):
            stage = self.next_from(stage)
            if stage is None:
                break
            if stage == 'nurture':
                cycles += 1
        if self.r.random() < 0.01:  # an event the funnel does not expect
            typ = self.r.choice(('accepted', 'won', 'qualified'))
            self.add(typ, **ODD[typ])
        return self

    def next_from(self, stage):
        """Emit one step from stage; @returns the stage after it, or None
        when the lead goes quiet."""
        r, busy = self.r.random(), self.busy
        if stage in ('captured', 'nurture'):
            for _ in range(self.r.choice((0, 0, 1, 1, 2) if not busy
                                         else (1, 2, 4, 6))):
                self.scored(False)
            if self.r.random() < 0.03:
                self.captured()  # captured again: changes nothing
            if r < (0.55 if not busy else 0.9):
                self.scored(True)
                return 'mql'
            if r < 0.65:
                self.add('handed_off', owner=self.owner,
                         sla_hours=self.r.choice((4, 24, 48)))
                return 'handed_off'
            if r < 0.72:
                return self.disqualify()
            return None
        if stage == 'mql':
            if r < 0.8:
                self.add('handed_off', owner=self.owner,
                         sla_hours=self.r.choice((4, 24, 48)))
                return 'handed_off'
            return self.disqualify() if r < 0.9 else None
        if stage == 'handed_off':
            if r < 0.7:
                self.add('accepted', owner=self.g.text(self.owner, 0.05))
                return 'sal'
            return self.recycle() if r < 0.85 or busy else self.disqualify()
        if stage == 'sal':
            if r < 0.55:
                self.add('qualified', opportunity_id=self.g.text(
                    f'OPP-{self.r.randint(1, 10**6)}', 0.05),
                    amount_minor=self.r.randint(1, 10**9),
                    currency=self.r.choice(CURRENCIES))
                return 'sql'
            if r < 0.8 or busy:
                return self.recycle()
            if r < 0.92:
                self.add('lost', reason=self.g.text('no decision', 0.3))
                return 'lost'
            return self.disqualify()
        if stage == 'sql':
            if r < (0.4 if not busy else 0.15):
                self.add('won', amount_minor=self.r.randint(1, 10**9),
                         currency=self.r.choice(CURRENCIES))
                return 'won' if self.r.random() < 0.8 else self.touch()
            if r < 0.7:
                self.add('lost', reason=self.g.text('competitor', 0.3))
                return 'lost'
            return self.recycle()
        if stage == 'lost':
            return self.recycle() if r < (0.3 if not busy else 0.8) else None
        return None  # won, disqualified: done

    def touch(self):
        self.scored(self.r.random() < 0.5)  # after won: a touch
        return None

    def recycle(self):
        ev = {'reason': self.r.choice(REASONS)}
        if self.r.random() < 0.6:
            ev['note'] = self.g.text('call back later', 0.4)
        self.add('recycled', **ev)
        return 'nurture'

    def disqualify(self):
        self.add('disqualified', reason=self.g.text('wrong fit', 0.3))
        return None


def iso(ms):
    s, m = divmod(ms, 1000)
    import time
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(s)) + f'.{m:03d}Z'


def finish(g, lead):
    """event_id and occurred_at of each event; the ids of tied events
    sorted, so that (occurred_at, event_id) is the order meant."""
    evs = lead.events
    i = 0
    while i < len(evs):
        j = i
        while j + 1 < len(evs) and evs[j + 1][0] == evs[i][0]:
            j += 1
        ids = sorted(g.uid() for _ in range(j - i + 1))
        for k in range(i, j + 1):
            at, ev = evs[k]
            ev['event_id'] = ids[k - i]
            # Mostly RFC 3339, now and then epoch milliseconds: both are
            # the contract's JSON mapping.
            ev['occurred_at'] = at if g.r.random() < 0.1 else iso(at)
        i = j + 1
    return [(at, ev['event_id'], ev) for at, ev in evs]


def generate(leads, seed):
    g = Gen(seed)
    out, stats = [], {'leads': leads, 'ties': 0, 'max_per_lead': 0,
                      'leads_20plus': 0}
    for i in range(leads):
        start = T0 + g.r.randint(0, 180 * DAY)
        lead = Lead(g, i, start).live()
        evs = finish(g, lead)
        stats['ties'] += sum(1 for a, b in zip(evs, evs[1:]) if a[0] == b[0])
        stats['max_per_lead'] = max(stats['max_per_lead'], len(evs))
        stats['leads_20plus'] += len(evs) >= 20
        out.extend(evs)
    return out, stats


def read_events(path):
    out = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            if line.strip():
                ev = json.loads(line)
                at = ev['occurred_at']
                if isinstance(at, str):
                    import datetime
                    at = int(datetime.datetime.fromisoformat(
                        at.replace('Z', '+00:00')).timestamp() * 1000)
                out.append((at, ev['event_id'], ev))
    return out, {'leads': len({e[2]['lead_id'] for e in out})}


def late_count(stream):
    """Events arriving after a later event (by occurred_at, event_id) of
    their own lead: the ones that make the projector look back."""
    latest, n = {}, 0
    for at, eid, ev in stream:
        key, lead = (at, eid.encode()), ev['lead_id']
        if lead in latest and latest[lead] > key:
            n += 1
        else:
            latest[lead] = key
    return n


def orders(events, seed, late, span):
    """The three arrival orders of the same events.

    late: a fraction `late` of all events arrive late. Each is placed after
    its lead's next event, by 1 .. span * N positions more; no two events
    in a row of one lead are chosen, so that next event stays where it is
    and every chosen event is late (late_count() says so in the summary).
    """
    r = random.Random(seed * 7919 + 1)
    inorder = sorted(events, key=lambda e: (e[0], e[1].encode()))
    n = len(inorder)
    far = max(1, int(span * n))
    nxt, last = [None] * n, {}
    for i in range(n - 1, -1, -1):
        lead = inorder[i][2]['lead_id']
        nxt[i] = last.get(lead)
        last[lead] = i
    prev = {j: i for i, j in enumerate(nxt) if j is not None}
    candidates = [i for i in range(n) if nxt[i] is not None]
    r.shuffle(candidates)
    chosen, want = set(), int(round(late * n))
    for i in candidates:
        if len(chosen) >= want:
            break
        if nxt[i] not in chosen and prev.get(i) not in chosen:
            chosen.add(i)
    keys = [(nxt[i] + r.randint(1, far) + 0.5, r.random()) if i in chosen
            else (i, 0.0) for i in range(n)]
    moved = [e for _, e in sorted(zip(keys, inorder), key=lambda x: x[0])]
    shuffled = list(inorder)
    r.shuffle(shuffled)
    return {'inorder': inorder, 'late': moved, 'shuffled': shuffled}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--leads', type=int, default=25000)
    ap.add_argument('--seed', type=int, default=21)
    ap.add_argument('--late', type=float, default=0.1,
                    help='the fraction of the events that arrive late (0.1)')
    ap.add_argument('--late-span', type=float, default=0.1, dest='span',
                    help='how far at most, as a fraction of the stream')
    ap.add_argument('--reorder', metavar='FILE',
                    help='reorder FILE\'s events instead of generating')
    ap.add_argument('-o', '--out', required=True, metavar='DIR')
    a = ap.parse_args()
    if a.reorder:
        events, stats = read_events(a.reorder)
    else:
        events, stats = generate(a.leads, a.seed)
    os.makedirs(a.out, exist_ok=True)
    sizes = []
    streams = orders(events, a.seed, a.late, a.span)
    for name, evs in streams.items():
        with open(os.path.join(a.out, name + '.jsonl'), 'w',
                  encoding='utf-8') as f:
            for _, _, ev in evs:
                line = json.dumps(ev, ensure_ascii=False,
                                  separators=(',', ':'))
                if name == 'inorder':
                    sizes.append(len(line.encode()))
                f.write(line + '\n')
    stats['events'] = len(events)
    stats['per_lead'] = round(len(events) / max(1, stats['leads']), 2)
    stats['json_bytes_mean'] = round(sum(sizes) / max(1, len(sizes)))
    for name in ('late', 'shuffled'):
        stats[name + '_events'] = late_count(streams[name])
    with open(os.path.join(a.out, 'summary.json'), 'w') as f:
        json.dump(stats, f)
    print('workload2: ' + ', '.join(f'{k} {v}' for k, v in stats.items()),
          file=sys.stderr)


if __name__ == '__main__':
    main()
