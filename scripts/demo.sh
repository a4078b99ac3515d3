#!/usr/bin/env bash
# Try the proxy without an API key or the network: start a local fake
# OpenRouter and `llmcache serve` in front of it (temporary database), send the
# same deterministic request twice (MISS, then HIT) and streamed twice, show
# the statistics, stop both.
# Usage: scripts/demo.sh [BUILD_DIR]   (default build/release)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
bin="$build/tools/llmcache"
db=$(mktemp -d /tmp/llmcache-demo-XXXXXX)
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: nothing listens on port $1" >&2
  return 1
}
fake_port=$(free_port)
proxy_port=$(free_port)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$db"
}
trap cleanup EXIT

"$bin" fake-openrouter --listen "127.0.0.1:$fake_port" --quiet >/dev/null &
pids+=($!)
wait_port "$fake_port"
"$bin" serve --listen "127.0.0.1:$proxy_port" --db "$db/cache" \
  --upstream "http://127.0.0.1:$fake_port/api/v1" --log-level warn &
pids+=($!)
wait_port "$proxy_port"

url="http://127.0.0.1:$proxy_port/v1/chat/completions"
body='{"model":"openai/gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"What is a cache?"}]}'
stream_body='{"model":"openai/gpt-4o-mini","temperature":0,"stream":true,"messages":[{"role":"user","content":"Stream it."}]}'
for run in 1 2; do
  echo "--- request $run: POST $url"
  curl -sS -D "$db/headers" -o "$db/body" -H 'Authorization: Bearer demo-key' \
    -H 'Content-Type: application/json' -d "$body" "$url"
  sed 's/\r$//' "$db/headers" | grep -Ei '^(HTTP/|x-cache|age:)'
  python3 -c 'import json,sys; print("content:", json.load(open(sys.argv[1]))["choices"][0]["message"]["content"])' "$db/body"
done
for run in 1 2; do
  echo "--- streamed request $run"
  curl -sS -N -D - -H 'Authorization: Bearer demo-key' -d "$stream_body" "$url" |
    sed 's/\r$//' | grep -Ei '^(HTTP/|x-cache|content-type)|\[DONE\]' | head -5
done
echo "--- GET /stats (proxy section)"
curl -sS "http://127.0.0.1:$proxy_port/stats" | python3 -c \
  'import json,sys; s=json.load(sys.stdin)["proxy"]; print({k: s[k] for k in ("requests","hits","misses","bypasses")})'
