#!/usr/bin/env bash
# The concurrency tests under ThreadSanitizer (the `tsan` preset): single
# flight, the memory tier, a model flush during inserts, the store's recovery
# while threads insert, keys computed on many threads, bulk loads (a writer
# thread, the loader's family and buffer threads, inserts meanwhile; its
# block pool's waits for lent blocks),
# inserts and purges of the same keys at once, and
# the proxy with many connections, embeddings batches (inputs led and joined
# across concurrent batches), and the shared tier (the Redis client's I/O
# thread under callers on other threads; two cached clients sharing one
# Redis). Any report fails the run (TSan's exit code 66).
# Usage: scripts/tsan.sh [all]   (all: every engine and net test, slower)
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset tsan >/dev/null
# The default run builds only the test files that hold the concurrency tests
# (engine_tsan_tests, net_tsan_tests); `all` builds every test.
engine_bin=engine_tsan_tests
net_bin=net_tsan_tests
if [[ "${1:-}" == "all" ]]; then engine_bin=engine_tests; net_bin=net_tests; fi
cmake --build --preset tsan -j "$(nproc)" --target "$engine_bin" "$net_bin" shared_tier_tests

engine_filter='BulkLoadTest.*:BlockPoolTest.*:*ConcurrentWritesOfOneKey*:MemoryTierTest.Concurrent*:*FlushModelWhileFourThreadsReadAndWrite*:*FlushAllWhileListingsRun*:KeyThreadTest.*:StoreFaultTest.*'
net_filter='CachedSharedTest.*:CachedClientTest.FiftyConcurrentIdenticalMissesMakeOneUpstreamCall:CachedClientTest.ConcurrentMissesShareAnUpstreamError:CachedClientTest.JoinedFlightsAreEachCountedOnce:CachedClientTest.LeaderWho*:CachedClientFlightTest.*:CachedClientTest.DiskFaultIsServedThroughCountedAndHeals:ProxyTest.ManyConnectionsAtOnce:ProxyTest.PlainRequestJoiningAStreamGetsJson:ProxyTest.AStreamThatJoinsAnotherGetsItsEventsAsTheyCome:ProxyTest.ShutdownLetsInFlightRequestsFinish:ProxyTest.AClientStalledDuringShutdownIsClosedAtItsDeadline:ProxyTest.AClientThatStopsReadingIsClosedAfterTheWriteTimeout:ProxyTest.AJoinerThatLeavesFreesItsConnectionAtOnce:ProxyTest.ALeaderThatLeavesIsClosedAtOnceAndItsAnswerIsStored:ProxyTest.AStreamOverTheStoreLimit*:ProxyTest.AFullDiskIsServedThroughAndHealsByItself:FakeOpenRouterTest.ConcurrentClientsAndStopMidStream:CachedEndpointsTest.*:ProxyEndpointsTest.Batch*'
shared_filter='SharedPipelineTest.*:SharedTierTest.OneLeader*:SharedTierTest.AFlushHides*:SharedTierFailOpenTest.NoServer*'
if [[ "${1:-}" == "all" ]]; then engine_filter='*'; net_filter='*'; shared_filter='*'; fi

# tests/tsan.supp suppresses only reports inside Debian's RocksDB, which is
# not built with TSan (its atomics are invisible to it); see that file.
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp ${TSAN_OPTIONS:-}"
# The engine's tests run beside the net and shared-tier tests (one core
# each; sequentially they took ~100 s of the run), each into a log of its own
# that is printed when it ends.
# A background job of a script ignores SIGINT: the exit trap stops it when
# the script ends early (Ctrl-C, a CI timeout, a failed step).
logs=$(mktemp -d)
engine_pid=
trap '[[ -n $engine_pid ]] && kill "$engine_pid" 2>/dev/null; rm -rf "$logs"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
status=0
build/tsan/tests/"$engine_bin" --gtest_filter="$engine_filter" --gtest_brief=1 \
  >"$logs/engine" 2>&1 &
engine_pid=$!
build/tsan/tests/"$net_bin" --gtest_filter="$net_filter" --gtest_brief=1 || status=$?
build/tsan/tests/shared_tier_tests --gtest_filter="$shared_filter" --gtest_brief=1 || status=$?
engine_status=0
wait "$engine_pid" || engine_status=$?
engine_pid=
cat "$logs/engine"
if ((engine_status != 0)); then status=$engine_status; fi
if ((status != 0)); then echo "tsan: FAILED (exit $status)"; exit "$status"; fi
echo "tsan: no reports"
