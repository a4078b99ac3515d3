#!/usr/bin/env bash
# Sets up, builds and runs every test twice: in the dev build (Debug,
# warnings as errors) and under AddressSanitizer + UndefinedBehaviorSanitizer.
# Usage: scripts/test.sh [dev|asan]...   (default: dev asan)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

presets=("$@")
if ((${#presets[@]} == 0)); then presets=(dev asan); fi
jobs=$(nproc)

for preset in "${presets[@]}"; do
  echo "=== ${preset}: configure + build ==="
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  echo "=== ${preset}: test ==="
  ctest --preset "$preset" -j "$jobs"
done
