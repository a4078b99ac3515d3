#!/usr/bin/env bash
# Cache hits per second and latency of `llmcache serve` against nginx's
# proxy_cache, both in front of the same local fake OpenRouter, for the same
# 2 KiB chat-completion request (temperature 0). Loopback only, no API key.
#
# Starts `llmcache fake-openrouter`, `llmcache serve` (temp --db) and nginx
# (bench/nginx-cache.conf.in, in a temp prefix) on free loopback ports, fills
# each cache with one request, checks that the next one is a hit (X-Cache: HIT,
# X-Cache-Status: HIT), then runs wrk (bench/wrk_post.lua) against each: a
# warm-up, then the measured run with the same parameters. Prints requests/s,
# p50, p90, p99 for both, the ratios, and whether the target is met:
#   proxy requests/s >= TARGET_RATIO x nginx requests/s  and
#   proxy p99 <= nginx p99.
# Fails (exit 1) if a request is not a hit or wrk saw any socket error or
# non-2xx response. Everything it starts is stopped on exit.
#
# Needs wrk, nginx and curl (scripts/setup.sh --bench) and a Release build:
#   cmake --preset release && cmake --build --preset release
#
# Usage: bench/proxy_bench.sh
# Environment (defaults in brackets):
#   LLMCACHE_BIN     llmcache binary [build/release/tools/llmcache]
#   WRK_THREADS      wrk threads [1]
#   WRK_CONNS        wrk connections [32]
#   DURATION         measured run [10s]
#   WARMUP           warm-up run before each measurement [2s]
#   PROXY_THREADS    serve --threads [1]
#   NGINX_WORKERS    nginx worker_processes [1]
#   PROXY_ARGS       extra serve arguments, e.g. "--memory" or "--shared-cache"
#   BODY_BYTES       request body size in bytes [2048]
#   ENDPOINT         chat_completions, or embeddings: a single-input
#                    embeddings request of BODY_BYTES (no temperature: every
#                    embedding is cacheable) to /v1/embeddings [chat_completions]
#   ROUNDS           alternating proxy/nginx measurements; medians shown [1]
#   PIN              1: servers on CPUs $SERVER_CPUS [1], wrk on $WRK_CPUS [0]
#   SKIP_PROXY=1     measure nginx only (e.g. before the serve verb exists)
#   SKIP_NGINX=1     measure the proxy only
#   TARGET_RATIO     the requests/s ratio the target asks for [1.5]
#   REQUIRE_TARGET=1 exit 3 when the target is not met
#   RESULT_JSON      also write the (median) figures as JSON to this file
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

bin=${LLMCACHE_BIN:-$root/build/release/tools/llmcache}
wrk_threads=${WRK_THREADS:-1}
wrk_conns=${WRK_CONNS:-32}
duration=${DURATION:-10s}
warmup=${WARMUP:-2s}
proxy_threads=${PROXY_THREADS:-1}
nginx_workers=${NGINX_WORKERS:-1}
body_bytes=${BODY_BYTES:-2048}
endpoint=${ENDPOINT:-chat_completions}
case $endpoint in
  chat_completions) api_path=chat/completions ;;
  embeddings) api_path=embeddings ;;
  *) echo "proxy_bench: ENDPOINT must be chat_completions or embeddings" >&2; exit 1 ;;
esac
rounds=${ROUNDS:-1}
target_ratio=${TARGET_RATIO:-1.5}
result_json=${RESULT_JSON:-}
skip_proxy=${SKIP_PROXY:-0}
skip_nginx=${SKIP_NGINX:-0}
read -r -a proxy_args <<<"${PROXY_ARGS:-}"

# A made-up token: the fake accepts any. Passed by environment, never written.
export BENCH_API_KEY=sk-bench-local

die() {
  echo "proxy_bench: $*" >&2
  exit 1
}

for tool in wrk nginx curl; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/setup.sh --bench installs it)"
done
[[ -x $bin ]] || die "no llmcache binary at $bin (build the release preset or set LLMCACHE_BIN)"
if [[ $skip_proxy != 1 ]] && ! "$bin" serve --help >/dev/null 2>&1; then
  die "$bin has no serve verb (SKIP_PROXY=1 measures nginx alone)"
fi
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"

server_pin=()
wrk_pin=()
if [[ ${PIN:-0} == 1 ]]; then
  command -v taskset >/dev/null || die "PIN=1 needs taskset"
  server_pin=(taskset -c "${SERVER_CPUS:-1}")
  wrk_pin=(taskset -c "${WRK_CPUS:-0}")
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/llmcache-proxy-bench-XXXXXX")
# nginx workers started by root run as nobody: they must reach their dirs.
chmod 755 "$tmp"
pids=()
names=()

cleanup() {
  local i pid
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 30); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port that nothing listens on, below the usual ephemeral range.
free_port() {
  local port
  for _ in $(seq 200); do
    port=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  die "no free port found"
}

# start NAME COMMAND...: runs it in the background, output in $tmp/NAME.log.
start() {
  local name=$1
  shift
  "$@" >"$tmp/$name.log" 2>&1 &
  pids+=("$!")
  names+=("$name")
}

show_log() {
  echo "--- $1 log (tail):" >&2
  tail -n 30 "$tmp/$1.log" >&2 || true
}

# wait_ready NAME PROBE...: until PROBE succeeds (20 s), failing if NAME died.
wait_ready() {
  local name=$1 pid="" i
  shift
  for i in "${!names[@]}"; do
    [[ ${names[i]} == "$name" ]] && pid=${pids[i]}
  done
  for _ in $(seq 200); do
    if ! kill -0 "$pid" 2>/dev/null; then
      show_log "$name"
      die "$name exited during startup"
    fi
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  show_log "$name"
  die "$name not ready after 20 s"
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A realistic 2 KiB chat-completion request: system prompt, one earlier turn,
# and a question whose pasted log excerpt brings the body to exactly
# $body_bytes bytes.
make_body() {
  local head tail filler need
  if [[ $endpoint == embeddings ]]; then
    # A chunk of a document being indexed for retrieval.
    head='{"model":"openai/text-embedding-3-small","input":"Runbook, section 4.2, gateway errors during deploys. '
    tail='"}'
    filler='2024-05-14T10:02:11Z upstream prematurely closed connection while reading response header from upstream, client 10.0.3.17, server api, request POST /v1/orders HTTP/1.1, upstream http://10.0.8.41:8080/v1/orders. '
    filler+=$filler$filler$filler$filler$filler
    need=$((body_bytes - ${#head} - ${#tail}))
    ((need >= 0 && need <= ${#filler})) || die "BODY_BYTES out of range for embeddings"
    printf '%s%s%s' "$head" "${filler:0:need}" "$tail"
    return
  fi
  head='{"model":"openai/gpt-4o-mini","temperature":0,"max_tokens":400,"messages":['
  head+='{"role":"system","content":"You are a senior site reliability engineer. Answer precisely, name the configuration settings involved, and keep every answer under 150 words."},'
  head+='{"role":"user","content":"Our API gateway returns 502 errors for about one percent of requests during deploys. The upstream pods are drained with a 30 second grace period. What should we check first?"},'
  head+='{"role":"assistant","content":"Check that the load balancer stops routing to a pod before the pod stops accepting connections: add a preStop sleep longer than the endpoint propagation delay, make the readiness probe fail as soon as draining starts, and make sure the gateway idle timeout is shorter than the upstream keep-alive timeout, so that the gateway never reuses a connection the upstream is closing."},'
  head+='{"role":"user","content":"We added a preStop sleep of 15 seconds and the errors dropped but did not disappear. Here is an excerpt of the gateway log from the last deploy, what does it tell you? '
  tail='"}]}'
  filler='2024-05-14T10:02:11Z upstream prematurely closed connection while reading response header from upstream, client 10.0.3.17, server api, request POST /v1/orders HTTP/1.1, upstream http://10.0.8.41:8080/v1/orders. '
  filler+='2024-05-14T10:02:11Z upstream prematurely closed connection while reading response header from upstream, client 10.0.5.2, server api, request GET /v1/orders/8812 HTTP/1.1, upstream http://10.0.8.41:8080/v1/orders/8812. '
  filler+='2024-05-14T10:02:12Z connect() failed (111: Connection refused) while connecting to upstream, client 10.0.3.9, server api, request POST /v1/carts HTTP/1.1, upstream http://10.0.8.41:8080/v1/carts. '
  filler+='2024-05-14T10:02:14Z no live upstreams while connecting to upstream, client 10.0.4.22, server api, request GET /v1/health HTTP/1.1, upstream http://backend/v1/health. '
  filler+=$filler
  need=$((body_bytes - ${#head} - ${#tail}))
  ((need >= 0 && need <= ${#filler})) || die "BODY_BYTES must be between $((${#head} + ${#tail})) and $((${#head} + ${#tail} + ${#filler}))"
  printf '%s%s%s' "$head" "${filler:0:need}" "$tail"
}

body_file=$tmp/body.json
make_body >"$body_file"
export BENCH_BODY_FILE=$body_file

# post URL: one request; prints the HTTP status, headers in $tmp/last.headers.
post() {
  curl -sS --max-time 10 -o "$tmp/last.body" -D "$tmp/last.headers" -w '%{http_code}' \
    -H 'Content-Type: application/json' -H "Authorization: Bearer $BENCH_API_KEY" \
    --data-binary "@$body_file" "$1"
}

header() {
  grep -i "^$1:" "$tmp/last.headers" | tail -n 1 | cut -d: -f2- | tr -d ' \r' || true
}

# fill_and_check NAME URL HEADER: one request to fill the cache, then one that
# must be a hit according to HEADER.
fill_and_check() {
  local name=$1 url=$2 hdr=$3 status
  status=$(post "$url") || die "$name: request failed"
  [[ $status == 200 ]] || die "$name: fill request got HTTP $status: $(head -c 300 "$tmp/last.body")"
  echo "$name: first request: HTTP $status, $hdr: $(header "$hdr")"
  check_hit "$name" "$url" "$hdr" "second request"
}

check_hit() {
  local name=$1 url=$2 hdr=$3 what=$4 status value
  status=$(post "$url") || die "$name: request failed"
  value=$(header "$hdr")
  [[ $status == 200 && $value == HIT ]] ||
    die "$name: $what got HTTP $status, $hdr: '${value}' (want 200 and HIT)"
  echo "$name: $what: HTTP $status, $hdr: $value"
}

# measure NAME URL: warm-up, then the measured wrk run; sets the r_* results
# (r_requests: the requests wrk completed in both).
measure() {
  local name=$1 url=$2 log
  r_requests=0
  local wrk_cmd=("${wrk_pin[@]}" wrk -t"$wrk_threads" -c"$wrk_conns" --latency --timeout 5s -s "$here/wrk_post.lua")
  for phase in warmup run; do
    log=$tmp/wrk-$name-$phase.log
    local d=$duration
    [[ $phase == warmup ]] && d=$warmup
    "${wrk_cmd[@]}" -d"$d" "$url" >"$log" 2>&1 || {
      cat "$log" >&2
      die "$name: wrk failed ($phase)"
    }
    local line
    line=$(grep '^WRK_RESULT ' "$log" || true)
    [[ -n $line ]] || {
      cat "$log" >&2
      die "$name: no result from wrk ($phase)"
    }
    local requests=0 rps=0 p50_us=0 p90_us=0 p99_us=0 connect=0 read=0 write=0 timeout=0 status=0 kv fields
    read -r -a fields <<<"${line#WRK_RESULT }"
    for kv in "${fields[@]}"; do
      case ${kv%%=*} in
        requests | rps | p50_us | p90_us | p99_us | connect | read | write | timeout | status)
          printf -v "${kv%%=*}" '%s' "${kv#*=}"
          ;;
      esac
    done
    if ((connect + read + write + timeout + status > 0)) || grep -q 'Non-2xx' "$log" || ((requests == 0)); then
      cat "$log" >&2
      die "$name: wrk saw errors ($phase): socket connect=$connect read=$read write=$write timeout=$timeout, non-2xx=$status, requests=$requests"
    fi
    r_requests=$((r_requests + requests))
  done
  sed -n '/Latency Distribution/,/Transfer/p' "$log" | sed 's/^/    /'
  r_rps=$rps r_p50=$p50_us r_p90=$p90_us r_p99=$p99_us
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ms() { awk -v us="$1" 'BEGIN { printf "%.3f ms", us / 1000 }'; }

# --- start everything ----------------------------------------------------
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "body: $(wc -c <"$body_file") bytes, endpoint $endpoint"
echo "wrk: -t$wrk_threads -c$wrk_conns -d$duration (warm-up $warmup), rounds: $rounds${PIN:+, PIN=$PIN}"

upstream_port=$(free_port)
start fake "${server_pin[@]}" "$bin" fake-openrouter --listen "127.0.0.1:$upstream_port" -q
wait_ready fake tcp_open "$upstream_port"
upstream=http://127.0.0.1:$upstream_port/api/v1

if [[ $skip_proxy != 1 ]]; then
  proxy_port=$(free_port)
  start serve "${server_pin[@]}" "$bin" serve --listen "127.0.0.1:$proxy_port" --db "$tmp/db" \
    --upstream "$upstream" --threads "$proxy_threads" --log-level warn "${proxy_args[@]}"
  wait_ready serve curl -fsS --max-time 1 -o /dev/null "http://127.0.0.1:$proxy_port/healthz"
  proxy_url=http://127.0.0.1:$proxy_port/v1/$api_path
  echo "proxy: $bin serve --threads $proxy_threads${proxy_args[*]:+ ${proxy_args[*]}}"
  fill_and_check "llmcache serve" "$proxy_url" X-Cache
fi

if [[ $skip_nginx != 1 ]]; then
  nginx_port=$(free_port)
  sed -e "s|@DIR@|$tmp/nginx|g" -e "s|@WORKERS@|$nginx_workers|g" \
    -e "s|@PORT@|$nginx_port|g" -e "s|@UPSTREAM_PORT@|$upstream_port|g" \
    "$here/nginx-cache.conf.in" >"$tmp/nginx.conf"
  mkdir -p "$tmp/nginx"
  chmod 755 "$tmp/nginx"
  nginx -t -q -p "$tmp/nginx" -c "$tmp/nginx.conf" -e "$tmp/nginx/error.log" ||
    die "nginx rejected $tmp/nginx.conf"
  start nginx "${server_pin[@]}" nginx -p "$tmp/nginx" -c "$tmp/nginx.conf" -e "$tmp/nginx/error.log" -g 'daemon off;'
  wait_ready nginx tcp_open "$nginx_port"
  nginx_url=http://127.0.0.1:$nginx_port/api/v1/$api_path
  echo "nginx: $(nginx -v 2>&1 | cut -d/ -f2), worker_processes $nginx_workers"
  fill_and_check "nginx" "$nginx_url" X-Cache-Status
fi

# --- measure -------------------------------------------------------------
proxy_requests=0
p_rps=() p_p50=() p_p90=() p_p99=() n_rps=() n_p50=() n_p90=() n_p99=()
for ((round = 1; round <= rounds; round++)); do
  if [[ $skip_proxy != 1 ]]; then
    echo "round $round: llmcache serve"
    measure proxy "$proxy_url"
    p_rps+=("$r_rps") p_p50+=("$r_p50") p_p90+=("$r_p90") p_p99+=("$r_p99")
    proxy_requests=$((proxy_requests + r_requests))
    echo "    => $r_rps requests/s, p99 $(ms "$r_p99")"
  fi
  if [[ $skip_nginx != 1 ]]; then
    echo "round $round: nginx proxy_cache"
    measure nginx "$nginx_url"
    n_rps+=("$r_rps") n_p50+=("$r_p50") n_p90+=("$r_p90") n_p99+=("$r_p99")
    echo "    => $r_rps requests/s, p99 $(ms "$r_p99")"
  fi
done

# Still hits after the load (nothing was evicted or bypassed).
[[ $skip_proxy == 1 ]] || check_hit "llmcache serve" "$proxy_url" X-Cache "after the load"
[[ $skip_nginx == 1 ]] || check_hit "nginx" "$nginx_url" X-Cache-Status "after the load"
# The proxy's own counters: one miss (the fill), no bypass, and at least a hit
# for each request wrk completed and the three checks (wrk does not count the
# requests still in flight when it stops).
if [[ $skip_proxy != 1 ]]; then
  stats=$(curl -sS --max-time 5 "http://127.0.0.1:$proxy_port/stats" | grep -o '"proxy":{[^}]*' || true)
  counter() { grep -o "\"$1\":[0-9]*" <<<"$stats" | head -n 1 | cut -d: -f2; }
  s_requests=$(counter requests) s_hits=$(counter hits) s_misses=$(counter misses) s_bypasses=$(counter bypasses)
  if [[ -z $s_requests || -z $s_hits || -z $s_misses || -z $s_bypasses ]]; then
    echo "llmcache serve: /stats has no proxy counters; hit count not checked" >&2
  elif ((s_misses != 1 || s_bypasses != 0 || s_hits < proxy_requests + 2)); then
    die "llmcache serve: /stats: requests=$s_requests hits=$s_hits misses=$s_misses bypasses=$s_bypasses (want 1 miss, 0 bypasses, >= $((proxy_requests + 2)) hits)"
  else
    echo "llmcache serve: /stats: $s_requests requests, $s_hits hits, $s_misses miss, $s_bypasses bypasses (wrk completed $proxy_requests)"
  fi
fi

# --- report --------------------------------------------------------------
echo
if ((rounds > 1)); then echo "medians over $rounds rounds"; fi
printf '%-22s %12s %11s %11s %11s\n' "" "requests/s" p50 p90 p99
if [[ $skip_proxy != 1 ]]; then
  pr=$(median "${p_rps[@]}") p50=$(median "${p_p50[@]}") p90=$(median "${p_p90[@]}") p99=$(median "${p_p99[@]}")
  printf '%-22s %12.1f %11s %11s %11s\n' "llmcache serve (${proxy_threads}t)" "$pr" "$(ms "$p50")" "$(ms "$p90")" "$(ms "$p99")"
fi
if [[ $skip_nginx != 1 ]]; then
  nr=$(median "${n_rps[@]}") n50=$(median "${n_p50[@]}") n90=$(median "${n_p90[@]}") n99=$(median "${n_p99[@]}")
  printf '%-22s %12.1f %11s %11s %11s\n' "nginx proxy_cache (${nginx_workers}w)" "$nr" "$(ms "$n50")" "$(ms "$n90")" "$(ms "$n99")"
fi
if [[ -n $result_json ]]; then
  # Microseconds for latencies; null for a side that was skipped.
  jnum() { if [[ -n ${1:-} ]]; then printf '%s' "$1"; else printf 'null'; fi; }
  printf '{"endpoint":"%s","body_bytes":%s,"proxy_threads":%s,"nginx_workers":%s,"wrk_threads":%s,"wrk_connections":%s,"duration":"%s","rounds":%s,"proxy":{"rps":%s,"p50_us":%s,"p90_us":%s,"p99_us":%s},"nginx":{"rps":%s,"p50_us":%s,"p90_us":%s,"p99_us":%s},"target_ratio":%s}\n' \
    "$endpoint" "$(wc -c <"$body_file")" "$proxy_threads" "$nginx_workers" "$wrk_threads" "$wrk_conns" "$duration" "$rounds" \
    "$(jnum "${pr:-}")" "$(jnum "${p50:-}")" "$(jnum "${p90:-}")" "$(jnum "${p99:-}")" \
    "$(jnum "${nr:-}")" "$(jnum "${n50:-}")" "$(jnum "${n90:-}")" "$(jnum "${n99:-}")" "$target_ratio" >"$result_json"
fi
if [[ $skip_proxy == 1 || $skip_nginx == 1 ]]; then
  echo "target: not evaluated (one side skipped)"
  exit 0
fi
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
printf '%-22s %12s %11s %11s %11s\n' "proxy / nginx" "$(ratio "$pr" "$nr")" "$(ratio "$p50" "$n50")" "$(ratio "$p90" "$n90")" "$(ratio "$p99" "$n99")"
echo "(requests/s: higher is better; latencies: lower is better)"
if awk -v pr="$pr" -v nr="$nr" -v pp="$p99" -v np="$n99" -v t="$target_ratio" 'BEGIN { exit !(pr >= t * nr && pp <= np) }'; then
  echo "target (proxy requests/s >= ${target_ratio}x nginx and proxy p99 <= nginx p99): MET"
else
  echo "target (proxy requests/s >= ${target_ratio}x nginx and proxy p99 <= nginx p99): NOT MET"
  [[ ${REQUIRE_TARGET:-0} != 1 ]] || exit 3
fi
