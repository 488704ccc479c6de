#!/usr/bin/env bash
# rss_timeline.sh [SLICES [PROJECT_ARG...]]: where leadflow-project's memory
# goes over a long stream, for the memory row of BENCHMARKS.md.
#
# Starts its own dev stack, runs leadflow-project (build-release/bin, or
# $LEADFLOW_BIN) and produces SLICES (default 10) slices of ~100k events
# with leadflow-gen --produce while it runs, a slice waiting while the
# projector is more than 150k events behind (the devbroker's retention).
# Every 100 ms it samples VmRSS and VmHWM (/proc/PID/status) and the events
# committed so far (funnel.offsets). Prints one line: the highest RSS (MiB)
# seen during each 100k committed events, in order, then the final VmHWM.
# A projector whose memory grows with the stream shows a rising line; one
# that is flat shows noise around a level. Extra arguments go to
# leadflow-project (e.g. -X queued.min.messages=5000).
#
# Exit status: 0 done, 1 a step failed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=${LEADFLOW_BIN:-$HERE/build-release/bin}
SLICES=${1:-10}
shift || true
WORK=$(mktemp -d /tmp/leadflow-rss.XXXXXX)
STACK=$WORK/stack

eval "$(LEADFLOW_BIN=$BIN LEADFLOW_BROKER_ARGS='--topic mem:16' \
    "$HERE/tools/devstack.sh" start "$STACK")"
trap '"$HERE/tools/devstack.sh" stop "$STACK" >/dev/null 2>&1; rm -rf "$WORK"' EXIT
createdb rss
committed() {
    PGDATABASE=rss psql -XAtc \
        'SELECT coalesce(sum(next_offset), 0) FROM funnel.offsets' 2>/dev/null ||
        echo 0
}

PGDATABASE=rss "$BIN/leadflow-project" -b "$LEADFLOW_BROKERS" -t mem -g rss \
    --idle-exit 4 -q "$@" 2>"$WORK/project.log" &
pid=$!
(while kill -0 "$pid" 2>/dev/null; do
    mem=$(awk '/^VmHWM|^VmRSS/ {printf "%s ", $2}' "/proc/$pid/status" 2>/dev/null) || break
    echo "$mem$(committed)"
    sleep 0.1
done) >"$WORK/samples" &
sampler=$!

produced=0
for i in $(seq 0 $((SLICES - 1))); do
    while [ $((produced - $(committed))) -gt 150000 ]; do sleep 0.2; done
    out=$("$BIN/leadflow-gen" --leads 25510 --seed $((11 + i)) --prefix "M$i-" \
        --produce -b "$LEADFLOW_BROKERS" -t mem -q 2>&1)
    n=$(sed -n 's/.*delivered=\([0-9]*\).*/\1/p' <<<"$out")
    [ -n "$n" ] || { echo "rss_timeline: leadflow-gen failed: $out" >&2; exit 1; }
    produced=$((produced + n))
done
wait "$pid" || { echo "rss_timeline: leadflow-project failed, see:" >&2
    cat "$WORK/project.log" >&2; exit 1; }
wait "$sampler" || true
# samples: VmHWM VmRSS committed (kB, kB, events)
awk -v produced="$produced" '
    NF == 3 { b = int($3 / 100000); if ($2 > m[b]) m[b] = $2; if ($1 > hwm) hwm = $1 }
    END {
        printf "events %d; highest RSS per 100k events (MiB):", produced
        for (b = 0; b <= int(produced / 100000); b++)
            if (b in m) printf " %.1f", m[b] / 1024
        printf "; VmHWM %.1f MiB\n", hwm / 1024
    }' "$WORK/samples"
