#!/usr/bin/env bash
# The long crash loop: `llmcache serve` (default durability settings) killed
# with SIGKILL while clients send requests, ROUNDS times (default 200) on one
# database, with kills during model flushes, purges and compactions; after
# every kill the database must open, `llmcache verify` must find nothing
# corrupt and every response acknowledged as stored must be there. ctest runs
# the same driver (tests/tools/serve_crash_loop.cc) for 6 rounds.
#
# Usage: scripts/crash_loop.sh [PRESET]        (default: release; or dev)
# Environment: ROUNDS (default 200), SEED (replay a run), CLIENTS (default 3),
#              BUILD=0 to skip building.
# Prints one line per round and, last, the summary line:
#   crash loop summary: N rounds, seed S; kills during a flush F, during a
#   purge P, during a compaction C ...; entries checked: ...; failed rounds X
# Exit status: 0 when every round passed.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-release}
build="build/$preset"
if [ "${BUILD:-1}" != 0 ]; then
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" --target serve_crash_loop llmcache_cli
fi
env=(LLMCACHE_CRASH_LOOP_ROUNDS="${ROUNDS:-200}")
[ -n "${SEED:-}" ] && env+=(LLMCACHE_CRASH_LOOP_SEED="$SEED")
[ -n "${CLIENTS:-}" ] && env+=(LLMCACHE_CRASH_LOOP_CLIENTS="$CLIENTS")
log=$(mktemp /tmp/llmcache-crash-loop-XXXXXX.log)
status=0
env "${env[@]}" "$build/tests/serve_crash_loop" \
  --gtest_filter='ServeCrashLoop.*' 2>&1 | tee "$log" || status=$?
echo
echo "full log: $log"
grep '^crash loop summary:' "$log" || echo "crash loop: no summary (the run stopped early)"
exit "$status"
