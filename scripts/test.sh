#!/usr/bin/env bash
# Sets up, builds and runs every test twice: in the dev build (Debug,
# warnings as errors) and under AddressSanitizer + UndefinedBehaviorSanitizer.
# Usage: scripts/test.sh [dev|asan]...   (default: dev asan)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
# The official OpenAI SDK for Node, which the OpenAiSdk test points at the
# proxy (exact versions from tests/sdk/package-lock.json).
if [[ ! -d tests/sdk/node_modules || tests/sdk/package-lock.json -nt tests/sdk/node_modules ]]; then
  echo "setup: npm ci in tests/sdk"
  npm ci --prefix tests/sdk --no-audit --no-fund
fi

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
