#!/usr/bin/env bash
# Installs exactly the Debian packages llmcache needs; skips what is present.
# Idempotent. Usage: scripts/setup.sh [--bench]
#   --bench  also the baselines the comparison benchmarks run (Python with
#            redis-py, nginx and wrk for bench/proxy_bench.sh) and simdjson
#            (bench/simdjson_bench.cc).
# redis-server and redis-tools are always installed: the shared tier's tests
# start real Redis servers and clusters on loopback. chromium too: the
# dashboard_browser test drives it headless (tests/browser).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  g++ cmake ninja-build
  librocksdb-dev
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev openssl
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev
  libhiredis-dev redis-server redis-tools
  chromium
)
if ! command -v node >/dev/null; then packages+=(nodejs npm); fi
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3 python3-redis nginx wrk libsimdjson-dev)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
else
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

