#!/usr/bin/env bash
# test_group.sh BIN_DIR: a group of leadflow-project instances on a
# 12-partition topic while events are produced. Scenarios:
#   rolling  three instances, restarted one at a time (SIGTERM, then
#            SIGKILL, alternately) while the stream goes on
#   scale    one instance, then three, then one again, during the stream
# Each scenario ends with the funnel tables equal to a clean run (the same
# topic projected into a fresh database; lf_checksums) and with the
# committed batches of every instance, from their logs (-v -v: one debug
# line msg=committed writer=N partition=P from=X to=Y per partition of a
# committed batch), chaining per partition: the first starts at 0, each
# starts where the previous ended, the last ends at funnel.offsets. An
# overlap is two writes of the same partition's batch (two instances, or
# one instance twice, after a rebalance); a gap is a range nobody wrote.
# Longer versions (more restarts, a bigger stream) are the `group` and
# `scale` scenarios of tests/chaos/chaos.sh --long.
#
# Knobs: LF_GROUP_LEADS (stream size), LF_GROUP_RESTARTS (rolling restarts).
set -euo pipefail
BIN=$(cd "${1:?usage: test_group.sh BIN_DIR}" && pwd)
. "$(dirname "$0")/lib.sh"
# shellcheck source=../chaos/group_lib.sh
. "$(dirname "$0")/../chaos/group_lib.sh"

LEADS=${LF_GROUP_LEADS:-1000}
RESTARTS=${LF_GROUP_RESTARTS:-3}

lf_stack_up
echo "stack: brokers=$LEADFLOW_BROKERS pg=$PGHOST:$PGPORT"
"$BIN/leadflow-gen" --leads "$LEADS" --seed 41 --anomalies 0.1 \
    --duplicates 0.05 --late 0.1 --shuffle 20 -q -o "$LF_TMP/work.jsonl" ||
    fail "leadflow-gen failed"
grp_init "$LF_TMP/work.jsonl" "$LF_TMP"

grp_rolling rolling "$RESTARTS"
grp_scale scale
echo "PASS test_group"
