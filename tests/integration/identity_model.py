"""identity_model.py: an independent model of merged leads, voided events
and erased people, written from the rules below and not from common/'s
code, for test_identity.py.

The rules, as the model applies them to the set of distinct events:
- merged events in (occurred_at, event_id) order: one counts unless its
  lead already has a merge that counts (the same target: a duplicate,
  nothing; another target: anomaly kind 'merge') or it would close a cycle
  (anomaly 'merge'). The surviving lead is the end of the chain; its funnel
  is the union of the stage events of every lead merged into it.
- a voided event counts iff its target is stored, is a stage event and has
  the same surviving lead as the voided event's lead; otherwise anomaly
  kind 'void'. A voided stage event is left out of the funnel.
- an erased event erases every lead connected to its lead by any stored
  merged event (counted or not, either direction): their ids are
  "erased:" + the first 32 hex digits of HMAC-SHA-256(key, id) everywhere.
- every anomaly is listed under the surviving lead of its event's lead.
"""
import collections
import hashlib
import hmac

from funnel_model import STAGE_EVENTS, default_definition, model, order_key

PSEUDONYM_PREFIX = "erased:"


def pseudonym(key, lead):
    """The keyed pseudonym of lead id @lead under @key (bytes)."""
    return PSEUDONYM_PREFIX + hmac.new(key, lead.encode(),
                                       hashlib.sha256).hexdigest()[:32]


def distinct(events):
    """One event per event_id (the first seen: the tests send duplicates
    only as exact copies)."""
    out = {}
    for e in events:
        out.setdefault(e["event_id"], e)
    return list(out.values())


class Identity:
    """The merges, voids and erasures the set of events makes."""

    def __init__(self, events, key):
        self.key = key
        self.events = {e["event_id"]: e for e in events}
        self.parent = {}        # lead -> (into, merged event) that counts
        self.anomalies = set()  # (event_id, raw lead of the event, kind)
        self.reasons = {}       # event_id -> what its anomaly's reason says
        self._merges()
        self.erased = self._erased()
        self.voided = self._voids()

    def surviving(self, lead):
        while lead in self.parent:
            lead = self.parent[lead][0]
        return lead

    def _merges(self):
        merged = sorted((e for e in self.events.values()
                         if e["type"] == "merged"), key=order_key)
        for e in merged:
            a, b = e["lead_id"], e["into_lead_id"]
            if a in self.parent:
                if self.parent[a][0] != b:
                    # "another target", "into another lead"
                    self.anomaly(e, "merge", "another")
            elif self.surviving(b) == a:
                self.anomaly(e, "merge", "cycle")
            else:
                self.parent[a] = (b, e)

    def _erased(self):
        adj = collections.defaultdict(set)
        for e in self.events.values():
            if e["type"] == "merged":
                adj[e["lead_id"]].add(e["into_lead_id"])
                adj[e["into_lead_id"]].add(e["lead_id"])
        erased = set()
        todo = [e["lead_id"] for e in self.events.values()
                if e["type"] == "erased"]
        while todo:
            lead = todo.pop()
            if lead not in erased:
                erased.add(lead)
                todo.extend(adj[lead])
        return erased

    def _voids(self):
        voided = set()
        for v in self.events.values():
            if v["type"] != "voided":
                continue
            t = self.events.get(v["voided_event_id"])
            if t is None:
                self.anomaly(v, "void", "not received")
            elif t["type"] not in STAGE_EVENTS:
                self.anomaly(v, "void", "not a stage event")
            elif (self.surviving(t["lead_id"]) !=
                  self.surviving(v["lead_id"])):
                self.anomaly(v, "void", "another lead")
            else:
                voided.add(t["event_id"])
        return voided

    def anomaly(self, e, kind, says):
        self.anomalies.add((e["event_id"], e["lead_id"], kind))
        self.reasons[e["event_id"]] = says

    def pid(self, lead):
        """The id a lead has in the database: its pseudonym once erased."""
        return pseudonym(self.key, lead) if lead in self.erased else lead

    def counts_for(self, lead):
        """The lead, as stored, whose funnel holds @lead's events."""
        return self.pid(self.surviving(lead))

    def tables(self, defn=None):
        """What the projector must build: a dict of table name -> rows, in
        the shapes test_identity.tables() reads."""
        stage = [dict(e, lead_id=self.counts_for(e["lead_id"]))
                 for e in self.events.values()
                 if e["type"] in STAGE_EVENTS and
                 e["event_id"] not in self.voided]
        leads, history, state = model(defn or default_definition(), stage)
        anomalies = {(eid, self.counts_for(lead), kind)
                     for eid, lead, kind in self.anomalies}
        anomalies |= {(eid, self.counts_for(self.events[eid]["lead_id"]),
                       "state") for eid in state}
        merges = {(self.pid(a), self.pid(b), self.counts_for(a),
                   e["event_id"]) for a, (b, e) in self.parent.items()}
        # a request reference that quotes the erased lead id quotes its
        # pseudonym
        erasures = {(e["event_id"], self.pid(e["lead_id"]),
                     e["request_id"].replace(e["lead_id"],
                                             self.pid(e["lead_id"])))
                    for e in self.events.values() if e["type"] == "erased"}
        stored = {e["event_id"]: (self.pid(e["lead_id"]),
                                  self.pid(e["into_lead_id"])
                                  if e["type"] == "merged" else None)
                  for e in self.events.values()}
        return {"leads": leads, "stage_history": history,
                "anomalies": anomalies, "merges": merges,
                "erasures": erasures, "events": stored,
                "erased_leads": {pseudonym(self.key, lead)
                                 for lead in self.erased},
                "voided_events": set(self.voided)}


TABLES_SQL = {
    "leads": "SELECT lead_id, stage, cycle, (SELECT max(visit) FROM "
             "{s}.stage_history h WHERE h.lead_id = l.lead_id) "
             "FROM {s}.leads l",
    "stage_history": "SELECT lead_id, visit, cycle, stage, entered_by "
                     "FROM {s}.stage_history",
    "anomalies": "SELECT event_id, lead_id, kind FROM {s}.anomalies "
                 "WHERE kind IN ('state', 'merge', 'void')",
    "merges": "SELECT lead_id, into_lead_id, surviving_lead_id, event_id "
              "FROM {s}.merges",
    "erasures": "SELECT event_id, pseudonym, request_id FROM {s}.erasures",
    "events": "SELECT event_id, lead_id, payload ->> 'into_lead_id' "
              "FROM {s}.events",
    "erased_leads": "SELECT pseudonym FROM {s}.erased_leads",
    "voided_events": "SELECT event_id FROM {s}.voided_events",
}


def read_tables(psql, db, schema="funnel"):
    """The same tables as Identity.tables(), read from @schema of @db
    (voided_events only where the schema has the view: a rebuilt schema
    gets funnel's views when it is promoted)."""
    def rows(name):
        return psql(TABLES_SQL[name].format(s=schema), db=db)
    out = {
        "leads": {r[0]: (r[1], int(r[2]), int(r[3])) for r in rows("leads")},
        "stage_history": {(r[0], int(r[1])): (int(r[2]), r[3], r[4])
                          for r in rows("stage_history")},
        "anomalies": {tuple(r) for r in rows("anomalies")},
        "merges": {tuple(r) for r in rows("merges")},
        "erasures": {tuple(r) for r in rows("erasures")},
        "events": {r[0]: (r[1], r[2]) for r in rows("events")},
        "erased_leads": {r[0] for r in rows("erased_leads")},
    }
    if psql("SELECT to_regclass('%s.voided_events') IS NOT NULL" % schema,
            db=db) == [["t"]]:
        out["voided_events"] = {r[0] for r in rows("voided_events")}
    return out


def differences(got, want):
    """Human-readable differences of two read_tables()-shaped dicts."""
    out = []
    for name in want:
        if name not in got:
            continue
        g, w = got[name], want[name]
        if g == w:
            continue
        if isinstance(w, set):
            extra, missing = sorted(g - w)[:4], sorted(w - g)[:4]
            out.append("%s: %d rows, model %d; not in the model: %s; "
                       "missing: %s" % (name, len(g), len(w), extra,
                                        missing))
        else:
            keys = sorted(k for k in set(g) | set(w) if g.get(k) != w.get(k))
            out.append("%s: %d rows, model %d; %d differ, first: %s" % (
                name, len(g), len(w), len(keys),
                [(k, g.get(k), w.get(k)) for k in keys[:4]]))
    return out
