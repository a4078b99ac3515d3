#!/usr/bin/env bash
# The main job until the proxy exists: start a local fake OpenRouter, send the
# same deterministic request twice through the cached client (a miss, then a
# hit served from the cache), stop the fake. No API key, no network.
# Usage: scripts/demo.sh [BUILD_DIR]   (default build/release)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
db=$(mktemp -d /tmp/llmcache-demo-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

"$build/tools/llmcache" fake-openrouter --listen "127.0.0.1:$port" --quiet &
fake=$!
trap 'kill $fake 2>/dev/null; wait $fake 2>/dev/null; rm -rf "$db"' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

for run in 1 2; do
  echo "--- request $run"
  OPENROUTER_API_KEY=fake-local-key \
    "$build/tools/llmcache-demo" --db "$db" --upstream "http://127.0.0.1:$port/api/v1"
done
