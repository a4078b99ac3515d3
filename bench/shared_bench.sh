#!/usr/bin/env bash
# Hits per second through the shared tier (Redis) with the local tiers cold,
# at 1 and 32 concurrent callers, beside the seed design's Redis path (redis-py
# GET of a JSON value) and `redis-benchmark -t get`, all against one
# throw-away redis-server on 127.0.0.1, in one run. Also the latency a
# shared-tier hit adds over a memory-tier hit (p50/p99).
#
#   1. scripts/setup.sh --bench when redis-py or redis-benchmark is missing;
#   2. builds shared_bench (release preset);
#   3. starts redis-server on a free port (--save "" --appendonly no, a temp
#      dir; stopped on exit);
#   4. redis-benchmark -t get -d $VALUE_BYTES at -c 1 and -c 32, on a key
#      holding a value of that size (without it GET would answer nil);
#   5. the seed's path in Python: key = "or:" + sha256(json.dumps({'m':
#      model, 'msgs': messages, **kwargs}, sort_keys=True)); r.get(key);
#      json.loads(...), at 1 caller and 32 threads, $SEED_SECONDS each, on
#      the same requests and responses as shared_bench;
#   6. shared_bench (bench/shared_bench.cc) with LLMCACHE_BENCH_REDIS set;
#   7. prints one table with the ratios and targets:
#        shared tier @1  >= 10x the seed's Redis path @1
#        shared tier @32 >= 50% of redis-benchmark GET @32
#
# Usage: bench/shared_bench.sh
# Environment (defaults in brackets):
#   PYTHON           a Python 3 with redis-py [python3 or /usr/bin/python3]
#   BUILD=0          skip the build (use the existing binary)
#   BENCH_BIN        shared_bench binary [build/release/bench/shared_bench]
#   SEED_SECONDS     seconds per seed measurement [3]
#   JOBS             build parallelism [2]
#   REQUIRE_TARGET=1 exit 3 when a target is not met
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${BENCH_BIN:-$root/build/release/bench/shared_bench}
seed_seconds=${SEED_SECONDS:-3}
# The response body size of shared_bench.cc (kResponseBytes).
value_bytes=1024

die() {
  echo "shared_bench: $*" >&2
  exit 1
}

# 1. Baseline tools. redis-py is Debian's python3-redis: the first of $PYTHON,
# python3 and /usr/bin/python3 that imports it runs the Python parts.
find_python() {
  local p
  for p in ${PYTHON:-} python3 /usr/bin/python3; do
    if "$p" -c 'import redis' 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}
if ! find_python >/dev/null || ! command -v redis-benchmark >/dev/null ||
  ! command -v redis-server >/dev/null; then
  "$root/scripts/setup.sh" --bench
fi
py=$(find_python) || die "no python3 that imports redis (python3-redis)"

# 2. Build.
if [[ ${BUILD:-1} != 0 ]]; then
  echo "== building shared_bench (release preset)"
  (cd "$root" && cmake --preset release >/dev/null &&
    nice cmake --build --preset release -j"${JOBS:-2}" --target shared_bench) |
    tail -n 3
fi
[[ -x $bin ]] || die "no shared_bench binary at $bin"

# 3. A throw-away redis-server.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/llmcache-shared-bench-XXXXXX")
redis_pid=""
cleanup() {
  if [[ -n $redis_pid ]]; then
    kill -TERM "$redis_pid" 2>/dev/null || true
    for _ in $(seq 30); do
      kill -0 "$redis_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  "$py" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port=""
for _ in 1 2 3; do # the free port can be taken before redis binds it
  port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$tmp" --daemonize no >"$tmp/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 100); do
    if redis-cli -p "$port" PING 2>/dev/null | grep -q PONG; then break 2; fi
    kill -0 "$redis_pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  redis_pid=""
done
[[ -n $redis_pid ]] || {
  tail -n 20 "$tmp/redis.log" >&2
  die "redis-server did not start"
}
url="redis://127.0.0.1:$port"
echo "== redis-server $(redis-server --version | awk '{print $3}') on $url"

echo "== machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   busiest processes (before measuring):"
ps -eo pcpu=,comm= --sort=-pcpu | head -n 5 | sed 's/^/     /'

# 6 (first: the figures the others are compared with). shared_bench.
echo "== shared_bench"
LLMCACHE_BENCH_REDIS=$url "$bin" --benchmark_out="$tmp/shared.json" \
  --benchmark_out_format=json 2>&1 | sed 's/^/   /'
# The size of one stored shared-tier value (header + entry encoding).
redis-cli -p "$port" --scan --pattern 'llmcache:e:*' >"$tmp/entry-keys"
entry_bytes=$(head -n 1 "$tmp/entry-keys" | xargs -r redis-cli -p "$port" STRLEN)

# 4. redis-benchmark GET on a key that holds a value_bytes value.
# redis-benchmark's GET uses the literal key "key:__rand_int__" without -r.
head -c "$value_bytes" /dev/zero | tr '\0' x >"$tmp/value"
redis-cli -p "$port" -x SET 'key:__rand_int__' <"$tmp/value" >/dev/null
[[ $(redis-cli -p "$port" STRLEN 'key:__rand_int__') == "$value_bytes" ]] ||
  die "could not store the redis-benchmark value"
rb() { # rb CLIENTS REQUESTS -> requests/s
  redis-benchmark -p "$port" -t get -d "$value_bytes" -c "$1" -n "$2" -q |
    tr '\r' '\n' | awk '/^GET:/ && /requests per second/ {print $2}' | tail -n 1
}
echo "== redis-benchmark -t get -d $value_bytes"
rb1=$(rb 1 50000)
rb32=$(rb 32 200000)
echo "   -c 1:  $rb1 requests/s"
echo "   -c 32: $rb32 requests/s"

# 5. The seed's Redis path, with redis-py, on shared_bench's requests.
echo "== seed design's Redis path (redis-py $("$py" -c 'import redis; print(redis.__version__)'))"
"$py" - "$port" "$seed_seconds" "$value_bytes" >"$tmp/seed.txt" <<'EOF'
import hashlib, json, sys, threading, time
import redis

port, seconds, value_bytes = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
N = 1000
MODEL = "openai/gpt-4o-mini"


def request_body(i):  # RequestBody of shared_bench.cc
    return ('{"model":"' + MODEL + '","messages":[{"role":"system","content":'
            '"You are a concise assistant for a travel booking site. Answer in '
            'two sentences."},{"role":"user","content":"Question ' + str(i) +
            ': which documents do I need to board a flight from Paris to '
            'Berlin?"}],"temperature":0,"max_tokens":256}')


def response_body(i):  # ResponseBody of shared_bench.cc
    head = ('{"id":"gen-' + str(1700000000 + i) + '","object":"chat.completion"'
            ',"created":1700000000,"model":"openai/gpt-4o-mini-2024-07-18",'
            '"provider":"OpenAI","choices":[{"index":0,"logprobs":null,'
            '"finish_reason":"stop","native_finish_reason":"stop","message":'
            '{"role":"assistant","content":"')
    tail = ('","refusal":null}}],"usage":{"prompt_tokens":48,'
            '"completion_tokens":180,"total_tokens":228}}')
    filler = ("You need a valid passport or national identity card; within "
              "the Schengen area no visa is required for EU citizens. ")
    want = value_bytes - len(head) - len(tail)
    content = (filler * (want // len(filler) + 1))[:want]
    return head + content + tail


def seed_key(model, messages, kwargs):  # the seed's key, verbatim
    return "or:" + hashlib.sha256(json.dumps(
        {'m': model, 'msgs': messages, **kwargs}, sort_keys=True).encode()).hexdigest()


# The seed's callers hold model, messages and kwargs as Python objects.
calls = []
for i in range(N):
    req = json.loads(request_body(i))
    model, messages = req.pop("model"), req.pop("messages")
    calls.append((model, messages, req))

pool = redis.ConnectionPool(host="127.0.0.1", port=port, max_connections=64)
r = redis.Redis(connection_pool=pool)
for i, (model, messages, kwargs) in enumerate(calls):
    body = response_body(i)
    assert len(body) == value_bytes
    r.set(seed_key(model, messages, kwargs), body)


def hit(model, messages, kwargs):  # the seed's hit path
    key = seed_key(model, messages, kwargs)
    cached = r.get(key)
    if cached is None:
        raise AssertionError("not a hit")
    return json.loads(cached)


def run(threads):
    counts = [0] * threads
    start_line = threading.Barrier(threads + 1)
    stop = [False]

    def worker(t):
        n, i = 0, t * 31
        start_line.wait()
        while not stop[0]:
            hit(*calls[i % N])
            i += 1
            n += 1
        counts[t] = n

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    start_line.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop[0] = True
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


hit(*calls[0])  # warm the connection
print("seed1", run(1))
print("seed32", run(32))
EOF
seed1=$(awk '$1 == "seed1" {print $2}' "$tmp/seed.txt")
seed32=$(awk '$1 == "seed32" {print $2}' "$tmp/seed.txt")
printf '   1 caller:   %.0f hits/s\n   32 threads: %.0f hits/s\n' "$seed1" "$seed32"

# 7. The table.
echo
status=0
{
"$py" - "$tmp/shared.json" "$seed1" "$seed32" "$rb1" "$rb32" "$value_bytes" \
  "${entry_bytes:-?}" <<'EOF'
import json, sys

path, seed1, seed32, rb1, rb32 = sys.argv[1], *map(float, sys.argv[2:6])
value_bytes, entry_bytes = sys.argv[6], sys.argv[7]
with open(path) as f:
    data = json.load(f)
rows = {}
for b in data["benchmarks"]:
    if b.get("error_occurred"):
        sys.exit("shared_bench: %s: %s" % (b["name"], b.get("error_message")))
    rows[b["name"]] = b


def rate(v):
    return "-" if v is None else "{:,.0f}".format(v)


def ratio(a, b):
    return "-" if a is None or b is None or not b else "%.2fx" % (a / b)


def find(prefix, threads):
    """The row named prefix/..., with threads:N at its end if given."""
    for n, b in rows.items():
        if n.startswith(prefix + "/") and (
                threads is None or n.endswith("threads:%d" % threads)):
            return b
    return None


pipe1 = (find("BM_SharedTierHit", 1) or {}).get("items_per_second")
pipe32 = (find("BM_SharedTierHit", 32) or {}).get("items_per_second")
async1 = (find("BM_SharedTierHitAsync/window:1", None) or {}).get(
    "items_per_second")
async32 = (find("BM_SharedTierHitAsync/window:32", None) or {}).get(
    "items_per_second")
raw1 = (find("BM_SharedTierGetRaw", 1) or {}).get("items_per_second")
raw32 = (find("BM_SharedTierGetRaw", 32) or {}).get("items_per_second")
mem = find("BM_MemoryTierHit", 1) or {}
shared = find("BM_SharedTierHit", 1) or {}

print("Hits/s, %s-byte response (Redis value: redis-benchmark %s bytes, "
      "shared-tier entry %s bytes)" % (value_bytes, value_bytes, entry_bytes))
head = ("", "1 caller", "vs seed @1", "32 callers", "vs redis-benchmark @32")
table = [
    ("seed redis-py path (GET + json.loads)", rate(seed1), "1.00x",
     rate(seed32), ratio(seed32, rb32)),
    ("redis-benchmark -t get", rate(rb1), ratio(rb1, seed1), rate(rb32),
     "1.00x"),
    ("llmcache shared tier (pipeline)", rate(pipe1), ratio(pipe1, seed1),
     rate(pipe32), ratio(pipe32, rb32)),
    ("llmcache shared tier (async, 1 caller, 1 | 32 in flight)", rate(async1),
     ratio(async1, seed1), rate(async32), ratio(async32, rb32)),
    ("RedisTier::Get alone (reference)", rate(raw1), ratio(raw1, seed1),
     rate(raw32), ratio(raw32, rb32)),
]
widths = [max(len(str(r[i])) for r in table + [head]) for i in range(5)]
for r in [head] + table:
    print("  " + "  ".join(str(c).ljust(widths[0]) if i == 0 else
                           str(c).rjust(widths[i]) for i, c in enumerate(r)))

print()
print("Latency of a hit, 1 caller (us)")
mp50, mp99 = mem.get("p50_us"), mem.get("p99_us")
sp50, sp99 = shared.get("p50_us"), shared.get("p99_us")
fmt = lambda v: "-" if v is None else "%.1f" % v
diff = lambda a, b: None if a is None or b is None else a - b
lat = [("", "p50", "p99"),
       ("memory-tier hit", fmt(mp50), fmt(mp99)),
       ("shared-tier hit (local tiers cold)", fmt(sp50), fmt(sp99)),
       ("added by the shared tier", fmt(diff(sp50, mp50)),
        fmt(diff(sp99, mp99)))]
w = [max(len(r[i]) for r in lat) for i in range(3)]
for r in lat:
    print("  " + r[0].ljust(w[0]) + "  " + r[1].rjust(w[1]) + "  " +
          r[2].rjust(w[2]))

print()
ok = True
for what, value, base, target in (
        ("shared tier @1 vs seed redis-py @1", pipe1, seed1, 10.0),
        ("shared tier @32 vs redis-benchmark @32", pipe32, rb32, 0.5)):
    r = None if value is None else value / base
    met = r is not None and r >= target
    ok = ok and met
    print("  %-40s %s (target >= %s) %s" % (
        what, "-" if r is None else "%.2fx" % r,
        "%gx" % target if target >= 1 else "%d%%" % (target * 100),
        "MET" if met else "NOT MET"))
sys.exit(0 if ok else 3)
EOF
} || status=$?
if [[ $status == 3 && ${REQUIRE_TARGET:-0} != 1 ]]; then status=0; fi
exit "$status"
