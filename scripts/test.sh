#!/usr/bin/env bash
# Sets up, builds and runs every test under AddressSanitizer +
# UndefinedBehaviorSanitizer (a Debug build with warnings as errors, like
# dev; the fuzz targets' corpora are replayed as tests), then the
# concurrency tests under ThreadSanitizer (scripts/tsan.sh). Also:
#   dev   the same tests without sanitizers (also builds the benchmarks)
#   fuzz  the libFuzzer targets for 10 s each (scripts/fuzz.sh 10; a clang
#         build of its own, kept out of the default run to keep CI short)
# Usage: scripts/test.sh [dev|asan|tsan|fuzz]...   (default: asan tsan)
# LLMCACHE_FUZZ_SECONDS sets the seconds per fuzz target.
# The sanitizer presets compile with -g1 (line tables: a report still names
# file and line of each frame; ~10% less compile time than -g, 29% on some
# units) and link with gold (linking the ASan net_tests: 14.7 s
# with ld, 10.3 s with gold). The asan preset links executables without PIE:
# ctest starts every test in a process of its own, and the dynamic loader
# spent ~0.5 s of each start of the ASan net_tests relocating the
# position-independent executable. It does not instrument global variables
# (--param=asan-globals=0): registering the redzones of every global and
# string literal, and LeakSanitizer's scan of them at exit, made each start of
# a test binary or of the CLI ~0.25 s slower (net_tests 0.42 -> 0.17 s,
# llmcache 0.50 -> 0.26 s; binaries 341 -> 224 MB), over ~2000 starts a run.
# Heap, stack and use-after-free checks, leaks and UBSan are as before; what
# it no longer catches is an overflow of a global array, and ASan's checks of
# ODR violations and initialisation order. The flag is GCC's (the compiler
# here; clang rejects it).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
# The official OpenAI SDK for Node, which the OpenAiSdk test points at the
# proxy (exact versions from tests/sdk/package-lock.json).
if [[ ! -d tests/sdk/node_modules || tests/sdk/package-lock.json -nt tests/sdk/node_modules ]]; then
  echo "setup: npm ci in tests/sdk"
  npm ci --prefix tests/sdk --no-audit --no-fund
fi
# playwright-core, which the dashboard_browser test drives Chromium with
# (exact version from tests/browser/package-lock.json).
if [[ ! -d tests/browser/node_modules || tests/browser/package-lock.json -nt tests/browser/node_modules ]]; then
  echo "setup: npm ci in tests/browser"
  npm ci --prefix tests/browser --no-audit --no-fund
fi

presets=("$@")
if ((${#presets[@]} == 0)); then presets=(asan tsan); fi
jobs=$(nproc)

# Each phase ends with its wall time (CI's budget is watched per phase).
phase() { echo "=== $1 ($(date +%T), ${SECONDS} s since start) ==="; }
for preset in "${presets[@]}"; do
  if [[ "$preset" == tsan ]]; then
    phase "tsan: the concurrency tests under ThreadSanitizer"
    scripts/tsan.sh
    continue
  fi
  if [[ "$preset" == fuzz ]]; then
    phase "fuzz: each target for ${LLMCACHE_FUZZ_SECONDS:-10} s"
    scripts/fuzz.sh "${LLMCACHE_FUZZ_SECONDS:-10}"
    continue
  fi
  phase "${preset}: configure + build"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  phase "${preset}: test"
  ctest --preset "$preset" -j "$jobs"
done
phase "done"
