#!/usr/bin/env bash
# run.sh FUZZ_BIN_DIR [SECONDS]: run each libFuzzer target (`make fuzz`) for
# SECONDS (default 60), one after the other, starting from the committed
# seed corpus (tests/fuzz/corpus/<target>) plus what earlier runs found
# (FUZZ_BIN_DIR/corpus-<target>, kept between runs, never committed).
# Prints one line per target: runs, coverage, corpus, crashes. A crash,
# leak, timeout or sanitizer report leaves its input in
# FUZZ_BIN_DIR/artifacts/ and makes this exit 1: reproduce it with
#   FUZZ_BIN_DIR/fuzz_<target> FUZZ_BIN_DIR/artifacts/<file>
# then fix it and copy the input to tests/fuzz/regress/<target>/, which
# `make test` replays.
set -euo pipefail
DIR=$(cd "${1:?usage: run.sh FUZZ_BIN_DIR [SECONDS]}" && pwd)
SECS=${2:-60}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$DIR/artifacts"
rc=0
for t in codec json definition; do
    work=$DIR/corpus-$t
    mkdir -p "$work"
    extra=()
    [ "$t" = json ] && extra=(-dict="$HERE/json.dict" -max_len=16384)
    [ "$t" = codec ] && extra=(-max_len=4096)
    [ "$t" = definition ] && extra=(-dict="$HERE/json.dict" -max_len=8192)
    before=$(find "$DIR/artifacts" -type f | wc -l)
    echo "fuzz: $t for ${SECS}s"
    set +e
    "$DIR/fuzz_$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$DIR/artifacts/$t-" \
        "${extra[@]}" "$work" "$HERE/corpus/$t" "$HERE/regress/$t" \
        >"$DIR/$t.log" 2>&1
    status=$?
    set -e
    after=$(find "$DIR/artifacts" -type f | wc -l)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$DIR/$t.log")
    cov=$(grep -o 'cov: [0-9]*' "$DIR/$t.log" | tail -n 1 | cut -d' ' -f2)
    echo "fuzz: $t: $runs runs in ${SECS}s, $cov edges," \
        "corpus $(find "$work" -type f | wc -l) files," \
        "$((after - before)) crashes (exit $status)"
    if [ "$status" != 0 ] || [ "$after" != "$before" ]; then
        grep -E "ERROR|SUMMARY|runtime error|==[0-9]+==" "$DIR/$t.log" |
            head -n 20 >&2 || true
        echo "fuzz: $t failed; inputs in $DIR/artifacts, log $DIR/$t.log" >&2
        rc=1
    fi
done
exit $rc
