-- wrk script for bench/proxy_bench.sh: POSTs one chat-completion body.
--   BENCH_BODY_FILE  the JSON request body (read once per wrk thread)
--   BENCH_API_KEY    the bearer token (from the environment only, never a file)
-- At the end prints one machine-readable line (latencies in microseconds):
--   WRK_RESULT requests=N duration_us=N rps=F p50_us=N p90_us=N p99_us=N
--              connect=N read=N write=N timeout=N status=N

local file = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
local body = file:read("*a")
file:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_API_KEY") or "sk-bench-local")

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d " ..
    "connect=%d read=%d write=%d timeout=%d status=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    e.connect, e.read, e.write, e.timeout, e.status))
end
