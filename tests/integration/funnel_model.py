"""funnel_model.py: an independent model of the funnel state machine under
a definition (schemas/funnel/*.json), written here and not from common/'s
code, for the model-based tests (test_definition.py, test_identity.py).

model(defn, events) takes the events that count (stage events, one per
event_id) with the lead each counts for in "lead_id", and returns the
tables the projector must build of them.
"""
import collections
import json
import os

from emit_lib import SRC, parse_time

STAGES = ["captured", "marketing_qualified", "handed_off", "sales_accepted",
          "sales_qualified", "won", "lost", "nurture", "disqualified"]
RULE_EVENTS = ["scored", "handed_off", "accepted", "recycled", "qualified",
               "won", "lost", "disqualified"]
# The event types that move a lead through the funnel (captured ..
# disqualified); merged, voided and erased move none.
STAGE_EVENTS = ["captured"] + RULE_EVENTS


def default_definition():
    with open(os.path.join(SRC, "schemas", "funnel", "default.json")) as f:
        return json.load(f)


def order_key(e):
    """The order the state machine applies a lead's events in."""
    return (parse_time(e["occurred_at"]), e["event_id"].encode())


def threshold(defn, model, event_threshold):
    th = defn["qualify"]["threshold"]
    if isinstance(th, dict):
        th = th.get(model, th.get("*", "event"))
    return event_threshold if th == "event" else th


# What an event sets on the lead when it moves it (scored: always, once the
# lead is known); a touch or an anomaly sets nothing.
FIELDS = {"handed_off": {"owner": "owner"}, "accepted": {"owner": "owner"},
          "won": {"won_amount_minor": "amount_minor"},
          "qualified": {"opportunity_amount_minor": "amount_minor"}}
FIELD_NAMES = ("owner", "score", "won_amount_minor",
               "opportunity_amount_minor")


def model(defn, events, fields=None):
    """The tables the definition makes of the events: {lead: (stage, cycle,
    visits)}, {(lead, visit): (cycle, stage, entered_by)}, {event_id}.
    Given a dict, @p fields gets {lead: the FIELD_NAMES columns}."""
    rules = {r["event"]: r for r in defn["rules"]}
    cyc_from = set(defn["new_cycle"]["from"])
    cyc_to = set(defn["new_cycle"]["to"])
    by_lead = collections.defaultdict(list)
    for e in events:
        by_lead[e["lead_id"]].append(e)
    leads, history, anomalies = {}, {}, set()
    for lead, evs in by_lead.items():
        stage, cycle, visits = None, 0, 0
        got = dict.fromkeys(FIELD_NAMES)
        evs.sort(key=order_key)
        for e in evs:
            t, to = e["type"], None
            if stage is None:
                if t == "captured":
                    to = "captured"
                else:
                    anomalies.add(e["event_id"])
            elif t in rules:
                r = rules[t]
                if t == "scored":
                    got["score"] = e["score"]
                if t == "scored" and e["score"] < threshold(
                        defn, e.get("model"), e["threshold"]):
                    continue
                if stage in r["from"]:
                    to = r["to"]
                elif r["otherwise"] == "anomaly":
                    anomalies.add(e["event_id"])
            if to is None:
                continue
            for col, key in FIELDS.get(t, {}).items():
                got[col] = e.get(key)
            if stage is None:
                cycle = 1
            elif stage in cyc_from and to in cyc_to:
                cycle += 1
            visits += 1
            stage = to
            history[(lead, visits)] = (cycle, stage, e["event_id"])
        if stage is not None:
            leads[lead] = (stage, cycle, visits)
            if fields is not None:
                fields[lead] = tuple(got[c] for c in FIELD_NAMES)
    return leads, history, anomalies
