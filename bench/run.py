#!/usr/bin/python3
"""run.py: leadflow's side-by-side benchmark (`make bench`).

    bench/run.py [--bin DIR] [--quick] [--runs N] [--events N] [--json FILE]
                 [--mem-runs N] [--rows producers,project,latency,memory,cost,
                 disorder,disorder-gen,identity] [--w2-leads N]
                 [--pg-profile DIR]
    bench/run.py --compare BEFORE_BIN_DIR [--bin DIR] [--runs N]
                 [--compare-arg ARG]... [--compare-unset VAR]...
                 [--backlog-contract 1|2]

Starts its own dev stack (tools/devstack.sh: devbroker + throwaway
PostgreSQL with track_commit_timestamp=on), measures every row against its
baseline in the same run, round after round, and prints ONE table of medians
with each row's ratio to its baseline and its target. These machines are
shared and noisy: the ratios (each taken within one round) are the figures
to quote, not the absolute rates. Progress goes to stderr, the table to stdout.

Rows (N = --events, about 100k by default):
  emit         leadflow-emit on N JSON lines / kcat -P producing the same N
               messages (the same Avro bytes and keys) with the same producer
               settings (acks=all, idempotence, lz4, linger.ms=5, murmur2)
               and / the same kcat run with the 7 CloudEvents headers that
               leadflow writes on every message (DESIGN.md), those of the
               first event on every message (kcat -H is static): the part of
               the gap that is the wire contract, not leadflow's CPU
  gen          leadflow-gen --produce of the same N events / the same kcat run
  project      leadflow-project draining a backlog of N into a fresh database
               (partition assignment -> commit of the last batch, from
               PostgreSQL's commit timestamps) / COPY of the same rows into a
               table shaped like funnel.events (its indexes included), and /
               bench/percommit.py, one INSERT + COMMIT per event (run on the
               first M events only: it is slow)
  latency      JSON lines paced at 1k/s and 10k/s into leadflow-emit, each
               line's occurred_at set to the moment it is written; per lead,
               commit timestamp of its funnel.leads row - its last_event_at
  memory       leadflow-project's peak RSS (VmHWM, polled) over a stream of N
               and of 10 N events produced while it runs; the median of
               --mem-runs runs of each size (3; quick 1)
  rebuild      leadflow-replay rebuild --from-db of the projected database
  cost         callgrind instructions per event of lf_codec_decode and of the
               state machine (sort by lead + lf_funnel_apply), bench_decode;
               decoding the same events as contract v1 against v2 (<= 1.10x);
               and of the producer side (lf_json_parse_event, lf_codec_encode)
  disorder     the project row for the same events in three arrival orders
               (bench/workload2.py, a second workload: --w2-leads leads,
               ~6 events each, ties, hostile strings; contract v1): each
               lead's events in time order, 10% of them late, fully
               shuffled; each drained into a new database / one COPY of the
               same rows, and / the in-order rate; peak RSS of each drain;
               the three databases' tables must be equal
  disorder-gen the same for leadflow-gen's workload (the N events above)
  identity     leadflow-gen's workload with ~2% merged and ~0.1% erased
               events (no voids), drained with a pseudonym key / the same
               workload without them, the same key, and / that without a
               key (neither -X pseudonym.key.file nor the dev stack's
               LEADFLOW_PSEUDONYM_KEY_FILE); each into a new database,
               taking turns; peak RSS and projector CPU of each

--pg-profile DIR: a measuring run, not a benchmark (BENCHMARKS.md,
"Disorder: where the time goes"): PostgreSQL with pg_stat_statements and
auto_explain (ANALYZE, BUFFERS, statements over 20 ms), perf record of
each disorder drain; per drain, DIR gets the statements' server time
(*.pgss.txt), EXPLAIN (ANALYZE, BUFFERS) of the recompute statements on
the drained database (*.explain.txt) and the perf data (*.perf.data), and
postgres.log the plans (bench/disorder_summary.py DIR sums them up); with
--compare, each drain's statements (ab-before-rN.pgss.txt, ab-after-rN...)
and perf data (abN.perf.data, N the database's number in the .pgss.txt).

BENCH_QUICK=1 (or --quick): tiny sizes, one round, for the smoke test.
Exit status: 0 when every row was measured (targets missed or not), 1 when
a row failed, 2 usage error.
"""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
PGBIN = "/usr/lib/postgresql/15/bin"
# leadflow's producer defaults (lf_producer.c), given to kcat too.
PRODUCER_X = ["enable.idempotence=true", "acks=all", "compression.type=lz4",
              "linger.ms=5", "partitioner=murmur2_random",
              "message.timeout.ms=300000"]
ROWS = ["producers", "project", "latency", "memory", "cost", "disorder",
        "disorder-gen", "identity"]
ORDERS = ["inorder", "late", "shuffled"]
# The identity row's workload: leadflow-gen's knobs are per lead, and some
# of a lead's identity events fall after the workload's end (cut off):
# these give ~2 % merged and ~0.1 % erased events of the N (seed 7).
IDENTITY_KNOBS = ["--merges", "0.107", "--erasures", "0.0085", "--voids",
                  "0"]
IDENTITY = ["ident", "plain", "nokey"]
GROUP_X = ["-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500"]
# --pg-profile: the server's side of a drain, statement by statement.
PG_PROFILE = [("auto_explain.log_min_duration", "20ms"),
              ("auto_explain.log_analyze", "on"),
              ("auto_explain.log_buffers", "on"),
              ("auto_explain.log_timing", "on")]


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class PeakRss(threading.Thread):
    """The peak RSS (KiB) of a running process: VmHWM from /proc, polled.
    Not wait4()'s ru_maxrss: Linux carries the parent's RSS at fork into
    it, and this Python process is bigger than the programs it measures."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.kib, self.done = pid, 0, threading.Event()
        self.start()

    def run(self):
        while not self.done.wait(0.02):
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    m = re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M)
            except OSError:
                return
            if m:
                self.kib = max(self.kib, int(m.group(1)))

    def stop(self):
        self.done.set()
        self.join()
        return self.kib


class Bench:
    def __init__(self, args):
        self.a = args
        self.bin = os.path.abspath(args.bin)
        self.tests = os.path.join(os.path.dirname(self.bin), "tests")
        self.work = tempfile.mkdtemp(prefix="leadflow-bench.")
        self.state = os.path.join(self.work, "stack")
        self.env = dict(os.environ)
        self.results = {}
        self.failed = []
        self.seq = 0
        self.disorder = {}
        self.ident = None
        self.last_cpu = 0.0
        self.unset = ()  # environment variables the projector runs without

    # ---- plumbing ---------------------------------------------------
    def path(self, name):
        return os.path.join(self.work, name)

    def prog(self, name):
        p = os.path.join(self.bin, name)
        if not os.access(p, os.X_OK):
            raise RuntimeError(f"{p} not found: build first")
        return p

    def run(self, cmd, **kw):
        kw.setdefault("env", self.env)
        kw.setdefault("check", True)
        return subprocess.run(cmd, **kw)

    def psql(self, sql, db="postgres"):
        r = self.run(["psql", "-X", "-At", "-q", "-v", "ON_ERROR_STOP=1",
                      "-d", db, "-c", sql], capture_output=True, text=True)
        return r.stdout.strip()

    def name(self, prefix):
        self.seq += 1
        return f"{prefix}{self.seq}"

    def topic(self, prefix, partitions=16):
        t = self.name(prefix)
        self.run([os.path.join(SRC, "tools/devstack.sh"), "cmd", self.state,
                  f"topic {t} {partitions}"], capture_output=True)
        return t

    def newdb(self, prefix):
        db = self.name(prefix)
        self.psql(f'CREATE DATABASE "{db}"')
        return db

    def start_stack(self):
        env = dict(self.env, LEADFLOW_BIN=self.bin,
                   LEADFLOW_BROKER_ARGS="--topic lead-events:16")
        out = self.run([os.path.join(SRC, "tools/devstack.sh"), "start",
                        self.state], env=env, capture_output=True,
                       text=True).stdout
        for m in re.finditer(r"^export (\w+)=(.*)$", out, re.M):
            self.env[m.group(1)] = m.group(2)
        self.brokers = self.env["LEADFLOW_BROKERS"]
        # Commit timestamps say when a row became visible, in the server's
        # clock (the same machine's as ours).
        self.psql("ALTER SYSTEM SET track_commit_timestamp = on")
        if self.a.pg_profile:
            self.psql("ALTER SYSTEM SET shared_preload_libraries = "
                      "pg_stat_statements, auto_explain")
        pgdata = self.env["LEADFLOW_PGDATA"]
        cmd = [f"{PGBIN}/pg_ctl", "-D", f"{pgdata}/data", "-l",
               f"{pgdata}/postgres.log", "-m", "fast", "-w", "-t", "60",
               "restart"]
        if os.getuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        self.run(cmd, capture_output=True)
        if self.a.pg_profile:  # known once the libraries are loaded
            for k, v in PG_PROFILE:
                self.psql(f"ALTER SYSTEM SET {k} = '{v}'")
            self.psql("SELECT pg_reload_conf()")
        log(f"stack up: brokers={self.brokers} "
            f"pg={self.env['PGHOST']}:{self.env['PGPORT']}")

    def stop_stack(self):
        log_ = os.path.join(self.env.get("LEADFLOW_PGDATA", "-"),
                            "postgres.log")
        if self.a.pg_profile and os.path.exists(log_):
            shutil.copy(log_, self.a.pg_profile)  # auto_explain's plans
        if os.path.isdir(self.state):
            subprocess.run([os.path.join(SRC, "tools/devstack.sh"), "stop",
                            self.state], env=self.env,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        shutil.rmtree(self.work, ignore_errors=True)

    def timed(self, cmd, **kw):
        """Run cmd; @returns its wall-clock seconds."""
        return self.timed_rss(cmd, **kw)[0]

    def timed_rss(self, cmd, **kw):
        """Run cmd; @returns (wall-clock seconds, peak RSS in KiB)."""
        kw.setdefault("env", self.env)
        kw.setdefault("stdout", subprocess.DEVNULL)
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, **kw)
        rss = PeakRss(p.pid)
        p.wait()
        wall = time.monotonic() - t0
        peak = rss.stop()
        if p.returncode:
            raise RuntimeError(f"{os.path.basename(cmd[0])} exited "
                               f"{p.returncode}")
        return wall, peak

    # ---- workload ---------------------------------------------------
    def prepare(self):
        leads = max(1, round(self.a.events / 3.92))
        self.leads = leads
        self.jsonl = self.path("events.jsonl")
        self.run([self.prog("leadflow-gen"), "--leads", str(leads),
                  "--seed", "7", "-o", self.jsonl, "-q"])
        with open(self.jsonl, "rb") as f:
            self.lines = f.read().splitlines()
        self.n = len(self.lines)
        # The same events as framed Avro, for kcat and bench_decode.
        codec = os.path.join(self.tests, "lf_codec_tool")
        hexes = self.run([codec, "encode"], input=b"\n".join(self.lines),
                         capture_output=True).stdout.split()
        values = [bytes.fromhex(h.decode()) for h in hexes]
        keys = [json.loads(l)["lead_id"].encode() for l in self.lines]
        assert len(values) == self.n
        # kcat splits stdin on delimiter strings: pick ones no message holds.
        for salt in range(100):
            kd, md = f"<#k{salt}#>".encode(), f"<#m{salt}#>\n".encode()
            if not any(kd in v or md in v or kd in k or md in k
                       for k, v in zip(keys, values)):
                break
        self.kcat_delims = (kd.decode(), md.decode())
        self.kcat_in = self.path("kcat.in")
        with open(self.kcat_in, "wb") as f:
            for k, v in zip(keys, values):
                f.write(k + kd + v + md)
        # leadflow's CloudEvents headers (lf_producer.c ce_headers) of the
        # first event, for the kcat run with headers.
        first = json.loads(self.lines[0])
        self.ce_headers = [
            "ce_specversion=1.0", f"ce_id={first['event_id']}",
            f"ce_type=leadflow.lead.{first['type']}",
            f"ce_source={first['source']}",
            f"ce_time={first['occurred_at']}",
            f"ce_subject={first['lead_id']}",
            "content-type=application/avro"]
        sizes = sorted(len(v) for v in values)
        self.msg_bytes = statistics.mean(sizes)
        log(f"workload: {self.n} events of {leads} leads, Avro values "
            f"{self.msg_bytes:.0f} B mean")

    # ---- rows -------------------------------------------------------
    def producers_round(self, r):
        res = {}
        for key, headers in (("kcat", []), ("kcath", self.ce_headers)):
            cmd = ["kcat", "-P", "-b", self.brokers, "-t", self.topic(key),
                   "-K", self.kcat_delims[0], "-D", self.kcat_delims[1]]
            for x in PRODUCER_X:
                cmd += ["-X", x]
            for h in headers:
                cmd += ["-H", h]
            with open(self.kcat_in, "rb") as f:
                res[key] = self.n / self.timed(cmd, stdin=f)
        t = self.topic("emit")
        res["emit"] = self.n / self.timed(
            [self.prog("leadflow-emit"), "-b", self.brokers, "-t", t, "-qq",
             self.jsonl])
        t = self.topic("gen")
        res["gen"] = self.n / self.timed(
            [self.prog("leadflow-gen"), "--leads", str(self.leads), "--seed",
             "7", "--produce", "-b", self.brokers, "-t", t, "-qq"])
        return res

    def project_once(self, db, topic, extra=(), produce=None):
        """Run leadflow-project on topic into db until idle; @returns
        (events/s from assignment to the last commit, peak RSS KiB)."""
        errf = self.path(f"{db}.project.log")
        with open(errf, "w") as err:
            cmd = [self.prog("leadflow-project"), "-b", self.brokers, "-t",
                   topic, "-g", f"g-{db}", "--idle-exit",
                   str(self.a.idle_exit)] + GROUP_X + self.a.project_args + \
                list(extra)
            env = dict(self.env, PGDATABASE=db)
            for var in self.unset:
                env.pop(var, None)
            p = subprocess.Popen(self.perf_prefix(db) + cmd, env=env,
                                 stderr=err,
                                 stdout=subprocess.DEVNULL)
            rss = PeakRss(p.pid)
            if produce:
                produce()
            # wait4: the projector's CPU time, user + system (all threads).
            _, status, use = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            self.last_cpu = use.ru_utime + use.ru_stime
            peak = rss.stop()
            if p.returncode:
                raise RuntimeError(f"leadflow-project exited {p.returncode};"
                                   f" see {errf}")
        with open(errf) as f:
            text = f.read()
        self.last_log = text
        m = re.search(r"^ts=(\S+) .*msg=assigned", text, re.M)
        if not m:
            raise RuntimeError(f"no assignment in {errf}")
        span = float(self.psql(
            "SELECT extract(epoch FROM max(pg_xact_commit_timestamp(xmin))"
            f" - '{m.group(1)}'::timestamptz) FROM funnel.offsets", db))
        events = int(self.psql("SELECT count(*) FROM funnel.events", db))
        return events, events / span, peak

    def project_round(self, r):
        res = {}
        db = self.newdb("proj")
        n, res["project"], res["project_rss"] = self.project_once(
            db, self.backlog)
        if n != self.n:
            raise RuntimeError(f"projected {n} of {self.n} events")
        # The limit: the same rows, one COPY into a table like funnel.events.
        rows = self.path("events.copy")
        if not os.path.exists(rows):
            self.run(["psql", "-X", "-q", "-d", db, "-c",
                      "\\copy (SELECT event_id, lead_id, type, occurred_at, "
                      "source, actor, payload, topic, partition, \"offset\" "
                      "FROM funnel.events ORDER BY topic, partition, "
                      "\"offset\") TO '" + rows + "'"])
        self.psql("CREATE TABLE public.copy_events "
                  "(LIKE funnel.events INCLUDING ALL);"
                  "CREATE TABLE public.pc_events "
                  "(LIKE funnel.events INCLUDING ALL)", db)
        import psycopg2
        conn = psycopg2.connect(host=self.env["PGHOST"],
                                port=self.env["PGPORT"],
                                user=self.env["PGUSER"], dbname=db)
        with open(rows) as f:
            t0 = time.monotonic()
            with conn.cursor() as cur:
                cur.copy_expert(
                    "COPY public.copy_events (event_id, lead_id, type, "
                    "occurred_at, source, actor, payload, topic, partition, "
                    "\"offset\") FROM STDIN", f)
            conn.commit()
            res["copy"] = self.n / (time.monotonic() - t0)
        conn.close()
        # What a user would write: one INSERT + COMMIT per event.
        m = min(self.n, self.a.percommit)
        out = self.run(["/usr/bin/python3", os.path.join(HERE, "percommit.py"),
                        "--brokers", self.brokers, "--topic", self.backlog,
                        "--group", f"pc-{db}", "--table", "public.pc_events",
                        "--count", str(m), "--schema",
                        os.path.join(SRC, "schemas/avro/lead_event.v2.avsc")],
                       env=dict(self.env, PGDATABASE=db), capture_output=True,
                       text=True).stdout
        pc = json.loads(out)
        res["percommit"] = pc["events"] / pc["seconds"]
        # Rebuild of the same model from funnel.events.
        wall = self.timed(
            [self.prog("leadflow-replay"), "rebuild", "--into",
             f"rebuild{r}", "--from-db", "--progress", "none", "-qq", "-b",
             self.brokers, "-t", self.backlog], env=dict(self.env,
                                                         PGDATABASE=db))
        res["rebuild"] = self.n / wall
        # ... and from the topic, whose reader's prefetch is bounded.
        wall, rss = self.timed_rss(
            [self.prog("leadflow-replay"), "rebuild", "--into",
             f"rebuildk{r}", "--from-kafka", "--progress", "none", "-qq",
             "-b", self.brokers, "-t", self.backlog, "-g", f"rk-{db}"],
            env=dict(self.env, PGDATABASE=db))
        res["rebuild_kafka"] = self.n / wall
        res["rebuild_kafka_rss"] = rss
        self.psql(f'DROP DATABASE "{db}"')
        return res

    def latency_once(self, rate, seconds):
        """Paced JSON lines through leadflow-emit into a running projector;
        @returns (p50 ms, p99 ms, samples)."""
        topic = self.topic("lat")
        # The project row just wrote ~half a GB of WAL; its checkpoint, if
        # left to run during this one, stalls commits here (p99 300-800 ms
        # in 3 of 5 rounds, ~120 ms otherwise). Flush it first: this row
        # measures the pipeline, not the previous row's aftermath.
        self.psql("CHECKPOINT")
        db = self.newdb("lat")
        errf = self.path(f"{db}.project.log")
        err = open(errf, "w")
        proj = subprocess.Popen(
            [self.prog("leadflow-project"), "-b", self.brokers, "-t", topic,
             "-g", f"g-{db}"] + GROUP_X + self.a.project_args,
            env=dict(self.env, PGDATABASE=db),
            stderr=err, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while "msg=assigned" not in open(errf).read():
                if time.monotonic() > deadline or proj.poll() is not None:
                    raise RuntimeError(f"projector not assigned: {errf}")
                time.sleep(0.05)
            emit = subprocess.Popen(
                [self.prog("leadflow-emit"), "-b", self.brokers, "-t", topic,
                 "-qq"], env=self.env, stdin=subprocess.PIPE)
            time.sleep(0.5)  # emit connected and has the topic's metadata
            total = min(len(self.lines), int(rate * seconds))
            lines = self.lines[:total]
            pat = re.compile(rb'"occurred_at":"[^"]*"')
            lead_pat = re.compile(rb'"lead_id":"([^"]*)"')
            last = {}
            t0 = time.monotonic()
            i = 0
            while i < total:
                due = min(total, int((time.monotonic() - t0) * rate) + 1)
                if due > i:
                    now_ms = int(time.time() * 1000)
                    chunk = []
                    for line in lines[i:due]:
                        lead = lead_pat.search(line).group(1)
                        ms = max(now_ms, last.get(lead, 0) + 1)
                        last[lead] = ms
                        ts = time.strftime("%Y-%m-%dT%H:%M:%S",
                                           time.gmtime(ms // 1000))
                        chunk.append(pat.sub(
                            f'"occurred_at":"{ts}.{ms % 1000:03d}Z"'.encode(),
                            line, count=1))
                    emit.stdin.write(b"\n".join(chunk) + b"\n")
                    emit.stdin.flush()
                    i = due
                else:
                    time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            emit.stdin.close()
            if emit.wait(60):
                raise RuntimeError("leadflow-emit failed")
            deadline = time.monotonic() + 60
            while int(self.psql("SELECT count(*) FROM funnel.events",
                                db)) < total:
                if time.monotonic() > deadline:
                    raise RuntimeError("projector did not catch up")
                time.sleep(0.2)
        finally:
            proj.send_signal(signal.SIGTERM)
            proj.wait(30)
            err.close()
        out = self.psql(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l), "
            "percentile_cont(0.99) WITHIN GROUP (ORDER BY l), count(*) FROM "
            "(SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin) - "
            "last_event_at) * 1000 AS l FROM funnel.leads) s", db)
        p50, p99, n = out.split("|")
        self.psql(f'DROP DATABASE "{db}"')
        return float(p50), float(p99), int(n)

    def consumed(self, db):
        """Messages the projector in db has committed (its topic is new,
        so its stored next offsets add up to that); 0 before it starts."""
        try:
            return int(self.psql("SELECT coalesce(sum(next_offset), 0) "
                                 "FROM funnel.offsets", db))
        except subprocess.CalledProcessError:
            return 0

    def memory(self):
        """Peak RSS over a stream of N and of 10 N events, each measured
        mem_runs times (the sizes alternating) and summed up by the median:
        a peak is the one worst moment of a run, which moves by a few MiB
        from run to run. Each stream is produced in slices of N
        (leadflow-gen --produce, a new lead prefix each) while the projector
        runs: a slice waits while the projector is more than 1.5 N behind,
        so the backlog stays well inside the devbroker's retention (5 MiB
        per partition) whatever the speeds."""
        runs = {"small": [], "large": []}
        for _ in range(self.a.mem_runs):
            for label, one in self.memory_once().items():
                runs[label].append(one)
        res = {}
        for label, rs in runs.items():
            peaks = [r["rss_kib"] for r in rs]
            res[label] = {"events": rs[0]["events"],
                          "rss_kib": statistics.median(peaks),
                          "runs_kib": peaks}
        return res

    def memory_once(self):
        """One run at each size; @returns {label: {events, rss_kib, rate}}."""
        res = {}
        for label, slices in (("small", 1), ("large", 10)):
            topic = self.topic("mem")
            db = self.newdb("mem")
            produced = [0]

            def produce(topic=topic, db=db, slices=slices):
                for i in range(slices):
                    deadline = time.monotonic() + 300
                    while produced[0] - self.consumed(db) > 1.5 * self.n:
                        if time.monotonic() > deadline:
                            raise RuntimeError("projector stalled")
                        time.sleep(0.2)
                    out = self.run(
                        [self.prog("leadflow-gen"), "--leads",
                         str(self.leads), "--seed", str(11 + i), "--prefix",
                         f"M{i}-", "--produce", "-b", self.brokers, "-t",
                         topic, "-q"], capture_output=True, text=True).stderr
                    produced[0] += int(re.search(r"delivered=(\d+)",
                                                 out).group(1))
            n, rate, rss = self.project_once(db, topic, produce=produce)
            if n != produced[0]:
                raise RuntimeError(f"memory run projected {n} of "
                                   f"{produced[0]} events")
            res[label] = {"events": n, "rss_kib": rss, "rate": rate}
            log(f"memory {label}: {n} events, peak RSS {rss / 1024:.1f} MiB")
            self.psql(f'DROP DATABASE "{db}"')
        return res

    def cost(self):
        k = min(self.n, self.a.cost_events)
        sub = self.path("cost.jsonl")
        with open(sub, "wb") as f:
            f.write(b"\n".join(self.lines[:k]) + b"\n")
        res = {"events": k}
        # decode_all_v1: the same events decoded as contract v1 (the wire
        # contract's cost: v2 must stay within 10 % of v1's).
        for key, fn, contract in (("decode_all", "decode_all", "2"),
                                  ("decode_all_v1", "decode_all", "1"),
                                  ("apply_all", "apply_all", "2"),
                                  ("parse_all", "parse_all", "2"),
                                  ("encode_all", "encode_all", "2")):
            out = self.path(f"callgrind.{key}")
            self.run(["valgrind", "--tool=callgrind", f"--toggle-collect={fn}",
                      f"--callgrind-out-file={out}",
                      self.prog("bench_decode"), sub, "1", contract],
                     capture_output=True)
            with open(out) as f:
                total = int(re.search(r"^totals: (\d+)", f.read(),
                                      re.M).group(1))
            res[key] = total / k
        return res

    # ---- disorder: the same events in three arrival orders ----------
    def disorder_prepare(self, kind):
        """Write kind's events in the three orders (bench/workload2.py) and
        produce each order to a topic of its own, once for every round."""
        out = self.path(f"orders-{kind}")
        cmd = ["/usr/bin/python3", os.path.join(HERE, "workload2.py"), "-o",
               out]
        emit_x = []
        if kind == "w2":
            cmd += ["--leads", str(self.a.w2_leads), "--seed", "21"]
            emit_x = ["-X", "contract.version=1"]  # as the user did
        else:
            cmd += ["--reorder", self.jsonl, "--seed", "7"]
        self.run(cmd, capture_output=True)
        with open(os.path.join(out, "summary.json")) as f:
            summary = json.load(f)
        topics = {}
        for order in ORDERS:
            topics[order] = self.topic(f"dis-{kind}-{order}-")
            self.run([self.prog("leadflow-emit"), "-b", self.brokers, "-t",
                      topics[order], "-qq"] + emit_x +
                     [os.path.join(out, order + ".jsonl")])
        log(f"disorder {kind}: {summary['events']} events of "
            f"{summary['leads']} leads in 3 orders")
        self.disorder[kind] = {"topics": topics, "summary": summary,
                               "copy": self.path(f"{kind}.copy")}

    def tables_digest(self, db):
        """Row count and md5 of leads, stage_history and anomalies, but for
        the columns that say when a row was written. An empty table reads
        as "0:empty", never NULL: string_agg() of no rows is NULL, and one
        NULL made the whole digest NULL, so that all three orders compared
        equal on a workload without anomalies."""
        part = ("(SELECT count(*) || ':' || coalesce(md5(string_agg(({row})"
                "::text, E'\\n' ORDER BY {order})), 'empty') FROM {table})")
        parts = [
            part.format(row="to_jsonb(l) - 'updated_at'",
                        order='l.lead_id COLLATE "C"',
                        table="funnel.leads l"),
            part.format(row="to_jsonb(s)",
                        order='s.lead_id COLLATE "C", s.visit',
                        table="funnel.stage_history s"),
            part.format(row="to_jsonb(a) - 'detected_at'",
                        order='a.event_id COLLATE "C", a.kind, a.reason',
                        table="funnel.anomalies a")]
        digest = self.psql("SELECT " + " || ' ' || ".join(parts), db)
        if not digest or digest.startswith("0:"):
            raise RuntimeError(f"no leads to compare in {db}: {digest!r}")
        return digest

    def copy_rate(self, db, rows):
        """One COPY + COMMIT of the rows (exported from db's funnel.events
        by the first call) into a table like funnel.events; @returns
        rows/s."""
        if not os.path.exists(rows):
            self.run(["psql", "-X", "-q", "-d", db, "-c",
                      "\\copy (SELECT event_id, lead_id, type, occurred_at, "
                      "source, actor, payload, topic, partition, \"offset\" "
                      "FROM funnel.events ORDER BY topic, partition, "
                      "\"offset\") TO '" + rows + "'"])
        self.psql("CREATE TABLE public.copy_events "
                  "(LIKE funnel.events INCLUDING ALL)", db)
        import psycopg2
        conn = psycopg2.connect(host=self.env["PGHOST"],
                                port=self.env["PGPORT"],
                                user=self.env["PGUSER"], dbname=db)
        with open(rows) as f:
            t0 = time.monotonic()
            with conn.cursor() as cur:
                cur.copy_expert(
                    "COPY public.copy_events (event_id, lead_id, type, "
                    "occurred_at, source, actor, payload, topic, partition, "
                    "\"offset\") FROM STDIN", f)
                n = cur.rowcount
            conn.commit()
            rate = n / (time.monotonic() - t0)
        conn.close()
        return rate

    def disorder_round(self, kind, r):
        """Each order drained into a new database, next to one COPY of the
        same rows; the orders take turns at going first."""
        d = self.disorder[kind]
        want = d["summary"]["events"]
        res, digests = {}, {}
        for order in ORDERS[r % 3:] + ORDERS[:r % 3]:
            db = self.newdb(f"dis{kind}{order[:2]}")
            if self.a.pg_profile:
                self.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements;"
                          "SELECT pg_stat_statements_reset()", db)
            n, rate, rss = self.project_once(db, d["topics"][order])
            if n != want:
                raise RuntimeError(f"{order}: projected {n} of {want}")
            key = f"{kind}_{order}"
            res[key], res[key + "_rss"] = rate, rss
            res[key + "_cpu"] = self.last_cpu / n * 1e6  # us per event
            # The projector's last stats line: leads recomputed, batches.
            for k in ("recomputed", "batches"):
                m = re.findall(rf"\b{k}=(\d+)", self.last_log)
                res[f"{key}_{k}"] = int(m[-1]) if m else -1
            if self.a.pg_profile:
                self.pg_profile_dump(db, f"{kind}-{order}-r{r}", n / rate)
                self.pg_profile_explain(
                    db, f"{kind}-{order}-r{r}",
                    res[key + "_recomputed"] // max(1, res[key + "_batches"]))
            digests[order] = self.tables_digest(db)
            res[key + "_copy"] = self.copy_rate(db, d["copy"])
            self.psql(f'DROP DATABASE "{db}"')
            log(f"disorder {kind} {order}: {rate:,.0f}/s, COPY "
                f"{res[key + '_copy']:,.0f}/s, peak RSS {rss / 1024:.1f} MiB,"
                f" projector CPU {res[key + '_cpu']:.1f} us/event, "
                f"{res[key + '_recomputed']} leads recomputed in "
                f"{res[key + '_batches']} batches")
        if len(set(digests.values())) != 1:
            raise RuntimeError(f"the orders' tables differ: {digests}")
        return res

    def perf_prefix(self, db):
        """--pg-profile: the disorder and identity drains run under perf
        record (every thread; the peak RSS and CPU time are then perf's and
        the projector's together, not figures)."""
        if not self.a.pg_profile or not db.startswith(("dis", "idn", "ab")):
            return []
        return ["perf", "record", "-q", "-F", "499", "--call-graph",
                "dwarf,16384", "-o",
                os.path.join(self.a.pg_profile, f"{db}.perf.data"), "--"]

    def pg_profile_explain(self, db, label, per_batch):
        """--pg-profile: EXPLAIN (ANALYZE, BUFFERS) of the recompute's
        statements on the drained database, for per_batch random leads
        (the drain's leads recomputed per batch), each in a transaction
        rolled back: the read-back as the projector sends it (its text
        from auto_explain's log), the same rows without the JSON, the same
        with the index forced, the DELETE and rewrite of their
        stage_history, and the anomalies lookup."""
        logf = os.path.join(self.env["LEADFLOW_PGDATA"], "postgres.log")
        with open(logf, errors="replace") as f:
            texts = re.findall(r"Query Text: (SELECT lead_id, \(jsonb_build"
                               r"_object.*)", f.read())
        if not texts:
            return
        import psycopg2
        conn = psycopg2.connect(host=self.env["PGHOST"],
                                port=self.env["PGPORT"],
                                user=self.env["PGUSER"], dbname=db)
        cur = conn.cursor()
        cur.execute("SELECT array_agg(lead_id) FROM (SELECT lead_id FROM "
                    "funnel.leads ORDER BY random() LIMIT %s) s",
                    (max(100, per_batch),))
        leads = cur.fetchone()[0]
        where = ("FROM funnel.events WHERE lead_id = ANY($1::text[]) AND "
                 "type <> ALL($2::text[]) ORDER BY lead_id COLLATE \"C\", "
                 "occurred_at, event_id COLLATE \"C\"")
        steps = [
            ("read-back, as sent", texts[-1], 2, ""),
            ("read-back rows without the JSON", "SELECT lead_id, event_id, "
             "type, occurred_at, source, actor, payload, account_id, extra "
             + where, 2, ""),
            ("read-back, index forced", texts[-1], 2,
             "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan "
             "= off"),
            ("DELETE of their stage_history", "DELETE FROM "
             "funnel.stage_history WHERE lead_id = ANY($1::text[])", 1, ""),
            ("their stage_history written anew (INSERT of the rows just "
             "deleted; the projector COPYs)", "WITH d AS (DELETE FROM "
             "funnel.stage_history WHERE lead_id = ANY($1::text[]) "
             "RETURNING *) INSERT INTO funnel.stage_history SELECT * FROM d",
             1, ""),
            ("anomalies lookup (project_fresh)", "SELECT lead_id FROM "
             "funnel.anomalies WHERE lead_id = ANY($1::text[]) AND kind = "
             "'state' GROUP BY lead_id ORDER BY lead_id COLLATE \"C\"", 1,
             ""),
            # A drain into a new database ends before autovacuum's first
            # ANALYZE: the plans above are made without statistics.
            ("read-back, as sent, after ANALYZE funnel.events", texts[-1],
             2, "ANALYZE funnel.events"),
        ]
        out = [f"# {label} ({db}): {len(leads)} leads"]
        for name, sql, nargs, pre in steps:
            cur.execute("BEGIN")
            if pre:
                cur.execute(pre)
            cur.execute(f"PREPARE s AS {sql}")
            args = (leads, ["merged", "voided", "erased"])[:nargs]
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) EXECUTE s(" +
                        ", ".join(["%s"] * nargs) + ")", args)
            plan = "\n".join(r[0] for r in cur.fetchall())
            cur.execute("ROLLBACK")
            cur.execute("DEALLOCATE s")
            out.append(f"\n## {name}\n{plan}")
        conn.close()
        with open(os.path.join(self.a.pg_profile, f"{label}.explain.txt"),
                  "w") as f:
            f.write("\n".join(out) + "\n")

    def pg_profile_dump(self, db, label, wall):
        """--pg-profile: the drain's statements by server time."""
        rows = self.psql(
            "SELECT round(total_exec_time::numeric, 1), calls, "
            "round((100 * total_exec_time / sum(total_exec_time) OVER ())"
            "::numeric, 1), rows, shared_blks_hit, shared_blks_read, "
            "regexp_replace(left(query, 160), '\\s+', ' ', 'g') FROM "
            "pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
            f"WHERE datname = '{db}') ORDER BY total_exec_time DESC", db)
        total = sum(float(l.split("|")[0]) for l in rows.splitlines())
        with open(os.path.join(self.a.pg_profile, f"{label}.pgss.txt"),
                  "w") as f:
            f.write(f"# {label} ({db}): drain {wall:.2f} s wall, projector "
                    f"CPU {self.last_cpu:.2f} s, server statements "
                    f"{total / 1000:.2f} s\n# ms|calls|%|rows|hit|read|"
                    "query\n" + rows + "\n")

    # ---- identity: what merges and erasures cost -------------------
    def identity_prepare(self):
        """leadflow-gen's workload again with merged and erased events
        (IDENTITY_KNOBS: ~2 % and ~0.1 % of its events), produced to a
        topic of its own; the workload without them is the backlog. A
        pseudonym key file (0600) for the keyed drains, and an environment
        without the dev stack's key for the keyless one."""
        jsonl = self.path("identity.jsonl")
        self.run([self.prog("leadflow-gen"), "--leads", str(self.leads),
                  "--seed", "7", "-o", jsonl, "-q"] + IDENTITY_KNOBS)
        types = {}
        with open(jsonl, "rb") as f:
            for line in f:
                t = re.search(rb'"type":"(\w+)"', line).group(1).decode()
                types[t] = types.get(t, 0) + 1
        n = sum(types.values())
        if n - types.get("merged", 0) - types.get("erased", 0) != self.n:
            raise RuntimeError("the identity workload is not the backlog's "
                               "events plus merged and erased ones")
        key = self.path("pseudonym.key")
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        env = {k: v for k, v in self.env.items()
               if k not in ("LEADFLOW_PSEUDONYM_KEY_FILE",
                            "LEADFLOW_PSEUDONYM_KEY")}
        topic = self.topic("ident")
        self.run([self.prog("leadflow-emit"), "-b", self.brokers, "-t",
                  topic, "-qq", jsonl], env=env)
        self.ident = {
            "env": env, "x": ["-X", f"pseudonym.key.file={key}"],
            "topics": {"ident": topic, "plain": self.backlog,
                       "nokey": self.backlog},
            "events": {"ident": n, "plain": self.n, "nokey": self.n},
            "merged": types.get("merged", 0),
            "erased": types.get("erased", 0)}
        log(f"identity: {n} events, {self.ident['merged']} merged "
            f"({100 * self.ident['merged'] / n:.2f} %), "
            f"{self.ident['erased']} erased "
            f"({100 * self.ident['erased'] / n:.3f} %), no voids")

    def identity_round(self, r):
        """The three drains, each into a new database, taking turns at
        going first: ident (with merges and erasures, keyed), plain (the
        same workload without them, the same key), nokey (plain without
        a key); projector CPU and peak RSS of each."""
        d, res = self.ident, {}
        env, self.env = self.env, d["env"]
        try:
            for v in IDENTITY[r % 3:] + IDENTITY[:r % 3]:
                db = self.newdb(f"idn{v[:2]}")
                if self.a.pg_profile:
                    self.psql("CREATE EXTENSION IF NOT EXISTS "
                              "pg_stat_statements;"
                              "SELECT pg_stat_statements_reset()", db)
                n, rate, rss = self.project_once(
                    db, d["topics"][v], () if v == "nokey" else d["x"])
                if n != d["events"][v]:
                    warn = [l for l in self.last_log.splitlines() if
                            re.search(r"level=(warning|err)", l)]
                    raise RuntimeError(f"identity {v}: projected {n} of "
                                       f"{d['events'][v]}; "
                                       + " | ".join(warn[-5:]))
                key = f"id_{v}"
                res[key], res[key + "_rss"] = rate, rss
                res[key + "_cpu"] = self.last_cpu / n * 1e6
                for k in ("recomputed", "batches"):
                    m = re.findall(rf"\b{k}=(\d+)", self.last_log)
                    res[f"{key}_{k}"] = int(m[-1]) if m else -1
                if self.a.pg_profile:  # before the queries below
                    self.pg_profile_dump(db, f"identity-{v}-r{r}", n / rate)
                if v == "ident":
                    res[key + "_counts"] = self.psql(
                        "SELECT (SELECT count(*) FROM funnel.merges) || ' "
                        "merges count, ' || (SELECT count(*) FROM "
                        "funnel.erasures) || ' erasures, ' || (SELECT "
                        "count(*) FROM funnel.erased_leads) || ' leads "
                        "erased'", db)
                else:
                    res[key + "_digest"] = self.tables_digest(db)
                self.psql(f'DROP DATABASE "{db}"')
                log(f"identity {v}: {rate:,.0f}/s, peak RSS "
                    f"{rss / 1024:.1f} MiB, projector CPU "
                    f"{res[key + '_cpu']:.1f} us/event, "
                    f"{res[key + '_recomputed']} leads recomputed in "
                    f"{res[key + '_batches']} batches")
        finally:
            self.env = env
        if res["id_plain_digest"] != res.pop("id_nokey_digest"):
            raise RuntimeError("identity: the keyed and keyless drains' "
                               "tables differ")
        del res["id_plain_digest"]
        return res

    def identity_report(self, rounds):
        """The identity rows of the table, and the line under it."""
        keys = [f"id_{v}" for v in IDENTITY]
        got = [r for r in rounds if all(k in r for k in keys)]
        if "identity" not in self.a.rows:
            return [], []
        if not got:
            return [("identity: 2% merges", "-", "-", "-", ">= 0.8x", "-")], []

        def med(f):
            return statistics.median(f(r) for r in got)

        rate = {v: med(lambda r, v=v: r[f"id_{v}"]) for v in IDENTITY}
        rss = {v: max(r[f"id_{v}_rss"] for r in got) / 1024
               for v in IDENTITY}
        cpu = {v: med(lambda r, v=v: r[f"id_{v}_cpu"]) for v in IDENTITY}
        ident = med(lambda r: r["id_ident"] / r["id_plain"])
        keyed = med(lambda r: r["id_plain"] / r["id_nokey"])
        rows = [("identity: 2% merges, 0.1% erasures",
                 f"{rate['ident']:,.0f}/s",
                 f"without them, same key {rate['plain']:,.0f}/s",
                 f"{ident:.2f}x", ">= 0.8x",
                 "met" if ident >= 0.8 else "NOT MET"),
                ("identity: the key", f"{rate['plain']:,.0f}/s",
                 f"same without a key {rate['nokey']:,.0f}/s",
                 f"{keyed:.2f}x", "-", "-"),
                ("identity: peak RSS", f"{max(rss.values()):.1f} MiB",
                 ", ".join(f"{v} {rss[v]:.1f}" for v in IDENTITY), "-", "-",
                 "-")]
        d = self.ident
        notes = [
            f"identity: {d['events']['ident']:,} events ({d['merged']:,} "
            f"merged, {d['erased']:,} erased, no voids; "
            f"{got[0]['id_ident_counts']}) / the backlog's {self.n:,}; per "
            "round, with/without " + ", ".join(
                f"{r['id_ident'] / r['id_plain']:.2f}" for r in got)
            + "; key/no key " + ", ".join(
                f"{r['id_plain'] / r['id_nokey']:.2f}" for r in got)
            + "; projector CPU us/event (median) " + ", ".join(
                f"{v} {cpu[v]:.1f}" for v in IDENTITY)
            + "; leads recomputed/batches " + ", ".join(
                f"{v} {got[0][f'id_{v}_recomputed']}/"
                f"{got[0][f'id_{v}_batches']}" for v in IDENTITY)]
        return rows, notes

    # ---- driver -----------------------------------------------------
    def row(self, name, fn, *args):
        try:
            return fn(*args)
        except Exception as e:  # report, keep measuring the other rows
            log(f"{name}: FAILED: {e}")
            self.failed.append(f"{name}: {e}")
            return None

    def compare(self):
        """--compare DIR: the project row only, DIR's leadflow-project
        against --bin's, alternating within each round (an A/B of a change
        to the projector, side by side)."""
        bins = {"before": os.path.abspath(self.a.compare), "after": self.bin}
        rates = {"before": [], "after": [], "ratio": []}
        rss = {"before": [], "after": []}
        for r in range(1, self.a.runs + 1):
            order = ["before", "after"] if r % 2 else ["after", "before"]
            got = {}
            for label in order:
                self.bin = bins[label]
                db = self.newdb("ab")
                extra = self.a.compare_args if label == "before" else ()
                self.unset = self.a.compare_unset if label == "before" else ()
                if self.a.pg_profile:
                    self.psql("CREATE EXTENSION IF NOT EXISTS "
                              "pg_stat_statements;"
                              "SELECT pg_stat_statements_reset()", db)
                n, got[label], kib = self.project_once(db, self.backlog,
                                                       extra)
                if self.a.pg_profile:
                    self.pg_profile_dump(db, f"ab-{label}-r{r}",
                                         n / got[label])
                self.psql(f'DROP DATABASE "{db}"')
                rates[label].append(got[label])
                rss[label].append(kib / 1024)
            rates["ratio"].append(got["after"] / got["before"])
            log(f"round {r}: before {got['before']:,.0f}/s after "
                f"{got['after']:,.0f}/s ratio {rates['ratio'][-1]:.2f}; "
                f"peak RSS before {rss['before'][-1]:.1f} MiB after "
                f"{rss['after'][-1]:.1f} MiB")
        self.bin, self.unset = bins["after"], ()
        print(f"project A/B, {self.n:,} events, {self.a.runs} rounds "
              f"(medians): before {statistics.median(rates['before']):,.0f}"
              f"/s ({bins['before']} {' '.join(self.a.compare_args)}), after "
              f"{statistics.median(rates['after']):,.0f}/s ({bins['after']})"
              f", after/before {statistics.median(rates['ratio']):.2f}x; "
              f"peak RSS (median) before "
              f"{statistics.median(rss['before']):.1f} MiB, after "
              f"{statistics.median(rss['after']):.1f} MiB")
        return 0

    def main(self):
        self.start_stack()
        self.prepare()
        self.backlog = self.topic("backlog")
        self.run([self.prog("leadflow-emit"), "-b", self.brokers, "-t",
                  self.backlog, "-qq", "-X",
                  f"contract.version={self.a.backlog_contract}", self.jsonl])
        if self.a.compare:
            return self.compare()
        rounds = []
        want = self.a.rows
        for r in range(1, self.a.runs + 1):
            log(f"round {r}/{self.a.runs}")
            res = {}
            if "producers" in want:
                p = self.row("producers", self.producers_round, r)
                res.update(p or {})
            if "project" in want:
                p = self.row("project", self.project_round, r)
                res.update(p or {})
            for kind, row in (("w2", "disorder"), ("gen", "disorder-gen")):
                if row not in want:
                    continue
                if kind not in self.disorder:
                    self.row(row, self.disorder_prepare, kind)
                if kind in self.disorder:
                    res.update(self.row(row, self.disorder_round, kind, r)
                               or {})
            if "identity" in want:
                if not self.ident:
                    self.row("identity", self.identity_prepare)
                if self.ident:
                    res.update(self.row("identity", self.identity_round, r)
                               or {})
            for rate in self.a.rates if "latency" in want else []:
                lat = self.row(f"latency {rate}/s", self.latency_once, rate,
                               self.a.latency_seconds)
                if lat:
                    res[f"lat{rate}"] = lat
            log("round %d: %s" % (r, json.dumps(
                {k: (round(v) if isinstance(v, float) else v)
                 for k, v in res.items()})))
            rounds.append(res)
        self.results["rounds"] = rounds
        if "memory" in want:
            self.results["memory"] = self.row("memory", self.memory)
        if "cost" in want:
            self.results["cost"] = self.row("cost", self.cost)
        self.report()
        return 1 if self.failed else 0

    # ---- the table --------------------------------------------------
    def disorder_report(self, rounds):
        """The disorder rows of the table, and the lines under it: each
        round's ratios, RSS and the projector's CPU per event."""
        rows, notes = [], []
        for kind, label in (("w2", "disorder"), ("gen", "disorder-gen")):
            label_row = label if kind == "gen" else "disorder w2"
            if label not in self.a.rows:
                continue
            ks = {o: f"{kind}_{o}" for o in ORDERS}
            got = [r for r in rounds if all(k in r for k in ks.values())]
            if not got:
                rows.append((label_row, "-", "-", "-", "-", "-"))
                continue

            def med(f):
                return statistics.median(f(r) for r in got)

            copy = {o: med(lambda r, o=o: r[ks[o]] / r[ks[o] + "_copy"])
                    for o in ORDERS}
            vs_in = {o: med(lambda r, o=o: r[ks[o]] / r[ks["inorder"]])
                     for o in ORDERS}
            rate = {o: med(lambda r, o=o: r[ks[o]]) for o in ORDERS}
            rss = {o: max(r[ks[o] + "_rss"] for r in got) / 1024
                   for o in ORDERS}
            ok = copy["inorder"] >= 0.7
            rows.append((f"{label_row}: in order", f"{rate['inorder']:,.0f}/s",
                         "COPY %s/s" % f"{med(lambda r: r[ks['inorder'] + '_copy']):,.0f}",
                         f"{copy['inorder']:.2f}x", ">= 0.7x COPY",
                         "met" if ok else "NOT MET"))
            for o, name, target in (("late", "10% late", 0.9),
                                    ("shuffled", "shuffled", 0.6)):
                rows.append((f"{label_row}: {name}", f"{rate[o]:,.0f}/s",
                             f"/ in order; {copy[o]:.2f}x COPY",
                             f"{vs_in[o]:.2f}x", f">= {target}x in order",
                             "met" if vs_in[o] >= target else "NOT MET"))
            rows.append((f"{label_row}: peak RSS",
                         f"{max(rss.values()):.1f} MiB",
                         ", ".join(f"{o} {rss[o]:.1f}" for o in ORDERS),
                         "-", "<= 64 MiB",
                         "met" if max(rss.values()) <= 64 else "NOT MET"))
            s = self.disorder[kind]["summary"]
            notes.append(
                f"{label_row}: {s['events']:,} events of {s['leads']:,} "
                f"leads, late in the late order {s['late_events']:,} "
                f"({s['late_events'] / s['events']:.1%}), in the shuffled "
                f"{s['shuffled_events']:,} (arriving after a later event "
                "of their lead); peak RSS the largest of the rounds"
                "; per round, late/in order " + ", ".join(
                    f"{r[ks['late']] / r[ks['inorder']]:.2f}" for r in got)
                + "; shuffled/in order " + ", ".join(
                    f"{r[ks['shuffled']] / r[ks['inorder']]:.2f}" for r in got)
                + "; in order/COPY " + ", ".join(
                    f"{r[ks['inorder']] / r[ks['inorder'] + '_copy']:.2f}"
                    for r in got) + "; projector CPU us/event (median) "
                + ", ".join(f"{o} {med(lambda r, o=o: r[ks[o] + '_cpu']):.1f}"
                            for o in ORDERS) + "; leads recomputed/batches "
                "(round 1) "
                + ", ".join(f"{o} {got[0][ks[o] + '_recomputed']}/"
                            f"{got[0][ks[o] + '_batches']}" for o in ORDERS))
        return rows, notes

    def report(self):
        rounds = self.results["rounds"]

        def med(key, f=None):
            vals = [f(r) if f else r[key] for r in rounds
                    if all(k in r for k in key.split("/"))]
            return statistics.median(vals) if vals else None

        def ratio(a, b):
            return med(f"{a}/{b}", lambda r: r[a] / r[b])

        def fmt_rate(v):
            return "-" if v is None else f"{v:,.0f}/s"

        def fmt_x(v):
            return "-" if v is None else f"{v:.2f}x"

        def verdict(ok):
            return "-" if ok is None else ("met" if ok else "NOT MET")

        rows = []
        r_emit = ratio("emit", "kcat")
        rows.append(("emit", fmt_rate(med("emit")),
                     "kcat -P " + fmt_rate(med("kcat")), fmt_x(r_emit),
                     ">= 0.7x", verdict(r_emit and r_emit >= 0.7)))
        r_emit_h = ratio("emit", "kcath")
        rows.append(("emit", fmt_rate(med("emit")),
                     "kcat -P + same headers " + fmt_rate(med("kcath")),
                     fmt_x(r_emit_h), "-", "-"))
        r_gen = ratio("gen", "kcat")
        rows.append(("gen --produce", fmt_rate(med("gen")),
                     "kcat -P " + fmt_rate(med("kcat")), fmt_x(r_gen), "-",
                     "-"))
        r_copy = ratio("project", "copy")
        rows.append(("project", fmt_rate(med("project")),
                     "COPY " + fmt_rate(med("copy")), fmt_x(r_copy),
                     ">= 0.5x", verdict(r_copy and r_copy >= 0.5)))
        r_pc = ratio("project", "percommit")
        rows.append(("project", fmt_rate(med("project")),
                     "per-event commit " + fmt_rate(med("percommit")),
                     fmt_x(r_pc), ">= 25x", verdict(r_pc and r_pc >= 25)))
        for rate in self.a.rates:
            key = f"lat{rate}"
            p50 = med(key, lambda r: r[key][0])
            p99 = med(key, lambda r: r[key][1])
            n = med(key, lambda r: r[key][2])
            ok = None if p99 is None or rate != 1000 else p99 <= 250
            rows.append((f"latency @{rate // 1000}k/s",
                         "-" if p50 is None else
                         f"p50 {p50:.0f} ms, p99 {p99:.0f} ms",
                         f"{n:.0f} leads sampled" if n else "-", "-",
                         "p99 <= 250 ms" if rate == 1000 else "-",
                         verdict(ok)))
        mem = self.results.get("memory")
        if mem:
            s, l = mem["small"], mem["large"]
            grow = l["rss_kib"] / s["rss_kib"]
            peak = max(s["runs_kib"] + l["runs_kib"]) / 1024
            rows.append(("memory (peak RSS)",
                         f"{l['rss_kib'] / 1024:.1f} MiB @ {l['events']:,}",
                         f"{s['rss_kib'] / 1024:.1f} MiB @ {s['events']:,}",
                         fmt_x(grow), "<= 64 MiB, flat",
                         verdict(peak <= 64 and grow <= 1.1)))
        else:
            rows.append(("memory (peak RSS)", "-", "-", "-",
                         "<= 64 MiB, flat", "-"))
        rows.append(("rebuild --from-db", fmt_rate(med("rebuild")), "-", "-",
                     "-", "-"))
        rss = med("rebuild_kafka_rss")
        rows.append(("rebuild --from-kafka", fmt_rate(med("rebuild_kafka")),
                     f"peak RSS {rss / 1024:.1f} MiB" if rss else "-", "-",
                     "-", "-"))
        cost = self.results.get("cost")
        if cost:
            rows.append(("cost (instr/event)",
                         f"{cost['decode_all'] + cost['apply_all']:,.0f}",
                         f"decode {cost['decode_all']:,.0f} + state machine "
                         f"{cost['apply_all']:,.0f}", "-", "-", "-"))
            rows.append(("cost, decode v2 / v1",
                         f"{cost['decode_all'] / cost['decode_all_v1']:.3f}x",
                         f"v2 {cost['decode_all']:,.0f}, v1 "
                         f"{cost['decode_all_v1']:,.0f}", "-", "<= 1.10x",
                         verdict(cost['decode_all'] <=
                                 1.10 * cost['decode_all_v1'])))
            rows.append(("cost, producer side",
                         f"{cost['parse_all'] + cost['encode_all']:,.0f}",
                         f"JSON parse {cost['parse_all']:,.0f} + encode "
                         f"{cost['encode_all']:,.0f}", "-", "-", "-"))
        else:
            rows.append(("cost (instr/event)", "-", "-", "-", "-", "-"))

        dis_rows, dis_notes = self.disorder_report(rounds)
        rows += dis_rows
        id_rows, id_notes = self.identity_report(rounds)
        rows += id_rows
        dis_notes += id_notes
        head = ("row", "leadflow", "baseline / detail", "ratio", "target",
                "")
        widths = [max(len(str(x[i])) for x in rows + [head])
                  for i in range(len(head))]
        print(f"leadflow bench: {self.n:,} events ({self.leads:,} leads), "
              f"{len(rounds)} round(s), medians; {os.cpu_count()} CPUs, "
              f"{platform.machine()}; per-event commit on "
              f"{min(self.n, self.a.percommit):,} events")
        line = "  ".join(h.ljust(w) for h, w in zip(head, widths))
        print(line.rstrip())
        print("  ".join("-" * w for w in widths))
        for r in rows:
            print("  ".join(str(c).ljust(w) for c, w in
                            zip(r, widths)).rstrip())
        if mem:
            print("memory, peak RSS of each run (MiB): " + "; ".join(
                f"{mem[k]['events']:,} events " + ", ".join(
                    f"{x / 1024:.1f}" for x in mem[k]["runs_kib"])
                for k in ("small", "large")))
        for n in dis_notes:
            print(n)
        for f in self.failed:
            print(f"FAILED {f}")
        if self.a.json:
            self.results["table"] = rows
            with open(self.a.json, "w") as f:
                json.dump(self.results, f, indent=1)


def main():
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(SRC, "build-release/bin"))
    ap.add_argument("--quick", action="store_true", default=quick)
    ap.add_argument("--runs", type=int)
    ap.add_argument("--events", type=int)
    ap.add_argument("--mem-runs", type=int, dest="mem_runs",
                    help="runs of each size for the memory row (default 3, "
                    "quick 1); the row shows the medians")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--compare", metavar="BIN_DIR",
                    help="A/B the project row: BIN_DIR's projector (before) "
                    "against --bin's (after)")
    ap.add_argument("--compare-arg", dest="compare_args", action="append",
                    default=[], help="an extra argument for the 'before' "
                    "projector only (repeatable): A/B a setting with one "
                    "build, e.g. --compare build-release/bin "
                    "--compare-arg=--writers=1")
    ap.add_argument("--compare-unset", dest="compare_unset", action="append",
                    default=[], metavar="VAR", help="an environment variable "
                    "the 'before' projector runs without (repeatable), e.g. "
                    "LEADFLOW_PSEUDONYM_KEY_FILE for a build older than the "
                    "pseudonym key")
    ap.add_argument("--backlog-contract", dest="backlog_contract", type=int,
                    choices=(1, 2), default=2, help="the wire contract the "
                    "backlog of the project row is produced in (default 2; "
                    "1 for an A/B against a build older than contract v2)")
    ap.add_argument("--project-arg", dest="project_args", action="append",
                    default=[], help="an extra argument for every "
                    "leadflow-project run (repeatable), e.g. "
                    "--project-arg=--batch=20000")
    ap.add_argument("--w2-leads", type=int, dest="w2_leads",
                    help="leads of the disorder row's workload "
                    "(bench/workload2.py; default 25000, ~154k events; "
                    "quick 300)")
    ap.add_argument("--pg-profile", metavar="DIR", dest="pg_profile",
                    help="measure where the disorder rows' time goes "
                    "(pg_stat_statements, auto_explain, perf) into DIR; "
                    "the rates of such a run are not the figures")
    ap.add_argument("--rows", default=",".join(ROWS),
                    help="the rows to measure, comma-separated, of: "
                    + ", ".join(ROWS) + " (default: all; project includes "
                    "rebuild)")
    a = ap.parse_args()
    a.rows = a.rows.split(",")
    for r in a.rows:
        if r not in ROWS:
            ap.error(f"--rows: unknown row {r!r} (one of {', '.join(ROWS)})")
    if a.quick:
        defaults = dict(runs=1, events=2000, percommit=100, latency_seconds=1,
                        cost_events=200, idle_exit=1, mem_runs=1,
                        w2_leads=300)
    else:
        defaults = dict(runs=5, events=100000, percommit=2000,
                        latency_seconds=10, cost_events=5000, idle_exit=2,
                        mem_runs=3, w2_leads=25000)
    for k, v in defaults.items():
        if getattr(a, k, None) is None:
            setattr(a, k, v)
    a.rates = [1000, 10000]
    if a.pg_profile:
        a.pg_profile = os.path.abspath(a.pg_profile)
        os.makedirs(a.pg_profile, exist_ok=True)
    # SIGTERM as SIGINT: unwind, so that the dev stack is stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    b = Bench(a)
    try:
        return b.main()
    finally:
        b.stop_stack()


if __name__ == "__main__":
    sys.exit(main())
