"""test_definition.py: the funnel definition file, end to end.

- Model-based: random definitions (random `from` sets, targets, touch or
  anomaly, thresholds: the event's, a number, by model with "*"; random
  new_cycle rules) and a shuffled workload (leadflow-gen with anomalies,
  scored events given random models and scores, lines shuffled before
  leadflow-emit sends them). leadflow-project -X funnel.definition=FILE
  builds funnel.leads, stage_history and anomalies that equal an
  independent model (funnel_model.py, not common/'s code), live and rebuilt
  (leadflow-replay rebuild --definition FILE, from the database).
- The default file: the tables equal the model under default.json, and
  funnel.definition records it (name, version, sha256 of the canonical
  form); funnel.rules lists its rules.
- A projector under another definition than the recorded one refuses to
  start: exit 78, and the message says how to adopt it.
- leadflow-replay diff --summary prints the numbers of the views of both
  schemas.

    /usr/bin/python3 tests/integration/test_definition.py BIN_DIR
"""
import hashlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emit_lib import BIN, Broker, check, step  # noqa: E402
from funnel_model import (RULE_EVENTS, STAGES,  # noqa: E402
                          default_definition, model)
import emit_lib  # noqa: E402
from lf_funnel_fixture import Postgres, psql  # noqa: E402

MODELS = ["fit-engagement-v3", "fit-v2", "intent"]
TMP = tempfile.mkdtemp(prefix="leadflow-definition.")


def run(args, **kw):
    """emit_lib.run() with the environment as it is now (Postgres() has
    put the throwaway server's PG* variables in it)."""
    kw.setdefault("env", {k: v for k, v in os.environ.items()
                          if not k.startswith("LEADFLOW_")})
    return emit_lib.run(args, **kw)


def random_threshold(rng):
    """"event", a score, or now and then a fraction (70.5 means 71)."""
    if rng.random() < 0.4:
        return "event"
    return rng.randint(0, 100) + (0.5 if rng.random() < 0.2 else 0)


def random_definition(rng, n):
    """A definition drawn at random: every rule, threshold and cycle."""
    rules = []
    for ev in RULE_EVENTS:
        rules.append({"event": ev,
                      "from": rng.sample(STAGES, rng.randint(1, 5)),
                      "to": rng.choice(STAGES),
                      "otherwise": rng.choice(["touch", "anomaly"])})
    rng.shuffle(rules)
    kind = rng.randrange(3)
    if kind == 0:
        th = "event"
    elif kind == 1:
        th = rng.randint(0, 100)
    else:
        th = {m: random_threshold(rng)
              for m in rng.sample(MODELS, rng.randint(1, 2))}
        if rng.random() < 0.7:  # without "*": the event's own threshold
            th["*"] = random_threshold(rng)
    return {"name": "random-%d" % n, "version": n,
            "labels": {"marketing_qualified": "MQL"},
            "qualify": {"threshold": th}, "rules": rules,
            "new_cycle": {"from": rng.sample(STAGES, rng.randint(0, 2)),
                          "to": rng.sample(STAGES, rng.randint(0, 3))}}


def num(v):
    return None if v in (None, "") else int(v)


def tables(db, schema="funnel"):
    """leads (with the columns events set: funnel_model.FIELD_NAMES),
    stage_history and state anomalies, as expected() gives them."""
    leads = {r[0]: (r[1], int(r[2]), int(r[3]), r[4] or None, num(r[5]),
                    num(r[6]), num(r[7])) for r in psql(
        "SELECT lead_id, stage, cycle, (SELECT max(visit) FROM "
        "%s.stage_history h WHERE h.lead_id = l.lead_id), owner, score, "
        "won_amount_minor, opportunity_amount_minor FROM %s.leads l"
        % (schema, schema), db=db)}
    history = {(r[0], int(r[1])): (int(r[2]), r[3], r[4]) for r in psql(
        "SELECT lead_id, visit, cycle, stage, entered_by FROM "
        "%s.stage_history" % schema, db=db)}
    anomalies = {r[0] for r in psql(
        "SELECT event_id FROM %s.anomalies WHERE kind = 'state'" % schema,
        db=db)}
    return leads, history, anomalies


def expected(defn, events):
    """The model's tables, each lead with the columns its events set."""
    fields = {}
    leads, history, anomalies = model(defn, events, fields)
    return ({k: v + fields[k] for k, v in leads.items()}, history,
            anomalies)


def same_tables(what, got, want):
    for name, g, w in zip(("leads", "stage_history", "anomalies"), got,
                          want):
        if g != w:
            diff = sorted(set(g) ^ set(w)) if isinstance(g, set) else sorted(
                k for k in set(g) | set(w) if g.get(k) != w.get(k))
            check(False, "%s: %s differ from the model (%d vs %d rows), "
                  "first: %s" % (what, name, len(g), len(w), diff[:5]))


def workload(rng):
    """leadflow-gen's events with random models, scores, owners and
    amounts (so a touch that took an event's fields would show), shuffled."""
    path = os.path.join(TMP, "gen.jsonl")
    p = run([os.path.join(BIN, "leadflow-gen"), "--leads", "400", "--seed",
             "11", "--anomalies", "0.3",
             "-o", path, "-q"])
    check(p.returncode == 0, "leadflow-gen: %s" % p.stderr.decode())
    events = []
    with open(path) as f:
        for line in f:
            e = json.loads(line)
            if e["type"] == "scored":
                e["model"] = rng.choice(MODELS)
                e["score"] = rng.randint(0, 100)
            elif e["type"] in ("handed_off", "accepted"):
                e["owner"] = "rep-%d" % rng.randrange(50)
            elif e["type"] in ("won", "qualified"):
                e["amount_minor"] = rng.randrange(1, 10 ** 7)
            events.append(e)
    rng.shuffle(events)
    with open(path, "w") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")
    return path, events


def write_definition(defn, n):
    path = os.path.join(TMP, "def-%d.json" % n)
    with open(path, "w") as f:
        json.dump(defn, f, indent=2)
    return path


def project(broker, db, defn_path, expect_rc=0):
    args = [os.path.join(BIN, "leadflow-project"), "-b", broker.servers,
            "-t", broker.topic, "-g", "g-" + db, "-d", "dbname=" + db,
            "--idle-exit", "2", "-q"]
    if defn_path:
        args += ["-X", "funnel.definition=" + defn_path]
    p = run(args, timeout=120)
    check(p.returncode == expect_rc, "leadflow-project into %s exited %d, "
          "want %d: %s" % (db, p.returncode, expect_rc, p.stderr.decode()))
    return p.stderr.decode()


def replay(*args, expect_rc=0):
    p = run([os.path.join(BIN, "leadflow-replay")] + list(args), timeout=120)
    check(p.returncode == expect_rc, "leadflow-replay %s exited %d: %s" % (
        " ".join(args), p.returncode, p.stderr.decode()))
    return p.stdout.decode()


def canonical_sha(defn):
    """sha256 of the canonical form, written independently of common/."""
    d = json.loads(json.dumps(defn))
    d.setdefault("labels", {})
    # Thresholds as they mean: a score is an integer (70.5 is 71), models
    # not listed take "*", else the event's own; only "*" is one for all.
    ceil = (lambda t: t if t == "event" else int(math.ceil(t)))
    th = d["qualify"]["threshold"]
    if isinstance(th, dict):
        th = {m: ceil(t) for m, t in th.items()}
        th.setdefault("*", "event")
        if len(th) == 1:
            th = th["*"]
    else:
        th = ceil(th)
    d["qualify"]["threshold"] = th
    order = {s: i for i, s in enumerate(STAGES)}
    for r in d["rules"]:
        r["from"] = sorted(r["from"], key=order.get)
    d["rules"].sort(key=lambda r: RULE_EVENTS.index(r["event"]))
    for k in ("from", "to"):
        d["new_cycle"][k] = sorted(d["new_cycle"][k], key=order.get)
    text = json.dumps(d, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def check_recorded(db, defn, schema="funnel"):
    rows = psql("SELECT name, version, sha256 FROM %s.definition" % schema,
                db=db)
    check(rows == [[defn["name"], str(defn["version"]), canonical_sha(defn)]],
          "%s.definition in %s: %s" % (schema, db, rows))


def parse_summary(text):
    """diff --summary's rows: {(section, key): (a, b, change)}."""
    rows = {}
    for line in text[text.index("\nsummary "):].splitlines():
        f = line.split()
        if line.startswith("  ") and len(f) == 5:
            rows[(f[0], f[1])] = tuple(None if v == "-" else v for v in f[2:])
    return rows


def view_numbers(db, schema="funnel"):
    """The numbers of the views of @p schema over all leads, keyed as the
    summary keys them."""
    want = {}
    for stage, n in psql("SELECT stage, leads FROM %s.stage_counts "
                         "WHERE channel IS NULL" % schema, db=db):
        want[("leads", stage)] = n
    for step_, f, t, rate in psql(
            "SELECT step, from_stage, to_stage, rate FROM %s.conversion "
            "WHERE capture_month IS NULL AND channel IS NULL" % schema,
            db=db):
        want[("conversion", "%s:%s->%s" % (step_, f, t))] = rate
    for stage, med in psql("SELECT stage, median_hours FROM "
                           "%s.time_in_stage" % schema, db=db):
        want[("median_hours", stage)] = med
    want[("anomalies", "all")] = psql("SELECT count(*) FROM %s.anomalies"
                                      % schema, db=db)[0][0]
    return want


def summary_column(rows, col):
    return {k: v[col] for k, v in rows.items()}


def summary_and_promote(broker, events):
    """The worked example of docs/definition.md on db d0 (default rules)."""
    fit = default_definition()
    fit["name"], fit["version"] = "mql-fit-v2", 2
    fit["qualify"]["threshold"] = {"fit-v2": 70, "*": "event"}
    fit["labels"] = dict(fit["labels"], handed_off="<Hand-off> & SLA")
    fpath = write_definition(fit, 70)
    replay("rebuild", "--into", "whatif", "--from-db", "--definition",
           fpath, "-d", "dbname=d0", "-q")
    same_tables("mql-fit-v2 rebuilt", tables("d0", "whatif"),
                expected(fit, events))
    # The projector's setting (a shared -c file, say) is not rebuild's way
    # to choose the rules: it says so, and builds under the recorded ones.
    p = run([os.path.join(BIN, "leadflow-replay"), "rebuild", "--into",
             "whatif_x", "--from-db", "-X", "funnel.definition=" + fpath,
             "-d", "dbname=d0"], timeout=120)
    check(p.returncode == 0 and b"funnel.definition is leadflow-project's "
          b"setting and is not used here" in p.stderr,
          "rebuild with -X funnel.definition: exit %d, %s" % (
              p.returncode, p.stderr.decode()))
    check(psql("SELECT name FROM whatif_x.definition", db="d0") ==
          [["default"]],
          "rebuild with -X funnel.definition did not keep the recorded rules")
    psql("DROP SCHEMA whatif_x CASCADE", db="d0")
    out = replay("diff", "--against", "whatif", "--summary", "-d",
                 "dbname=d0", "-q", expect_rc=1)
    rows = parse_summary(out)
    check('definition funnel: "default" version 1' in out and
          'definition whatif: "mql-fit-v2" version 2' in out,
          "the summary names no definitions:\n" + out)
    live = view_numbers("d0")
    check(len(rows) == len(live) == 9 + 5 + 9 + 1,
          "summary rows %d, view numbers %d:\n%s" % (len(rows), len(live),
                                                     out))
    check(summary_column(rows, 0) == live,
          "the summary's funnel column is not the views':\n%s\n%s" % (
              out, live))
    check(summary_column(rows, 1) == view_numbers("d0", "whatif"),
          "the summary's what-if column is not the what-if schema's views':"
          "\n%s\n%s" % (out, view_numbers("d0", "whatif")))
    changed = [k for k, v in rows.items() if v[0] != v[1]]
    check(changed, "the what-if changed no number:\n" + out)
    for k, (a, b, change) in rows.items():
        if a is not None and b is not None:
            check(abs(float(b) - float(a) - float(change)) < 1e-3,
                  "change of %s: %s" % (k, rows[k]))

    before = psql("SELECT now()", db="d0")[0][0]
    pout = replay("promote", "whatif", "--no-group-check", "-d", "dbname=d0",
                  "-q")
    check('definition: "mql-fit-v2" version 2 (sha256 %s), not the old '
          "funnel's: start the projectors with its file" %
          canonical_sha(fit)[:12] in pout,
          "promote does not say which definition to start with:\n" + pout)
    adopted = psql("SELECT adopted_at >= '%s' FROM funnel.definition"
                   % before, db="d0")
    check(adopted == [["t"]], "promote did not record the adoption's time: "
          "adopted_at %s, promote started after %s" % (
              psql("SELECT adopted_at FROM funnel.definition", db="d0"),
              before))
    check(summary_column(rows, 1) == view_numbers("d0"),
          "after promote the views do not show the summary's what-if "
          "column:\n%s\n%s" % (out, view_numbers("d0")))
    check_recorded("d0", fit)
    check_report("d0", fit)
    rules = psql("SELECT DISTINCT qualify FROM funnel.rules WHERE event = "
                 "'scored'", db="d0")
    check(rules == [["model fit-v2: score >= 70; other models: score >= "
                     "the event's threshold"]], "funnel.rules: %s" % rules)
    # Restarted with the new file it runs; without it, it refuses.
    project(broker, "d0", fpath)
    err = project(broker, "d0", None, expect_rc=78)
    check("mql-fit-v2" in err, err)


def check_report(db, defn):
    sha = canonical_sha(defn)
    rep = os.path.join(BIN, "leadflow-report")
    out = {}
    for fmt in ("text", "csv", "json", "html"):
        p = run([rep, "-d", "dbname=" + db, "--format", fmt])
        check(p.returncode == 0, "leadflow-report --format %s: %s" % (
            fmt, p.stderr.decode()))
        out[fmt] = p.stdout.decode()
        check(defn["name"] in out[fmt] and (sha in out[fmt] or
                                            sha[:12] in out[fmt]),
              "leadflow-report --format %s names no definition" % fmt)
    check("Funnel definition: %s version %d, sha256 %s" % (
        defn["name"], defn["version"], sha) in out["text"], out["text"][:400])
    check("definition,,,sha256,%s" % sha in out["csv"], "CSV definition")
    check(json.loads(out["json"])["definition"] == {
        "name": defn["name"], "version": defn["version"], "sha256": sha},
        "JSON definition")
    page = out["html"]
    check('<section id="rules">' in page, "no rules section in the page")
    rules = page[page.index('<section id="rules">'):]
    rules = rules[:rules.index("</section>")]
    for r in defn["rules"]:
        check("<td>%s</td>" % r["event"] in rules,
              "the page's rules lack %s" % r["event"])
    check(rules.count("<tr>") == 1 + len(defn["rules"]),
          "the page's rules table: %d rows" % rules.count("<tr>"))
    # The labels are the report's display names: in the text's header, as
    # CSV rows, and on the charts (escaped).
    labels = [(st, defn["labels"][st]) for st in STAGES
              if st in defn.get("labels", {})]
    if labels:
        check("Stage labels: " + ", ".join(
            "%s = %s" % (lab, st) for st, lab in labels) in out["text"],
            "the text names no labels:\n" + out["text"][:600])
    for st, lab in labels:
        check("definition,%s,,label,%s" % (st, lab) in out["csv"]
              or ('"' in lab or "," in lab),
              "the CSV lacks the label of %s" % st)
        esc = lab.replace("&", "&amp;").replace("<", "&lt;").replace(
            ">", "&gt;")
        chart = page[:page.index('<section id="rules">')]
        check(">%s<" % esc in chart, "no chart shows the label %r" % lab)
        # ... on every chart: no chart names a labelled stage by its name
        check(">%s</text>" % st not in chart,
              "a chart names %s, not by its label %r" % (st, lab))
        # ... and in the rules table, wherever the stage is a From or a To.
        if any(st in r["from"] or st == r["to"] for r in defn["rules"]):
            check(esc in rules, "the rules table lacks the label %r" % lab)
    check(json.loads(out["json"])["stage_labels"] == dict(labels),
          "JSON stage_labels: %s" % json.loads(out["json"]).get(
              "stage_labels"))
    cyc = defn.get("new_cycle") or {}
    if cyc.get("from") and cyc.get("to"):
        check("A new cycle starts with a visit to a stage of <em>" in rules,
              "the rules section does not say when a cycle starts")


def main():
    rng = random.Random(int(os.environ.get("LF_DEFINITION_SEED", "19")))
    Postgres()
    broker = Broker(topic="defs", partitions=3)
    path, events = workload(rng)
    p = run([os.path.join(BIN, "leadflow-emit"), "-b", broker.servers, "-t",
             "defs", "-q", path])
    check(p.returncode == 0, "leadflow-emit: %s" % p.stderr.decode())

    step("the default definition: today's tables, recorded")
    psql("CREATE DATABASE d0")
    project(broker, "d0", None)
    same_tables("default", tables("d0"),
                expected(default_definition(), events))
    check_recorded("d0", default_definition())
    rules = psql("SELECT event, from_stage, to_stage, otherwise FROM "
                 "funnel.rules ORDER BY rule, from_stage", db="d0")
    want = sorted((r["event"], s, r["to"], r["otherwise"])
                  for r in default_definition()["rules"] for s in r["from"])
    check(sorted(tuple(r) for r in rules) == want,
          "funnel.rules: %s" % rules)

    step("leadflow-report names the definition; the page shows the rules")
    check_report("d0", default_definition())

    for n in range(1, 6):
        defn = random_definition(rng, n)
        dpath = write_definition(defn, n)
        db = "d%d" % n
        step("random definition %d: live" % n)
        psql("CREATE DATABASE " + db)
        project(broker, db, dpath)
        want = expected(defn, events)
        check(len(want[1]) > len(want[0]) > 300,
              "definition %d: a workload too small to tell" % n)
        same_tables("definition %d live" % n, tables(db), want)
        check_recorded(db, defn)

        step("random definition %d: rebuilt from the database" % n)
        replay("rebuild", "--into", "whatif", "--from-db", "--definition",
               dpath, "-d", "dbname=d0", "-q")
        same_tables("definition %d rebuilt" % n, tables("d0", "whatif"),
                    want)
        check_recorded("d0", defn, "whatif")
        psql("DROP SCHEMA whatif CASCADE", db="d0")

    step("what-if: MQL at 70 for model fit-v2, summary, promote")
    summary_and_promote(broker, events)

    step("another definition than the recorded one: exit 78")
    err = project(broker, "d1", None, expect_rc=78)
    for want in ("random-1", "leadflow-replay rebuild --into",
                 "--definition", "diff --against", "--summary", "promote",
                 "funnel.definition="):
        check(want in err, "the refusal lacks %r: %s" % (want, err))
    err = project(broker, "d2", write_definition(
        dict(default_definition(), version=2), 99), expect_rc=78)
    check("version 2" in err, "the refusal names no version: %s" % err)
    # The same rules in another layout are the same definition.
    psql("CREATE DATABASE d9")
    project(broker, "d9", None)
    shuffled = default_definition()
    shuffled["rules"].reverse()
    project(broker, "d9", write_definition(shuffled, 98))

    step("a bad definition file: exit 78, nothing starts")
    bad = write_definition(dict(default_definition(), rules=[]), 97)
    err = project(broker, "d9", bad, expect_rc=78)
    check("missing rule for event" in err and bad in err, err)
    # rebuild checks the file before it reaches anything: 78 even with no
    # database to reach, and no what-if schema made.
    replay("rebuild", "--into", "whatif", "--from-db", "--definition", bad,
           "-d", "host=/nonexistent dbname=d0 connect_timeout=1", "-q",
           expect_rc=78)
    replay("rebuild", "--into", "whatif", "--from-db", "--definition", bad,
           "-d", "dbname=d0", "-q", expect_rc=78)
    check(psql("SELECT count(*) FROM pg_namespace WHERE nspname = 'whatif'",
               db="d0") == [["0"]], "a bad file made a what-if schema")

    broker.stop()
    print("ok: test_definition")


if __name__ == "__main__":
    main()
