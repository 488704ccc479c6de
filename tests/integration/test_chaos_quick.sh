#!/usr/bin/env bash
# test_chaos_quick.sh BIN_DIR: the quick set of tests/chaos/chaos.sh
# under `make test`: the projector SIGKILLed 10 times, PostgreSQL
# crashed and refusing connections, broker faults, two instances with one
# killed, emit killed mid-file and re-sent, a write error that must block.
# Each scenario on its own dev stack, two at a time; about 2-3 minutes. The
# long set is `make chaos`.
set -euo pipefail
BIN=$(cd "${1:?usage: test_chaos_quick.sh BIN_DIR}" && pwd)
SRC=${LEADFLOW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
exec bash "$SRC/tests/chaos/chaos.sh" --quick --bin "$BIN"
