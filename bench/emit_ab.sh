#!/usr/bin/env bash
# emit_ab.sh OLD_BIN_DIR NEW_BIN_DIR [EVENTS] [ROUNDS]: leadflow-emit of two
# builds, alternating on the same JSON lines against one devbroker (a new
# topic per run), wall time per run and the median of the per-round
# new/old ratios. For A/B-ing a producer change (BENCHMARKS.md); make bench
# gives the table against kcat.
set -euo pipefail
OLD=$(cd "${1:?usage: emit_ab.sh OLD_BIN_DIR NEW_BIN_DIR [EVENTS] [ROUNDS]}" && pwd)
NEW=$(cd "${2:?usage: emit_ab.sh OLD_BIN_DIR NEW_BIN_DIR [EVENTS] [ROUNDS]}" && pwd)
N=${3:-100000} ROUNDS=${4:-5}
SRC=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/leadflow-emit-ab.XXXXXX)
eval "$(LEADFLOW_BIN=$NEW "$SRC/tools/devstack.sh" start "$WORK/stack")"
trap '"$SRC/tools/devstack.sh" stop "$WORK/stack" >/dev/null 2>&1; rm -rf "$WORK"' EXIT
"$NEW/leadflow-gen" --leads $((N / 4)) --seed 7 -q | head -n "$N" >"$WORK/in.jsonl"
n=$(wc -l <"$WORK/in.jsonl")
ratios=()
for r in $(seq "$ROUNDS"); do
    declare -A rate
    for which in old new; do
        bin=$OLD
        [ $which = new ] && bin=$NEW
        s=$(date +%s%N)
        "$bin/leadflow-emit" -qq -t "ab-$which-$r" "$WORK/in.jsonl"
        e=$(date +%s%N)
        rate[$which]=$((n * 1000000000 / (e - s)))
    done
    ratio=$(awk -v a="${rate[new]}" -v b="${rate[old]}" 'BEGIN{printf "%.2f", a / b}')
    ratios+=("$ratio")
    echo "round $r: old ${rate[old]}/s, new ${rate[new]}/s, new/old ${ratio}x"
done
printf '%s\n' "${ratios[@]}" | sort -n |
    awk '{a[NR] = $1} END {m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2;
         printf "median new/old over %d rounds of %d events: %.2fx\n", NR, '"$n"', m}'
