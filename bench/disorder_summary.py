#!/usr/bin/python3
"""disorder_summary.py: where a disorder drain's time goes, from the files
`bench/run.py --rows disorder --pg-profile DIR` leaves in DIR.

    bench/disorder_summary.py DIR

For each drain (in order, 10% late, shuffled): the server's statement time
grouped by what the statement does (pg_stat_statements, summed over both
writers' connections), and the projector's CPU split by function
(`perf report --children` of its perf.data: the share of its samples
under each function, callees included). BENCHMARKS.md, "Disorder: where
the time goes".
"""
import glob
import os
import re
import subprocess
import sys

# (label, pattern on the statement's text), first match wins.
CLASSES = [
    ("read-back of recomputed leads' events (JSON built in SQL)",
     r"^SELECT lead_id, \(jsonb_build_object"),
    ("read-back of recomputed leads' events (plain columns)",
     r"^SELECT m\.person, e\.event_id"),
    ("read of recomputed leads' stored visits (to compare)",
     r"^SELECT lead_id, visit, cycle"),
    ("read of recomputed leads' stored anomalies (to compare)",
     r"^SELECT event_id, kind, reason, lead_id FROM funnel\.anomalies"),
    ("SET LOCAL of the batch's plans", r"^SET LOCAL enable_seqscan"),
    ("COPY funnel.events (what the COPY baseline does)",
     r"^COPY funnel\.events"),
    ("stage_history: COPY of new visits", r"^COPY funnel\.stage_history"),
    ("stage_history: DELETE of recomputed leads' (changed) visits",
     r"^DELETE FROM funnel\.stage_history"),
    ("stage_history: upsert of continued leads' visits",
     r"^INSERT INTO funnel\.stage_history|^COPY lf_stg_visits"),
    ("anomalies: upsert", r"^WITH ins AS \(INSERT INTO funnel\.anomalies|"
     r"^COPY lf_stg_anomalies"),
    ("anomalies: COPY of new events' ones", r"^COPY funnel\.anomalies"),
    ("anomalies: DELETE of resolved ones", r"^DELETE FROM funnel\.anomalies"),
    ("anomalies: lookup of fresh leads' earlier events",
     r"^SELECT lead_id FROM funnel\.anomalies"),
    ("leads: COPY of new leads", r"^COPY funnel\.leads"),
    ("leads: upsert of stored leads", r"^INSERT INTO funnel\.leads|"
     r"^COPY lf_stg_leads"),
    ("leads: load of stored leads", r"^SELECT lead_id, stage"),
    ("lead locks", r"pg_advisory_xact_lock"),
    ("offsets", r"funnel\.offsets"),
    ("duplicate check", r"^SELECT \$2 FROM funnel\.events WHERE event_id"),
]
# The projector's functions worth a line, in the order shown.
FUNCS = ["write_batch", "recompute", "write_recomputed",
         "lf_projector_stored_event",
         "lf_json_parse_event", "lf_event_validate", "lf_event_clear",
         "project_lead", "lf_funnel_apply_def", "store_events", "load_leads",
         "lf_pg_query", "main", "lf_codec_decode"]


def pgss(path):
    with open(path) as f:
        head = f.readline().strip("# \n")
        f.readline()
        rows = [l.rstrip("\n").split("|", 6) for l in f if "|" in l]
    groups = {}
    for ms, calls, _, nrows, _, _, query in rows:
        label = next((lab for lab, pat in CLASSES if re.search(pat, query)),
                     "other (schema, temp tables, COMMIT, ...)")
        g = groups.setdefault(label, [0.0, 0, 0])
        g[0] += float(ms)
        g[1] += int(calls)
        g[2] += int(nrows)
    total = sum(g[0] for g in groups.values())
    print(f"\n{head}\n  server, by statement (ms, share, calls, rows):")
    for label, (ms, calls, nrows) in sorted(groups.items(),
                                            key=lambda x: -x[1][0]):
        print(f"  {ms:9.0f} {100 * ms / total:5.1f}%  {calls:6d} "
              f"{nrows:8d}  {label}")


def perf(path):
    out = subprocess.run(
        ["perf", "report", "-i", path, "-n", "--children", "--sort",
         "symbol", "--stdio", "-g", "none"], capture_output=True,
        text=True).stdout
    comm = subprocess.run(
        ["perf", "report", "-i", path, "-n", "--no-children", "--sort",
         "comm", "--stdio", "-g", "none"], capture_output=True,
        text=True).stdout
    samples = sum(int(m.group(1)) for m in
                  re.finditer(r"^\s*[\d.]+%\s+(\d+)\s", comm, re.M))
    got = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+[\d.]+%\s+\d+\s+\[\.\] (\S+)", line)
        if m and m.group(2) in FUNCS:
            got[m.group(2)] = float(m.group(1))
    print(f"  projector CPU, {samples} samples at 499 Hz, share under each "
          "function (callees included):")
    for fn in FUNCS:
        if fn in got:
            print(f"  {got[fn]:5.1f}%  {fn}")


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "."
    for p in sorted(glob.glob(os.path.join(d, "*.pgss.txt"))):
        pgss(p)
        with open(p) as f:
            db = re.search(r"\((\w+)\)", f.readline()).group(1)
        data = os.path.join(d, f"{db}.perf.data")
        if os.path.exists(data):
            perf(data)


if __name__ == "__main__":
    main()
