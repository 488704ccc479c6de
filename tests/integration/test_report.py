"""test_report.py: leadflow-report against the 13-lead fixture.

- The command line: --help, --version, usage errors (64), PostgreSQL
  unreachable or not migrated (69).
- CSV and JSON carry exactly the views' numbers (queried here straight from
  the views with psql), unfiltered and with --from/--channel (then equal to
  the *_filtered functions); a few are also checked against the fixture's
  hand-computed values (see test_views.py).
- Text shows the same numbers, formatted for a person.
- HTML: one self-contained page (no script, no external URL). Opened in
  headless Chromium (Debian's chromium) it renders: a screenshot is a PNG
  with the chart colours in it, and every number read back from the DOM
  Chromium dumps (data-section/key/key2/metric/value attributes) equals the
  views'. Skipped, saying so, only when /usr/bin/chromium is missing.

Usage: test_report.py BIN_DIR
"""

import csv
import decimal
import html
import html.parser
import io
import json
import os
import re
import stat
import struct
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lf_funnel_fixture import (BIN, fail, fixture_sql, migrate, psql,  # noqa: E402
                               setup)

CHROMIUM = "/usr/bin/chromium"
REPORT = os.path.join(BIN, "leadflow-report")
checks = 0


def expect(what, got, want):
    global checks
    checks += 1
    if got != want:
        fail("%s:\n  got  %r\n  want %r" % (what, got, want))


def report(*args, rc=0):
    p = subprocess.run([REPORT] + list(args), capture_output=True,
                       text=True)
    expect("leadflow-report %s: exit code (stderr: %s)" % (
        " ".join(args), p.stderr.strip()), p.returncode, rc)
    return p


# Metrics that depend on now(): checked within a tolerance, not exactly.
AGES = ("current_median_hours", "current_max_hours", "hours_overdue")


def view_numbers(src):
    """{(section, key, key2, metric): value} as leadflow-report should print
    them, read here from the views (src maps a view name to the relation to
    read: the view itself, or its _filtered function with arguments).
    None is SQL NULL; keys absent for a section are ""."""
    out = {}

    def put(section, sql, nkeys):
        for row in psql(sql):
            keys = [k if k is not None else "" for k in row[:nkeys]]
            keys += [""] * (2 - nkeys)
            for name, v in zip(metric_names[section], row[nkeys:]):
                out[(section, keys[0], keys[1], name)] = v

    metric_names = {
        "stage_counts": ["leads", "share"],
        "conversion": ["entered", "reached", "rate"],
        "time_in_stage": ["finished_visits", "median_hours", "p90_hours",
                          "mean_hours", "current_visits",
                          "current_median_hours", "current_max_hours"],
        "handoff_sla_by_owner": SLA,
        "handoff_sla_total": SLA,
        "recycle_reasons": ["recycles", "share"],
        "cohorts": ["leads", "reached", "share"],
        "won_revenue": ["amount_minor"],
        "source_performance": SOURCES,
        "source_total": SOURCES,
        "pipeline": PIPELINE,
        "flows": ["entered", "exited", "open_at_end"],
        "score_outcomes": SCORES,
        "close_reasons": ["closes", "share"],
        "open_sla_breaches": ["channel", "handed_off_at", "due_at",
                              "sla_hours", "hours_overdue"],
        "recycle_response": RECYCLE_RESPONSE,
        "roi_channel": ROI,
        "roi_campaign": ROI,
        "roi_month": ROI,
        "accounts_by_revenue": ["amount_minor", "won", "leads"],
        "accounts_by_leads": ACCOUNTS,
        "identity": IDENTITY,
    }
    put("stage_counts", "SELECT stage, leads, share FROM %s WHERE channel "
        "IS NULL" % src("stage_counts"), 1)
    put("conversion", "SELECT from_stage, to_stage, entered, reached, rate "
        "FROM %s WHERE capture_month IS NULL AND channel IS NULL" %
        src("conversion"), 2)
    put("time_in_stage", "SELECT stage, %s FROM %s" % (
        ", ".join(metric_names["time_in_stage"]), src("time_in_stage")), 1)
    put("handoff_sla_by_owner", "SELECT owner, %s FROM %s WHERE owner IS "
        "NOT NULL" % (", ".join(SLA), src("handoff_sla_by_owner")), 1)
    put("handoff_sla_total", "SELECT %s FROM %s WHERE owner IS NULL" % (
        ", ".join(SLA), src("handoff_sla_by_owner")), 0)
    put("recycle_reasons", "SELECT reason, recycles, share FROM %s WHERE "
        "breakdown = 'reason'" % src("recycle_reasons"), 1)
    put("cohorts", "SELECT capture_month, stage, leads, reached, share "
        "FROM %s" % src("cohorts"), 2)
    put("won_revenue", "SELECT r.key, r.value FROM %s s, "
        "jsonb_each_text(s.won_amount_minor) r WHERE s.channel IS NULL" %
        src("source_performance"), 1)
    put("source_performance", "SELECT channel, campaign, %s FROM %s WHERE "
        "channel IS NOT NULL" % (", ".join(SOURCES),
                                 src("source_performance")), 2)
    put("source_total", "SELECT %s FROM %s WHERE channel IS NULL" % (
        ", ".join(SOURCES), src("source_performance")), 0)
    # The money views: a pipeline row is keyed "owner / channel / campaign"
    # ("-" for none), the total rows per currency have no first key.
    put("pipeline", "SELECT CASE WHEN channel IS NOT NULL THEN concat_ws("
        "' / ', coalesce(owner, '-'), channel, coalesce(campaign, '-')) END, "
        "currency, %s FROM %s" % (", ".join(PIPELINE), src("pipeline")), 2)
    put("flows", "SELECT period_start, stage, entered, exited, open_at_end "
        "FROM %s" % src("flows"), 2)
    put("score_outcomes", "SELECT model, score_band, %s FROM %s" % (
        ", ".join(SCORES), src("score_outcomes")), 2)
    put("close_reasons", "SELECT kind, reason, closes, share FROM %s WHERE "
        "breakdown = 'reason'" % src("close_reasons"), 2)
    utc = "to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    put("open_sla_breaches", "SELECT lead_id, owner, channel, %s, %s, "
        "sla_hours, hours_overdue FROM %s LIMIT 50" % (
            utc % "handed_off_at", utc % "due_at", src("open_sla_breaches")),
        2)
    put("recycle_response", "SELECT reason, %s FROM %s" % (
        ", ".join(RECYCLE_RESPONSE), src("recycle_response")), 1)
    put("roi_channel", "SELECT channel, %s FROM %s WHERE grain IN "
        "('channel', 'total')" % (", ".join(ROI), src("roi")), 1)
    put("roi_campaign", "SELECT channel, campaign, %s FROM %s WHERE grain = "
        "'campaign'" % (", ".join(ROI), src("roi")), 2)
    put("roi_month", "SELECT month, channel || CASE WHEN campaign = '' THEN "
        "'' ELSE ' / ' || campaign END, %s FROM %s WHERE grain = 'month'" % (
            ", ".join(ROI), src("roi")), 2)
    # The fixture has fewer accounts than the report's top 10: all listed.
    # "won" of a currency's row: the account's leads won in it.
    acc = src("accounts")
    scope = (acc.replace("accounts_filtered", "leads_in_scope")
             if "_filtered" in acc else "funnel.leads")
    put("accounts_by_revenue", "SELECT a.account_id, r.key, r.value, "
        "(SELECT count(*) FROM %s l WHERE l.account_id = a.account_id AND "
        "l.currency = r.key AND l.won_at IS NOT NULL), a.leads FROM %s a, "
        "jsonb_each_text(a.won_amount_minor) r WHERE a.account_id IS NOT "
        "NULL" % (scope, acc), 2)
    put("accounts_by_leads", "SELECT account_id, %s FROM (SELECT a.*, "
        "s.reporting_currency AS currency FROM %s a, funnel_ref.settings s) "
        "x WHERE account_id IS NOT NULL" % (", ".join(ACCOUNTS),
                                           src("accounts")), 1)
    put("identity", "SELECT %s FROM %s" % (", ".join(IDENTITY),
                                           src("identity_summary")), 0)
    return out


SLA = ["handoffs", "accepted", "recycled", "disqualified", "still_open",
       "sla_met", "sla_breached", "sla_pending", "sla_met_rate",
       "acceptance_rate", "median_hours_to_accept"]
SOURCES = ["leads", "marketing_qualified", "handed_off", "sales_accepted",
           "sales_qualified", "won", "won_rate"]
PIPELINE = ["open_opportunities", "open_amount_minor", "won",
            "won_amount_minor"]
SCORES = ["threshold", "leads", "below_threshold", "marketing_qualified",
          "handed_off", "sales_accepted", "sales_qualified", "won", "nurture",
          "disqualified", "acceptance_rate", "won_rate"]
RECYCLE_RESPONSE = ["recycles", "requalified", "requalified_30d",
                    "requalified_90d", "requalified_30d_rate",
                    "requalified_90d_rate", "median_hours_to_requalify",
                    "won_later"]
ROI = ["currency", "cost_minor", "leads", "mqls", "sqls", "won",
       "won_revenue_minor", "cost_per_lead", "cost_per_mql", "cost_per_sql",
       "cac", "roi", "missing_rates"]
ACCOUNTS = ["leads", "marketing_qualified", "handed_off", "sales_accepted",
            "sales_qualified", "won", "currency",
            "won_revenue_reporting_minor",
            "avg_won_revenue_per_account_minor", "missing_rates"]
IDENTITY = ["merges", "voided_events", "erasures", "merge_anomalies",
            "void_anomalies"]


def same_numbers(what, got, want):
    """got == want, with the now()-relative ages within 0.1 h."""
    global checks
    checks += 1
    if set(got) != set(want):
        fail("%s: keys differ\n  only in report: %r\n  only in views: %r" % (
            what, sorted(set(got) - set(want))[:10],
            sorted(set(want) - set(got))[:10]))
    for k in sorted(want, key=str):
        g, w = got[k], want[k]
        if k[3] in AGES and g is not None and w is not None:
            if abs(float(g) - float(w)) > 0.1:
                fail("%s: %r = %r, views say %r" % (what, k, g, w))
        elif g != w:
            fail("%s: %r = %r, views say %r" % (what, k, g, w))


def csv_numbers(text):
    r = list(csv.reader(io.StringIO(text)))
    expect("CSV header", r[0], ["section", "key", "key2", "metric", "value"])
    return {tuple(row[:4]): (row[4] if row[4] != "" else None)
            for row in r[1:]}


def views(name):
    return "funnel." + name


pg = setup()
# Costs, so that ROI has numbers: EUR spend in January at a rate, and a
# GBP one without a rate (missing_rates).
psql("""INSERT INTO funnel_ref.campaign_costs VALUES
            ('web', 'spring', '2024-01-01', 100000, 'USD', NULL),
            ('events', 'expo', '2024-02-01', 40000, 'EUR', NULL),
            ('web', '', '2024-02-01', 5000, 'GBP', NULL);
        INSERT INTO funnel_ref.fx_rates VALUES ('EUR', '2024-02-01', 1.1),
                                               ('EUR', '2024-01-01', 1.05);""")
# Accounts for the fixture's leads (events of contract v2 would carry
# them): one account that won in two currencies (one lead each), one that
# won nothing, and leads without one.
psql("UPDATE funnel.leads SET account_id = CASE WHEN lead_id IN ('L01', "
     "'L02', 'L03', 'L04', 'L05', 'L06') THEN 'acme' WHEN lead_id IN ('L07', "
     "'L09', 'L10', 'L11') THEN 'globex' END")
expect("fixture: acme won in two currencies, globex nothing", psql(
    "SELECT account_id, won, won_amount_minor::text FROM funnel.accounts "
    "WHERE account_id IS NOT NULL ORDER BY 1"),
    [["acme", "2", '{"EUR": 500000, "USD": 250000}'], ["globex", "0", "{}"]])
# Identity rows as the projector would leave them (the fixture's leads
# stay as they are): L20 merged into L01 and L21 into L20 (both count for
# L01, web), L22 merged into L07 (web) and again into L04 (another target:
# an anomaly under L07); L03's voided event undoes an extra scored event of
# L03 (counts), L09's one names an event never received (an anomaly under
# L09, events); three people erased, one of them L22 (so its surviving
# lead L07 holds that erasure), two never captured.
psql("""
    INSERT INTO funnel.events (event_id, lead_id, type, occurred_at, source,
                               payload, topic, partition, "offset")
    VALUES ('L03-s', 'L03', 'scored', '2024-01-15T01:00:00Z', 'fixture',
            '{"score": 10, "threshold": 50, "model": "m1"}', 'lead-events',
            1, 1),
           ('L03-v', 'L03', 'voided', '2024-01-15T02:00:00Z', 'fixture',
            '{"voided_event_id": "L03-s", "reason": "test"}', 'lead-events',
            1, 2),
           ('L09-v', 'L09', 'voided', '2024-02-15T02:00:00Z', 'fixture',
            '{"voided_event_id": "nope", "reason": "test"}', 'lead-events',
            1, 3);
    INSERT INTO funnel.merges VALUES
        ('L20', 'L01', 'L01', '2024-01-06T00:00:00Z', 'L20-m'),
        ('L21', 'L20', 'L01', '2024-01-06T01:00:00Z', 'L21-m'),
        ('erased:22', 'L07', 'L07', '2024-02-11T00:00:00Z', 'L22-m');
    INSERT INTO funnel.anomalies (event_id, lead_id, kind, reason) VALUES
        ('L22-m2', 'L07', 'merge', 'merged into another target'),
        ('L09-v', 'L09', 'void', 'the voided event was not received');
    INSERT INTO funnel.erasures VALUES
        ('x1', 'erased:22', 'DSR-1', '2024-03-01T00:00:00Z'),
        ('x2', 'erased:30', 'DSR-2', '2024-03-02T00:00:00Z'),
        ('x3', 'erased:31', 'DSR-3', '2024-03-03T00:00:00Z');""")
want = view_numbers(views)

# ---- the command line -----------------------------------------------------
p = report("--help")
if "Usage: leadflow-report" not in p.stdout or "Exit codes" not in p.stdout:
    fail("--help: no usage or exit codes on stdout")
p = report("--version")
if not p.stdout.startswith("leadflow-report ") or "libpq" not in p.stdout:
    fail("--version: %r" % p.stdout)
for args, why in [(["--from", "2024-02-30"], "--from"),
                  (["--to", "yesterday"], "--to"),
                  (["--from", "2024-03-01", "--to", "2024-02-01"], "after"),
                  (["--format", "xml"], "--format"),
                  (["--channel", ""], "--channel"),
                  (["surplus"], "unexpected"), (["--bogus"], "")]:
    p = report(*args, rc=64)
    if why not in p.stderr or "Usage:" not in p.stderr:
        fail("%s: expected the reason (%s) and usage on stderr, got %r" % (
            args, why, p.stderr))
p = report("-d", "host=127.0.0.1 port=1 connect_timeout=2", rc=69)
# A conninfo libpq cannot parse is a setting to fix, not an outage: 78,
# named, the password it holds not repeated.
p = report("-d", "postgresql://u:s3cret@h/db?bogus=1", rc=78)
if "not a valid libpq conninfo" not in p.stderr or "s3cret" in p.stderr:
    fail("bad conninfo: expected it named, got %r" % p.stderr)
psql("CREATE DATABASE bare")
p = report("-d", "dbname=bare", rc=69)
if "--migrate-only" not in p.stderr:
    fail("no migrations: expected a hint, got %r" % p.stderr)

# ---- CSV and JSON: the views' numbers -------------------------------------
got = csv_numbers(report("--format", "csv").stdout)
same_numbers("CSV vs views", got, want)
# Tied to the hand-computed fixture values of test_views.py.
for k, v in [(("stage_counts", "nurture", "", "leads"), "3"),
             (("conversion", "captured", "marketing_qualified", "rate"),
              "0.6923"),
             (("time_in_stage", "handed_off", "", "p90_hours"), "31.80"),
             (("handoff_sla_total", "", "", "sla_met_rate"), "0.6667"),
             (("handoff_sla_by_owner", "ana", "", "median_hours_to_accept"),
              "30.00"),
             (("recycle_reasons", "no_budget", "", "recycles"), "2"),
             (("cohorts", "2024-02-01", "handed_off", "share"), "0.8571"),
             (("won_revenue", "EUR", "", "amount_minor"), "500000"),
             (("source_total", "", "", "won_rate"), "0.1538"),
             (("identity", "", "", "merges"), "3"),
             (("identity", "", "", "voided_events"), "1"),
             (("identity", "", "", "erasures"), "3"),
             (("identity", "", "", "merge_anomalies"), "1"),
             (("identity", "", "", "void_anomalies"), "1")]:
    expect("CSV %r" % (k,), got.get(k), v)

doc = json.loads(report("--format", "json").stdout)
expect("JSON filter", doc["filter"], {"from": None, "to": None,
                                      "channel": None})
keys = {"stage_counts": ("stage", None),
        "conversion": ("from_stage", "to_stage"),
        "time_in_stage": ("stage", None),
        "handoff_sla_by_owner": ("owner", None),
        "handoff_sla_total": (None, None),
        "recycle_reasons": ("reason", None),
        "cohorts": ("capture_month", "stage"),
        "won_revenue": ("currency", None),
        "source_performance": ("channel", "campaign"),
        "source_total": (None, None),
        "accounts_by_revenue": ("account_id", "currency"),
        "accounts_by_leads": ("account_id", None),
        "pipeline": ("source", "currency"),
        "flows": ("month", "stage"),
        "score_outcomes": ("model", "score_band"),
        "close_reasons": ("kind", "reason"),
        "open_sla_breaches": ("lead_id", "owner"),
        "recycle_response": ("reason", None),
        "roi_channel": ("channel", None),
        "roi_campaign": ("channel", "campaign"),
        "roi_month": ("month", "source"),
        "identity": (None, None)}
# Text among the metrics: the currency of the amounts.
TEXT_METRICS = ("currency", "channel", "handed_off_at", "due_at")
jnum = {}
for section, (k1, k2) in keys.items():
    items = doc[section]
    for obj in (items if isinstance(items, list) else [items]):
        for m, v in obj.items():
            if m in (k1, k2):
                continue
            if isinstance(v, bool) or (isinstance(v, str) and
                                       m not in TEXT_METRICS):
                fail("JSON %s.%s: expected a number, got %r" % (section, m,
                                                                v))
            jnum[(section, (obj[k1] if obj[k1] is not None else "")
                  if k1 else "",
                  str(obj[k2]) if k2 and obj[k2] is not None else "", m)] = v
checks += 1
if set(jnum) != set(want):
    fail("JSON keys differ from the views': %r" %
         sorted(set(jnum) ^ set(want))[:10])
for k, v in want.items():
    g = jnum[k]
    if v is None or g is None:
        ok = v is None and g is None
    elif k[3] in AGES:
        ok = abs(float(v) - g) <= 0.1
    elif k[3] in TEXT_METRICS:
        ok = g == v
    else:
        # Integers stay JSON integers; decimals are the same number.
        ok = (g == int(v) and isinstance(g, int)) if "." not in v else (
            float(v) == g)
    if not ok:
        fail("JSON %r = %r, views say %r" % (k, g, v))

# Filtered: web leads captured from 2024-02-01 on (L07 L08 L10) = the
# *_filtered functions with those arguments.
fwant = view_numbers(lambda n: "funnel.%s_filtered('2024-02-01', NULL, "
                     "'web')" % n)
fgot = csv_numbers(report("--format", "csv", "--from", "2024-02-01",
                          "--channel", "web").stdout)
same_numbers("CSV --from 2024-02-01 --channel web vs *_filtered", fgot,
             fwant)
expect("filtered leads", fgot[("source_total", "", "", "leads")], "3")
# Of the identity rows, L07's: L22's merge, its erasure and its anomaly.
expect("filtered identity",
       [fgot[("identity", "", "", m)] for m in IDENTITY],
       ["1", "0", "1", "1", "0"])
fdoc = json.loads(report("--format", "json", "--from", "2024-02-01",
                         "--channel", "web").stdout)
expect("JSON filter echoed", fdoc["filter"], {"from": "2024-02-01",
                                              "to": None,
                                              "channel": "web"})
# --to is inclusive: January 31 brings L12 (captured 23:30 UTC).
expect("--to 2024-01-31 leads", csv_numbers(report(
    "--format", "csv", "--to", "2024-01-31").stdout)[
        ("source_total", "", "", "leads")], "6")

# ---- text: the same numbers for a person ----------------------------------
text = report().stdout
lines = [line.split() for line in text.splitlines()]
for needle in (["captured", "2", "15.4%"], ["nurture", "3", "23.1%"],
               ["total", "13"],
               ["captured", "->", "marketing_qualified", "13", "9", "69.2%"],
               ["sales_qualified", "->", "won", "4", "2", "50.0%"],
               ["handed_off", "8", "22.00", "31.80", "21.50", "2"],
               ["ana", "6", "3", "3", "2", "1", "60.0%", "75.0%", "30.00"],
               ["all", "owners", "10", "6", "6", "3", "1", "66.7%", "75.0%",
                "27.00"],
               ["no_budget", "2", "50.0%"],
               ["won", "2", "of", "13", "leads", "(15.4%)"],
               ["EUR", "5,000.00"], ["USD", "2,500.00"]):
    expect("text has line %r" % " ".join(needle), needle in lines, True)
expect("text: identity numbers under their names",
       lines[lines.index(IDENTITY) + 1], ["3", "1", "3", "1", "1"])
for row in psql("SELECT account_id, %s, won_revenue_reporting_minor FROM "
                "funnel.accounts WHERE account_id IS NOT NULL" %
                ", ".join(ACCOUNTS[:6])):
    rev = (["{:,.2f}".format(int(row[7]) / 100)] if row[7] is not None
           else ["no", "rate"])
    expect("text has the accounts line of %s" % row[0],
           row[:7] + rev in lines, True)
(avg,), = psql("SELECT DISTINCT avg_won_revenue_per_account_minor FROM "
               "funnel.accounts")
expect("text has the average revenue per account",
       ["won", "revenue", "in", "USD;", "average", "per", "account", "that",
        "won:", "{:,.2f}".format(int(avg) / 100)] in lines, True)
for row in psql("SELECT a.account_id, r.key, r.value, (SELECT count(*) FROM "
                "funnel.leads l WHERE l.account_id = a.account_id AND "
                "l.currency = r.key AND l.won_at IS NOT NULL), a.leads FROM "
                "funnel.accounts a, jsonb_each_text(a.won_amount_minor) r "
                "WHERE a.account_id IS NOT NULL"):
    money = "{:,.2f}".format(int(row[2]) / 100)
    expect("text has the revenue line of %s %s" % (row[0], row[1]),
           [row[0], row[1], money, row[3], row[4]] in lines, True)

# ---- HTML -----------------------------------------------------------------


class Numbers(html.parser.HTMLParser):
    """Every element with data-section/data-metric: its key and value."""

    def __init__(self):
        super().__init__()
        self.numbers = {}
        self.dupes = []
        self.tags = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        a = dict(attrs)
        if "data-section" in a and "data-metric" in a:
            k = (a["data-section"], a.get("data-key", ""),
                 a.get("data-key2", ""), a["data-metric"])
            v = a.get("data-value", "")
            if k in self.numbers and self.numbers[k] != v:
                self.dupes.append(k)
            self.numbers[k] = v if v != "" else None


tmp = tempfile.mkdtemp(prefix="leadflow-report.")
page = os.path.join(tmp, "report.html")
report("--format", "csv", "--html", page)
with open(page, encoding="utf-8") as f:
    source = f.read()
for bad in ("<script", "<link", "<img", "<iframe", " src=", "url(",
            "@import", "https://"):
    expect("page contains %r" % bad, bad in source.lower(), False)
expect("http:// only as the SVG namespace",
       source.replace('xmlns="http://www.w3.org/2000/svg"', "").count(
           "http://"), 0)
# Every percentage the page shows is its data-value (the view's 4-place
# fraction) times 100, rounded half up to one place from its decimal digits:
# 0.0515 is 5.2%, never a double's 5.1%.
shown_pcts = re.findall(r'data-value="(-?[0-9]+\.[0-9]+)"[^>]*>(-?[0-9.]+)%<',
                        source)
expect("the page shows percentages", len(shown_pcts) > 10, True)
for value, shown in shown_pcts:
    pct = (decimal.Decimal(value) * 100).quantize(
        decimal.Decimal("0.1"), rounding=decimal.ROUND_HALF_UP)
    expect("percentage of %s" % value, shown, str(pct))
parsed = Numbers()
parsed.feed(source)
# The score chart draws one model: the page names it.
# --html through a symbolic link writes the file it names (the link stays,
# the file keeps its mode); into a FIFO it writes, and the FIFO stays one.


def same_page(text):
    """Is text the page above, but for its time of writing?"""
    def at(t):
        return re.sub(r'(<span id="generated-at">)[^<]*', r"\1", t)
    return at(text) == at(source)


target = os.path.join(tmp, "target.html")
link = os.path.join(tmp, "link.html")
with open(target, "w") as f:
    f.write("old")
os.chmod(target, 0o640)
os.symlink(target, link)
report("--format", "csv", "--html", link)
expect("--html LINK: the link is still a link", os.path.islink(link), True)
with open(target, encoding="utf-8") as f:
    expect("--html LINK: the file it names holds the page",
           same_page(f.read()), True)
expect("--html LINK: the file keeps its mode",
       oct(os.stat(target).st_mode & 0o7777), oct(0o640))
fifo = os.path.join(tmp, "page.fifo")
os.mkfifo(fifo)
reader = subprocess.Popen(["cat", fifo], stdout=subprocess.PIPE)
report("--format", "csv", "--html", fifo)
expect("--html FIFO: the reader gets the page",
       same_page(reader.communicate(timeout=30)[0].decode("utf-8")), True)
expect("--html FIFO: still a FIFO", stat.S_ISFIFO(os.stat(fifo).st_mode),
       True)
# A failed write says so, in every format (JSON said "out of memory").
for fmt in ("text", "csv", "json"):
    with open("/dev/full", "w") as full:
        p = subprocess.run([REPORT, "--format", fmt], stdout=full,
                           stderr=subprocess.PIPE, text=True)
    expect("--format %s > /dev/full: exit code and message" % fmt,
           (p.returncode, "stdout: write failed: No space left on device"
            in p.stderr), (74, True))

(first_model,), = psql("SELECT model FROM funnel.score_outcomes WHERE model "
                       "IS NOT NULL ORDER BY model LIMIT 1")
expect("the score chart names its model",
       "The chart shows model <code>%s</code>" % html.escape(first_model)
       in source, True)

# The page shows, for each chart, these numbers at least.
required = set()
for (s, k1, k2, m) in want:
    if (s == "stage_counts" and m == "leads") or s == "conversion" and m in (
            "entered", "rate") or (s == "time_in_stage" and m in (
                "median_hours", "p90_hours", "mean_hours")) or (
            s == "cohorts" and m == "share") or (
            s in ("handoff_sla_by_owner", "handoff_sla_total") and
            m == "sla_met_rate") or (s == "recycle_reasons" and
                                     m == "recycles") or s in (
            "won_revenue", "accounts_by_revenue", "accounts_by_leads",
            "pipeline", "flows", "score_outcomes", "close_reasons",
            "open_sla_breaches", "recycle_response", "roi_channel",
            "roi_campaign", "roi_month", "identity"):
        required.add((s, k1, k2, m))


def check_page_numbers(what, numbers):
    global checks
    checks += 1
    missing = required - set(numbers)
    if missing:
        fail("%s: numbers missing from the page: %r" % (what,
                                                         sorted(missing)))
    for k, v in numbers.items():
        if k not in want:
            fail("%s: %r is on the page but in no view" % (what, k))
        if k[3] in AGES and v is not None and want[k] is not None:
            # now()-relative: the page was made a moment apart
            if abs(float(v) - float(want[k])) > 0.1:
                fail("%s: %r shows %r, the views say %r" % (what, k, v,
                                                            want[k]))
        elif v != want[k]:
            fail("%s: %r shows %r, the views say %r" % (what, k, v, want[k]))
    return len(numbers)


n_file = check_page_numbers("HTML file", parsed.numbers)
expect("HTML: one value per number", parsed.dupes, [])
expect("HTML: inline SVG charts", "svg" in parsed.tags and "rect" in
       parsed.tags, True)


def png_pixels(path):
    """(width, height, rows of RGB(A) bytes) of an 8-bit RGB/RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail("screenshot is not a PNG")
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype = ihdr[0], ihdr[1], ihdr[2], ihdr[3]
    if depth != 8 or ctype not in (2, 6):
        return w, h, None
    bpp = 3 if ctype == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), w * bpp, [], None
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(
            raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        up = prev or bytearray(stride)
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            c = up[i - bpp] if i >= bpp else 0
            b = up[i]
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        rows.append((bpp, line))
        prev = line
    return w, h, rows


# ---- hostile strings -----------------------------------------------------
# Owner, campaign and reason text come from event producers. One more lead
# (in another database, so the numbers above stay the fixture's) with
# markup, quotes, a comma, a newline and an escape sequence: CSV keeps them
# byte for byte, the page shows them as text (no element is injected), the
# terminal gets no escape sequence.
HOSTILE = '<b>x</b> & "y" \'z\', \x1b[31mred'
psql("CREATE DATABASE hostile")
migrate("hostile")
psql(fixture_sql([("L14", "web", 'a,"b"\nc', "2024-03-01T00:00:00", [
    ("captured", 0, {}),
    ("handed_off", 1, {"owner": HOSTILE, "sla_hours": 24}),
    ("nurture", 2, {"reason": "other", "note": HOSTILE})])]), db="hostile")
hgot = csv_numbers(report("-d", "dbname=hostile", "--format", "csv").stdout)
expect("CSV hostile owner", hgot.get(("handoff_sla_by_owner", HOSTILE, "",
                                      "handoffs")), "1")
expect("CSV hostile campaign", hgot.get(("source_performance", "web",
                                         'a,"b"\nc', "leads")), "1")
hdoc = json.loads(report("-d", "dbname=hostile", "--format",
                         "json").stdout)
expect("JSON hostile owner", hdoc["handoff_sla_by_owner"][0]["owner"],
       HOSTILE)
htext = report("-d", "dbname=hostile").stdout
expect("text: no escape character", "\x1b" in htext, False)
# (28 characters, cut to 24 in the owner column: 23 and an ellipsis)
expect("text: owner shown cut, ESC as ?", "'z', ?[3\u2026 " in htext, True)
# C1 controls too: U+009B is a CSI to some terminals, U+0085 a line break.
psql("CREATE DATABASE hostile_c1")
migrate("hostile_c1")
psql(fixture_sql([("L15", "web", None, "2024-03-01T00:00:00", [
    ("captured", 0, {}),
    ("handed_off", 1, {"owner": "o\u009b31mX\u0085y", "sla_hours": 24})])]),
    db="hostile_c1")
c1text = report("-d", "dbname=hostile_c1").stdout
expect("text: no C1 control", any(ch in c1text for ch in "\u009b\u0085"),
       False)
expect("text: C1 controls as ?", "o?31mX?y" in c1text, True)
def mql_db(db, leads, mqls):
    """A database of @leads captured leads, the first @mqls of them
    marketing qualified."""
    psql("CREATE DATABASE " + db)
    migrate(db)
    psql(fixture_sql([("%s-%04d" % (db, i), "web", None,
                       "2024-03-01T00:00:00",
                       [("captured", 0, {})] +
                       ([("marketing_qualified", 1, {})] if i < mqls else []))
                      for i in range(leads)]), db=db)


# A share on a rounding boundary: 103 of 2,000 leads in marketing_qualified
# is 0.0515, which a double makes 5.1499...%: shown 5.2%, as the CSV's
# 0.0515 rounds.
mql_db("pct", 2000, 103)
ptext = report("-d", "dbname=pct").stdout
expect("text: 103 of 2000 as 5.2%", bool(re.search(
    r"marketing_qualified +103 +5\.2%", ptext)), True)
# A rate made from the view's 4-place fraction would round twice: 27 of
# 277 is 9.747 %, the views' 0.0975, and must show 9.7 %, not 9.8 %, in
# the text and on the page, while CSV and JSON keep the views' 0.0975.
mql_db("pct2", 277, 27)
qtext = report("-d", "dbname=pct2").stdout
expect("text: stage share 27 of 277 as 9.7%", bool(re.search(
    r"marketing_qualified +27 +9\.7%", qtext)), True)
expect("text: conversion 27 of 277 as 9.7%", bool(re.search(
    r"captured +-> marketing_qualified +277 +27 +9\.7%", qtext)), True)
expect("text: never the twice-rounded 9.8%", "9.8%" in qtext, False)
qpage = os.path.join(tmp, "pct2.html")
report("-d", "dbname=pct2", "--html", qpage)
with open(qpage, encoding="utf-8") as f:
    qsource = f.read()
expect("HTML: the view's 0.0975 shown as 9.7%", bool(re.search(
    r'data-metric="rate" data-value="0\.0975">9\.7%', qsource)), True)
expect("HTML: never the twice-rounded 9.8%", "9.8%" in qsource, False)
qcsv = report("-d", "dbname=pct2", "--format", "csv").stdout
# The report reads db only: another -X (a typo) is said to be ignored.
qx = report("-d", "dbname=pct2", "-X", "bogus.key=1", "--format", "csv")
expect("-X bogus.key: a warning names it", bool(re.search(
    r"does not read: ignored.*key=bogus\.key", qx.stderr)), True)
def timeless(csv_text):
    return [ln for ln in csv_text.splitlines()
            if not any(",%s," % a in ln for a in AGES)]


expect("-X bogus.key: the same report", timeless(qx.stdout), timeless(qcsv))
# The warnings never print a secret, nor break a log line: a -X whose key
# is a URL with a password, a password in -d, a key with a line break.
qx = report("-d", "dbname=pct2 password=hunter3", "-X",
            "postgresql://lf:hunter2@db.example/leads?sslmode=require",
            "-X", "bad key\nlevel=x=1", "--format", "csv")
expect("-d with a password: said to be a secret on the command line",
       bool(re.search(r"a secret on the command line.*~/\.pgpass.* key=db",
                      qx.stderr)), True)
expect("-X URL key: said to be ignored", "key is no setting name" in
       qx.stderr, True)
expect("no password in the warnings", ("hunter2" in qx.stderr,
                                       "hunter3" in qx.stderr), (False, False))
expect("every stderr line a whole log line", [
    ln for ln in qx.stderr.splitlines() if not ln.startswith("ts=")], [])
expect("CSV keeps the view's fraction",
       "conversion,captured,marketing_qualified,rate,0.0975" in qcsv, True)
hpage = os.path.join(tmp, "hostile.html")
report("-d", "dbname=hostile", "--html", hpage)
hp = Numbers()
with open(hpage, encoding="utf-8") as f:
    hp.feed(f.read())
expect("HTML: no injected element", "b" in hp.tags, False)
expect("HTML: hostile owner as a key (control character as U+FFFD)",
       hp.numbers.get(("handoff_sla_by_owner",
                       HOSTILE.replace("\x1b", "\ufffd"), "",
                       "sla_met_rate")), "1.0000")

if not os.access(CHROMIUM, os.X_OK):
    print("test_report: %d checks passed" % checks)
    # `make test` installs chromium: its absence is a broken setup, not a
    # reason to pass without rendering the page.
    fail("%s is missing (apt-get install chromium): the page could not be "
         "rendered in a browser" % CHROMIUM)

chrome = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
          "--disable-background-networking", "--disable-component-update",
          "--disable-sync", "--no-first-run", "--hide-scrollbars",
          "--user-data-dir=" + tempfile.mkdtemp(dir=tmp),
          "--window-size=1000,2600"]
shot = os.path.join(tmp, "report.png")
p = subprocess.run(chrome + ["--screenshot=" + shot, "file://" + page],
                   capture_output=True, text=True, timeout=180)
if p.returncode or not os.path.exists(shot):
    fail("chromium --screenshot failed (%d): %s" % (p.returncode,
                                                    p.stderr[-2000:]))
checks += 1
w, h, rows = png_pixels(shot)
expect("screenshot size", (w, h), (1000, 2600))
if os.path.getsize(shot) < 20000:
    fail("screenshot is suspiciously small (%d bytes): a blank page?" %
         os.path.getsize(shot))
if rows is not None:
    # The bars are #2563eb: a rendered chart has thousands of such pixels.
    blue = sum(1 for bpp, line in rows for i in range(0, len(line), bpp)
               if abs(line[i] - 0x25) < 8 and abs(line[i + 1] - 0x63) < 8
               and abs(line[i + 2] - 0xeb) < 8)
    if blue < 2000:
        fail("screenshot shows only %d bar-coloured pixels" % blue)

p = subprocess.run(chrome + ["--dump-dom", "file://" + page],
                   capture_output=True, text=True, timeout=180)
if p.returncode or "<svg" not in p.stdout:
    fail("chromium --dump-dom failed (%d): %s" % (p.returncode,
                                                  p.stderr[-2000:]))
dom = Numbers()
dom.feed(p.stdout)
n_dom = check_page_numbers("DOM from Chromium", dom.numbers)
expect("DOM numbers = page numbers", dom.numbers, parsed.numbers)
print("test_report: %d checks passed (%d numbers read back from the DOM)" %
      (checks, n_dom))
