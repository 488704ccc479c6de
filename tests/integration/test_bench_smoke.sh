#!/usr/bin/env bash
# test_bench_smoke.sh BIN_DIR: the benchmark harness (bench/run.py) in its
# quick mode, so that `make bench` never rots: every row must be measured
# (targets are not checked here: tiny sizes on a shared machine say nothing
# about them). About 75 s (the identity row 14 s of it).
set -euo pipefail
BIN=$(cd "${1:?usage: test_bench_smoke.sh BIN_DIR}" && pwd)
SRC=${LEADFLOW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
OUT=$(mktemp /tmp/leadflow-bench-smoke.XXXXXX)
trap 'rm -f "$OUT" "$OUT.json"' EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

start=$(date +%s)
BENCH_QUICK=1 /usr/bin/python3 "$SRC/bench/run.py" --bin "$BIN" \
    --json "$OUT.json" >"$OUT" || {
    cat "$OUT"
    fail "bench/run.py --quick exited $?"
}
cat "$OUT"
for row in "emit" "gen --produce" "project" "latency @1k/s" "latency @10k/s" \
    "memory (peak RSS)" "rebuild --from-db" "cost (instr/event)" \
    "disorder w2: shuffled" "disorder-gen: shuffled" \
    "identity: 2% merges" "identity: the key"; do
    line=$(grep -F -- "$row" "$OUT" | head -n 1) ||
        fail "no \"$row\" row in the table"
    # A measured row has a number in its leadflow column.
    [[ ${line:${#row}} =~ [0-9] ]] || fail "row \"$row\" was not measured"
done
/usr/bin/python3 -c 'import json, sys; r = json.load(open(sys.argv[1]));
assert r["rounds"] and r["memory"] and r["cost"], "results incomplete"' \
    "$OUT.json" || fail "the JSON results are incomplete"
echo "ok   bench smoke run in $(($(date +%s) - start)) s"
