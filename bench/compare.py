#!/usr/bin/env python3
"""Prints each headline llmcache engine figure beside its baseline, as a ratio.

Runs the Release benchmark binary (engine_bench) with JSON output, measures
the baselines itself on the same kind of requests, and prints

    figure | llmcache | baseline | ratio | target | met?

Baselines:
  * BM_Sha256/<bytes>: raw SHA-256 of the body, for BM_RequestKey/<bytes>.
  * The seed's in-memory algorithm, in Python:
        req = json.loads(body)
        key = hashlib.sha256(
            json.dumps(req, sort_keys=True).encode()).hexdigest()
        response = store[key]
    timed over 2 KiB request bodies (text, as a proxy receives them).
  * Its Redis variant: the same key, then `GET or:<key>` against a
    redis-server this script starts on 127.0.0.1 (free port, --save "",
    --appendonly no) and always stops; one client, no pipelining.

The requests and responses are byte-for-byte those of BM_HitPath/2048:
MakeChatRequest(2048, seed) of bench/bench_data.cc for seeds 0..255 (ported
below: system prompt, user/assistant turns of English-like prose,
temperature 0, function tools) and store_bench.cc's Response(seed).

Benchmarks that do not exist (yet) are reported as "n/a".

Usage:
  bench/compare.py [--bench-binary build/release/bench/engine_bench]
  bench/compare.py --bench-json results.json   # skip running the binary
  bench/compare.py --json figures.json         # also write the figures
  bench/compare.py --check-requests FILE       # FILE: C++ requests, seeds 0..

Needs Python 3.9+ and the standard library; uses python3-redis (Debian's
package, e.g. /usr/bin/python3) for the Redis baseline when it can be
imported, otherwise a minimal RESP client on a socket (noted in the output).
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

MASK64 = (1 << 64) - 1

# ---------------------------------------------------------------------------
# Request generator: a faithful port of bench/bench_data.cc (MakeChatRequest).
# Keep the two in step; `--check-requests FILE` compares against bytes the
# C++ generator wrote.
# ---------------------------------------------------------------------------


class _Rng:
    """SplitMix64, as bench_data.cc's Rng."""

    def __init__(self, seed):
        self.state = seed & MASK64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def between(self, lo, hi):
        return lo + self.next() % (hi - lo + 1)

    def one_in(self, n):
        return self.next() % n == 0


_MODELS = (
    "openai/gpt-4o-mini", "anthropic/claude-sonnet-4.5",
    "google/gemini-2.5-flash", "meta-llama/llama-3.3-70b-instruct",
    "mistralai/mistral-large-2411", "deepseek/deepseek-chat-v3.1",
)

_WORDS = """
the of and to a in is that for it as with was on be at by this have from or
one had not but what all were when we there can an your which their said if
do will each about how up out them then she many some so these would other
into has more her two like him see time could no make than first been its
who now people my made over did down only way find use may water long little
very after words called just where most know get through back much before go
good new write our used me man too any day same right look think also around
another came come work three word must because does part even place well
such function request cache response model example question answer database
server important different following something however available performance
configuration application together understand information especially
probably approach explain summary detail problem solution carefully consider
result simple memory latency throughput document version language
""".split()
assert len(_WORDS) == 170

_SYSTEM_PROMPTS = (
    "You are a helpful assistant. Answer concisely and accurately.",
    "You are an expert software engineer. Explain your reasoning step by "
    "step and include short code examples when they help.",
    "You are a careful technical writer. Use plain English, short "
    "paragraphs and no marketing language.",
    "You are a research assistant. Cite the facts you rely on and say so "
    "when you are unsure.",
)

_TOOLS = (
    '{"type":"function","function":{"name":"get_weather","description":"Get the current weather for a city.","parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name, e.g. Paris"},"unit":{"type":"string","enum":["celsius","fahrenheit"],"description":"Temperature unit"}},"required":["city"],"additionalProperties":false}}}',  # noqa: E501
    '{"type":"function","function":{"name":"search_documents","description":"Full-text search over the user\'s documents. Returns the best matching passages.","parameters":{"type":"object","properties":{"query":{"type":"string","description":"Search terms"},"limit":{"type":"integer","minimum":1,"maximum":50,"default":10},"filters":{"type":"object","properties":{"author":{"type":"string"},"after":{"type":"string","format":"date"}}}},"required":["query"]}}}',  # noqa: E501
    '{"type":"function","function":{"name":"run_sql","description":"Run a read-only SQL query against the analytics database.","parameters":{"type":"object","properties":{"sql":{"type":"string","description":"A single SELECT statement"},"timeout_ms":{"type":"number","minimum":100,"maximum":30000}},"required":["sql"],"additionalProperties":false},"strict":true}}',  # noqa: E501
    '{"type":"function","function":{"name":"send_email","description":"Send an email on behalf of the user after they confirmed it.","parameters":{"type":"object","properties":{"to":{"type":"array","items":{"type":"string","format":"email"}},"subject":{"type":"string"},"body":{"type":"string"},"priority":{"type":"string","enum":["low","normal","high"]}},"required":["to","subject","body"]}}}',  # noqa: E501
)

_FILLER = "etcetera.etcetera.etcetera."


def _append_prose(rng, n, out):
    """Appends exactly n bytes of escaped JSON string content to list out."""
    size = sum(len(p) for p in out)
    goal = size + n
    sentence_start = True
    words_in_sentence = 0
    sentence_length = rng.between(6, 18)
    while size < goal:
        token = "" if sentence_start else " "
        word = _WORDS[rng.next() % len(_WORDS)]
        quoted = (not sentence_start) and rng.one_in(40)
        if quoted:
            token += '\\"'
        if sentence_start:
            token += word[0].upper() + word[1:]
        else:
            token += word
        if quoted:
            token += '\\"'
        sentence_start = False
        words_in_sentence += 1
        if words_in_sentence == sentence_length:
            end = rng.next() % 10
            token += "?" if end == 0 else ("!" if end == 1 else ".")
            token += "\\n\\n" if rng.one_in(5) else " "
            sentence_start = True
            words_in_sentence = 0
            sentence_length = rng.between(6, 18)
        elif rng.one_in(12):
            token += ","
        room = goal - size
        if len(token) <= room:
            out.append(token)
            size += len(token)
        else:
            piece = _FILLER[:min(room, 27)]
            out.append(piece + "." * (room - len(piece)))
            size = goal


def make_chat_request(target_bytes, seed):
    """MakeChatRequest(target_bytes, seed) of bench/bench_data.cc."""
    rng = _Rng(seed ^ 0x6C6C6D6361636865)
    model = _MODELS[rng.next() % len(_MODELS)]
    max_tokens = 256 << rng.between(0, 4)
    head = '{"model":"' + model + '","messages":['
    tail = '],"temperature":0,"max_tokens":' + str(max_tokens)
    if target_bytes >= 1500:
        count = min(1 + target_bytes // 4096, len(_TOOLS))
        first = rng.next() % len(_TOOLS)
        tail += ',"tools":[' + ",".join(
            _TOOLS[(first + i) % len(_TOOLS)] for i in range(count))
        tail += '],"tool_choice":"auto"'
    tail += "}"

    out = [head, '{"role":"system","content":"',
           _SYSTEM_PROMPTS[rng.next() % len(_SYSTEM_PROMPTS)], '"}']

    def overhead(role):
        return len('{"role":"","content":""}') + len(role)

    def append_message(role, text_bytes):
        out.append('{"role":"' + role + '","content":"')
        _append_prose(rng, text_bytes, out)
        out.append('"}')

    user_overhead = 1 + overhead("user")
    assistant_overhead = 1 + overhead("assistant")
    min_final_text = 40
    while True:
        used = sum(len(p) for p in out) + len(tail)
        remaining = target_bytes - used if target_bytes > used else 0
        user_text = rng.between(60, 600)
        assistant_text = rng.between(200, 2500)
        if remaining < (user_overhead + user_text + assistant_overhead +
                        assistant_text + user_overhead + min_final_text):
            break
        out.append(",")
        append_message("user", user_text)
        out.append(",")
        append_message("assistant", assistant_text)
    used = sum(len(p) for p in out) + len(tail) + user_overhead
    final_text = target_bytes - used if target_bytes > used + 1 else 1
    out.append(",")
    append_message("user", final_text)
    out.append(tail)
    return "".join(out)


def make_response(i):
    """Response(i) of bench/store_bench.cc: the ~1 KiB body a hit returns."""
    body = ('{"id":"gen-' + str(i) + '","object":"chat.completion",'
            '"choices":[{"index":0,"message":{"role":"assistant","content":"')
    while len(body) + 40 < 1024:
        body += "lorem ipsum dolor "
    return body + '"},"finish_reason":"stop"}]}'


# ---------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------


def seed_key(body):
    """The seed's key: SHA-256 of the re-serialised, sorted request."""
    req = json.loads(body)
    return hashlib.sha256(json.dumps(req, sort_keys=True).encode()).hexdigest()


def time_rate(fn, items, min_seconds, repetitions):
    """Best rate (calls of fn per second) over `repetitions` timed runs, each
    cycling over `items` for at least min_seconds. The best run, not the
    median: the baseline gets every benefit of the doubt."""
    rates = []
    for _ in range(repetitions):
        calls = 0
        start = time.perf_counter()
        while True:
            for item in items:
                fn(item)
            calls += len(items)
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        rates.append(calls / elapsed)
    return max(rates)


def python_seed_hits_per_second(bodies, responses, min_seconds, repetitions):
    store = {seed_key(b): r for b, r in zip(bodies, responses)}

    def hit(body):
        if store[seed_key(body)] is None:
            raise AssertionError("not a hit")

    return time_rate(hit, bodies, min_seconds, repetitions)


class _RespClient:
    """Minimal RESP client (GET/SET/PING), used only without python3-redis."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def _command(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(parts))
        line = self.file.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.file.read(n + 2)
            return data[:-2]
        if kind == b"-":
            raise RuntimeError("redis error: " + rest.decode())
        return rest

    def ping(self):
        return self._command("PING") == b"PONG"

    def get(self, key):
        return self._command("GET", key)

    def set(self, key, value):
        return self._command("SET", key, value)

    def close(self):
        self.file.close()
        self.sock.close()


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A throw-away redis-server on 127.0.0.1; stop() is idempotent."""

    def __init__(self, binary):
        self.binary = binary
        self.proc = None
        self.port = None
        self.dir = None
        self.log = None

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="llmcache-compare-redis-")
        self.log = os.path.join(self.dir, "redis.log")
        last_error = None
        for _ in range(3):  # the free port can be taken before redis binds
            self.port = _free_port()
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    [self.binary, "--port", str(self.port),
                     "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                     "--dir", self.dir, "--daemonize", "no"],
                    stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    with socket.create_connection(("127.0.0.1", self.port),
                                                  timeout=0.2):
                        return
                except OSError as e:
                    last_error = e
                    time.sleep(0.02)
            self.stop_process()
        raise RuntimeError("redis-server did not start (%s); log:\n%s" %
                           (last_error, self._log_tail()))

    def _log_tail(self):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-10:])
        except OSError:
            return "(no log)"

    def stop_process(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self):
        self.stop_process()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def redis_hits_per_second(binary, bodies, responses, min_seconds,
                          repetitions):
    """Returns (hits/s, client description)."""
    server = RedisServer(binary)
    client = None
    try:
        server.start()
        try:
            import redis  # python3-redis
            client = redis.Redis(host="127.0.0.1", port=server.port)
            description = "redis-py %s, 1 client" % redis.__version__
        except ImportError:
            client = _RespClient(server.port)
            description = ("built-in RESP client, 1 client (python3-redis "
                           "not importable by %s)" % sys.executable)
        if not client.ping():
            raise RuntimeError("redis did not answer PING")
        for b, r in zip(bodies, responses):
            client.set("or:" + seed_key(b), r)

        def hit(body):
            if client.get("or:" + seed_key(body)) is None:
                raise AssertionError("not a hit")

        rate = time_rate(hit, bodies, min_seconds, repetitions)
        return rate, description
    finally:
        if client is not None:
            try:
                client.close()
            except Exception:  # pylint: disable=broad-except
                pass
        server.stop()


# ---------------------------------------------------------------------------
# Benchmark results
# ---------------------------------------------------------------------------

BENCH_FILTER = (r"^(BM_Sha256|BM_RequestKey|BM_Lookup|BM_Insert|BM_HitPath|"
                r"BM_HitPath_RocksDbOnly|BM_FlushModel)(/|$)")
SIZES = (256, 2048, 16384, 131072)
_TIME_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


# The memory tier's lookups take ~0.4 us each: a moment of a shared host's
# slowness moves them most (1.17M/s in one full run, 2.39M/s on their own
# right after). They are run again three times and the median is kept.
MEMORY_LOOKUP_FILTER = r"^BM_Lookup/memory_hit(/|$)"


def run_benchmarks(binary, extra_args, bench_filter=BENCH_FILTER):
    """Runs the binary; returns (parsed JSON or None, error or None)."""
    if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
        return None, "benchmark binary %s not found (build the release " \
                     "preset, or pass --bench-binary / --bench-json)" % binary
    cmd = [binary, "--benchmark_format=json",
           "--benchmark_filter=" + bench_filter] + list(extra_args)
    print("running: " + " ".join(cmd), file=sys.stderr)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          check=False)
    text = proc.stdout.decode(errors="replace")
    data = _parse_json(text)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        if proc.returncode < 0:
            try:
                name = signal.Signals(-proc.returncode).name
                how = "was killed by " + name
            except ValueError:
                how = "was killed by signal %d" % -proc.returncode
        else:
            how = "exited with %d" % proc.returncode
        complete = data is not None and not data.get("partial")
        msg = "benchmark binary %s%s%s" % (
            how, " after writing complete results" if complete else "",
            (" (last stderr line: %s)" % err[-1]) if err else "")
        return data, msg
    if data is None:
        return None, "benchmark output is not JSON"
    return data, None


def cmake_build_type(binary):
    """CMAKE_BUILD_TYPE of the build tree holding `binary`, or None."""
    d = os.path.dirname(os.path.abspath(binary))
    for _ in range(4):
        cache = os.path.join(d, "CMakeCache.txt")
        if os.path.isfile(cache):
            with open(cache, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith("CMAKE_BUILD_TYPE:"):
                        return line.split("=", 1)[1].strip()
            return None
        d = os.path.dirname(d)
    return None


def _parse_json(text):
    try:
        return json.loads(text)
    except ValueError:
        pass
    # A benchmark that aborted leaves the JSON unfinished: keep the rows that
    # were complete.
    start = text.find('"benchmarks"')
    if start < 0:
        return None
    start = text.find("[", start)
    rows, decoder, pos = [], json.JSONDecoder(), start + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] != "{":
            break
        try:
            row, pos = decoder.raw_decode(text, pos)
        except ValueError:
            break
        rows.append(row)
    return {"benchmarks": rows, "partial": True}


class Results:
    """Benchmark rows by name; medians of repetitions when present."""

    def __init__(self, data):
        self.rows = []
        self.context = (data or {}).get("context", {})
        by_name = {}
        aggregates = {}
        for row in (data or {}).get("benchmarks", []):
            if row.get("error_occurred"):
                continue
            name = row.get("run_name") or row.get("name", "")
            if row.get("run_type") == "aggregate":
                if row.get("aggregate_name") == "median":
                    aggregates[name] = row
                continue
            by_name.setdefault(name, []).append(row)
        for name, rows in by_name.items():
            self.rows.append(aggregates.get(name) or _median_row(rows))
        for name, row in aggregates.items():
            if name not in by_name:
                self.rows.append(row)
        self.errors = [
            (row.get("name", "?"), row.get("error_message", ""))
            for row in (data or {}).get("benchmarks", [])
            if row.get("error_occurred")]

    @staticmethod
    def _name(row):
        return row.get("run_name") or row.get("name", "")

    def find(self, name):
        """The row named `name`, or `name/<modifiers>` (e.g. /real_time)."""
        for row in self.rows:
            n = self._name(row)
            if n == name or n.startswith(name + "/"):
                return row
        return None

    def family(self, prefix):
        return [r for r in self.rows
                if self._name(r) == prefix
                or self._name(r).startswith(prefix + "/")]


def _median_row(rows):
    if len(rows) == 1:
        return rows[0]
    row = dict(rows[0])
    for field in ("bytes_per_second", "items_per_second", "real_time",
                  "cpu_time"):
        values = [r[field] for r in rows if field in r]
        if values:
            row[field] = statistics.median(values)
    return row


def real_time_ms(row):
    if row is None or "real_time" not in row:
        return None
    unit = _TIME_UNIT_MS.get(row.get("time_unit", "ns"), 1e-6)
    return row["real_time"] * unit


def field(row, name):
    if row is None:
        return None
    value = row.get(name)
    return float(value) if isinstance(value, (int, float)) else None


def pick_lookup(rows, explicit, include, exclude=()):
    """The BM_Lookup row named `explicit`, else the first whose name (or
    label) matches `include` and none of `exclude` (regexes)."""
    for row in rows:
        name = Results._name(row)
        if explicit:
            if name == explicit or name.startswith(explicit + "/"):
                return row
            continue
        text = (name + " " + row.get("label", "")).lower()
        if re.search(include, text) and not any(
                re.search(x, text) for x in exclude):
            return row
    return None


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------


def num(v):
    """About three significant digits, never in exponent notation."""
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.2f" % v


def fmt_rate(v, unit):
    if v is None:
        return "n/a"
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return "%s %s%s" % (num(v / scale), prefix, unit)
    return "%s %s" % (num(v), unit)


def fmt_bytes(v):
    if v is None:
        return "n/a"
    for scale, prefix in ((1e9, "GB/s"), (1e6, "MB/s"), (1e3, "kB/s")):
        if v >= scale:
            return "%s %s" % (num(v / scale), prefix)
    return "%s B/s" % num(v)


def fmt_ms(v):
    return "n/a" if v is None else "%s ms" % num(v)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r):
    return "n/a" if r is None else "%.2fx" % r


def verdict(value, ok):
    if value is None:
        return "n/a"
    return "yes" if ok else "NO"


def build_figures(results, seed_rate, redis_rate, args):
    figures = []

    def add(figure, value, text, base, base_text, r, target, met,
            unit=None):
        figures.append({
            "figure": figure, "llmcache": value, "llmcache_text": text,
            "baseline": base, "baseline_text": base_text, "ratio": r,
            "target": target, "met": met, "unit": unit,
            "has_baseline": base_text != "-",
        })

    for size in SIZES:
        key_row = results.find("BM_RequestKey/%d" % size)
        key = field(key_row, "bytes_per_second")
        sha = field(results.find("BM_Sha256/%d" % size), "bytes_per_second")
        # The ratio the benchmark measures itself (vs_sha256: short batches
        # of both on the same body, interleaved, the fastest of each), so
        # that a change of the host's speed between the two rows does not
        # count; the rates beside it are the rows' own.
        r = field(key_row, "vs_sha256")
        if r is None:
            r = ratio(key, sha)
        # The targets: 0.65x raw SHA-256 at 2 KiB, 0.75x at 16 KiB.
        want = {2048: 0.65, 16384: 0.75}.get(size)
        add("request key %d B (bytes/s) vs SHA-256" % size, key,
            fmt_bytes(key), sha, "sha256 " + fmt_bytes(sha), r,
            (">= %.2fx SHA-256" % want) if want else "-",
            (None if r is None else r >= want) if want else None,
            "bytes/s")

    hit = field(results.find("BM_HitPath/2048"), "items_per_second")
    r = ratio(hit, seed_rate)
    add("hit path 2 KiB (hits/s) vs Python seed", hit, fmt_rate(hit, "/s"),
        seed_rate, "python " + fmt_rate(seed_rate, "/s"), r, ">= 4x",
        None if r is None else r >= 4, "hits/s")
    r = ratio(hit, redis_rate)
    add("hit path 2 KiB (hits/s) vs Redis variant", hit, fmt_rate(hit, "/s"),
        redis_rate, "redis " + fmt_rate(redis_rate, "/s"), r, ">= 10x",
        None if r is None else r >= 10, "hits/s")

    cold = field(results.find("BM_HitPath_RocksDbOnly/2048"),
                 "items_per_second")
    r = ratio(cold, redis_rate)
    add("hit path 2 KiB, RocksDB only (hits/s) vs Redis variant", cold,
        fmt_rate(cold, "/s"), redis_rate,
        "redis " + fmt_rate(redis_rate, "/s"), r, "-", None, "hits/s")

    lookups = results.family("BM_Lookup")
    single = (r"threads:[2-9]", r"threads:\d\d")
    mem_row = pick_lookup(lookups, args.memory_lookup,
                          r"mem|tier|hot", single + (r"rocks|disk|miss",))
    rocks_row = pick_lookup(lookups, args.rocks_lookup,
                            r"rocks|disk|cold|db", single + (r"miss",))
    mem = field(mem_row, "items_per_second")
    rocks = field(rocks_row, "items_per_second")
    add("memory-tier lookup, 1 thread (items/s) [%s]" %
        (Results._name(mem_row) if mem_row else "not found"),
        mem, fmt_rate(mem, "/s"), rocks,
        "rocksdb-only " + fmt_rate(rocks, "/s") +
        (" [%s]" % Results._name(rocks_row) if rocks_row else ""),
        ratio(mem, rocks), ">= 2M/s", None if mem is None else mem >= 2e6,
        "items/s")
    # Two threads on the same tier: the aggregate rate must not fall below
    # one thread's (hits write nothing shared).
    mem2_row = None
    if mem_row is not None:
        base = Results._name(mem_row).split("/threads:")[0]
        for r in lookups:
            n = Results._name(r)
            if n.startswith(base) and "threads:2" in n:
                mem2_row = r
    mem2 = field(mem2_row, "items_per_second")
    r = ratio(mem2, mem)
    add("memory-tier lookup, 2 threads (items/s, both threads) vs 1 thread",
        mem2, fmt_rate(mem2, "/s"), mem, "1 thread " + fmt_rate(mem, "/s"),
        r, ">= 1.0x", None if r is None else r >= 1.0, "items/s")

    ins = field(results.find("BM_Insert"), "items_per_second")
    add("insert (items/s)", ins, fmt_rate(ins, "/s"), None, "-", None, "-",
        None, "items/s")

    flush = real_time_ms(results.find("BM_FlushModel/1000000"))
    add("flush of a 1M-entry model (ms)", flush, fmt_ms(flush), None, "-",
        None, "< 50 ms", None if flush is None else flush < 50, "ms")
    return figures


def print_table(headers, rows):
    widths = [max(len(str(r[i])) for r in [headers] + rows)
              for i in range(len(headers))]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    default_binary = os.path.join(os.path.dirname(here), "build", "release",
                                  "bench", "engine_bench")
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench-binary", default=default_binary,
                   help="engine_bench to run (default: %(default)s)")
    p.add_argument("--bench-json", metavar="FILE",
                   help="read Google Benchmark JSON from FILE instead of "
                        "running the binary")
    p.add_argument("--bench-arg", action="append", default=[],
                   metavar="ARG", help="extra argument for the binary, e.g. "
                   "--bench-arg=--benchmark_repetitions=3 (repeatable)")
    p.add_argument("--json", metavar="OUT",
                   help="also write the figures as JSON to OUT")
    p.add_argument("--requests", type=int, default=256,
                   help="distinct 2 KiB requests in the baselines "
                        "(default: %(default)s)")
    p.add_argument("--request-bytes", type=int, default=2048)
    p.add_argument("--min-time", type=float, default=1.0,
                   help="seconds per baseline timing run (default: "
                        "%(default)s)")
    p.add_argument("--repetitions", type=int, default=3,
                   help="baseline timing runs; the best counts (default: "
                        "%(default)s)")
    p.add_argument("--redis-server", default=shutil.which("redis-server") or
                   "redis-server", help="redis-server binary")
    p.add_argument("--no-redis", action="store_true",
                   help="skip the Redis baseline (reported as n/a)")
    p.add_argument("--memory-lookup", metavar="NAME",
                   help="the BM_Lookup row of a memory-tier hit on one thread "
                        "(default: guessed from the names)")
    p.add_argument("--rocks-lookup", metavar="NAME",
                   help="the BM_Lookup row of a RocksDB-only hit on one "
                        "thread (default: guessed from the names)")
    p.add_argument("--fail-on-miss", action="store_true",
                   help="exit 1 when a measured figure misses its target")
    p.add_argument("--check-requests", metavar="FILE",
                   help="FILE holds MakeChatRequest(--request-bytes, seed) "
                        "for seeds 0.. one per line, from the C++ generator; "
                        "compare and exit")
    args = p.parse_args(argv)

    if args.check_requests:
        with open(args.check_requests, encoding="utf-8") as f:
            lines = f.read().split("\n")
        lines = [ln for ln in lines if ln]
        bad = [i for i, ln in enumerate(lines)
               if make_chat_request(args.request_bytes, i) != ln]
        print("%d of %d requests identical to the C++ generator" %
              (len(lines) - len(bad), len(lines)))
        return 1 if bad or not lines else 0

    notes = []
    # Benchmarks first: the baselines below would only compete for the CPU.
    if args.bench_json:
        try:
            with open(args.bench_json, encoding="utf-8") as f:
                data = _parse_json(f.read())
            error = None if data is not None else "not JSON"
        except OSError as e:
            data, error = None, str(e)
        if error:
            notes.append("could not read %s: %s" % (args.bench_json, error))
    else:
        data, error = run_benchmarks(args.bench_binary, args.bench_arg)
        if error:
            notes.append(error)
        elif data and not any("repetitions" in a for a in args.bench_arg):
            again, again_error = run_benchmarks(
                args.bench_binary,
                list(args.bench_arg) + ["--benchmark_repetitions=3"],
                MEMORY_LOOKUP_FILTER)
            if again and not again_error and again.get("benchmarks"):
                data["benchmarks"] = [
                    r for r in data.get("benchmarks", [])
                    if not re.match(MEMORY_LOOKUP_FILTER,
                                    r.get("run_name") or r.get("name", ""))
                ] + again["benchmarks"]
                notes.append("memory-tier lookups: the median of three "
                             "runs of their own")
            elif again_error:
                notes.append(again_error)
    if data and data.get("partial"):
        notes.append("benchmark output was cut short; using complete rows")
    results = Results(data)
    for name, message in results.errors:
        notes.append("%s failed: %s" % (name, message))
    if not args.bench_json:
        build_type = cmake_build_type(args.bench_binary)
        if build_type is not None and build_type not in ("Release",
                                                         "RelWithDebInfo"):
            notes.append("%s is a '%s' build: its figures are not "
                         "representative (use the release preset)" %
                         (args.bench_binary, build_type or "no build type"))

    # Baselines on 2 KiB requests (the seed kept whole responses).
    # The requests and responses of BM_HitPath: seeds 0..255.
    bodies = [make_chat_request(args.request_bytes, i)
              for i in range(args.requests)]
    sizes = [len(b.encode()) for b in bodies]
    if not all(abs(s - args.request_bytes) <= args.request_bytes * 0.05
               for s in sizes):
        notes.append("request sizes %d..%d are not within 5%% of %d" %
                     (min(sizes), max(sizes), args.request_bytes))
    responses = [make_response(i) for i in range(args.requests)]
    seed_rate = python_seed_hits_per_second(bodies, responses, args.min_time,
                                            args.repetitions)
    redis_rate = None
    redis_desc = "skipped (--no-redis)"
    if not args.no_redis:
        try:
            redis_rate, redis_desc = redis_hits_per_second(
                args.redis_server, bodies, responses, args.min_time,
                args.repetitions)
        except Exception as e:  # pylint: disable=broad-except
            redis_desc = "failed: %s" % e
            notes.append("Redis baseline " + redis_desc)

    figures = build_figures(results, seed_rate, redis_rate, args)
    print_table(
        ["figure", "llmcache", "baseline", "ratio", "target", "met?"],
        [[f["figure"], f["llmcache_text"], f["baseline_text"],
          fmt_ratio(f["ratio"]) if f["has_baseline"] else "-",
          f["target"], verdict(f["llmcache"], f["met"])
          if f["met"] is not None or f["llmcache"] is None else "-"]
         for f in figures])

    lookups = results.family("BM_Lookup")
    print()
    print("BM_Lookup rows:")
    if lookups:
        print_table(["benchmark", "items/s", "real time"],
                    [[Results._name(r),
                      fmt_rate(field(r, "items_per_second"), "/s"),
                      "%s %s" % (num(r.get("real_time", 0)),
                                 r.get("time_unit", "ns"))]
                     for r in lookups])
    else:
        print("  n/a")

    print()
    print("baselines: %d requests of %d..%d bytes; python seed %s (%s); "
          "redis %s (%s)" % (len(bodies), min(sizes), max(sizes),
                             fmt_rate(seed_rate, "hits/s"),
                             sys.implementation.name + " " +
                             ".".join(map(str, sys.version_info[:3])),
                             fmt_rate(redis_rate, "hits/s"), redis_desc))
    for size in (2048, 16384):
        row = results.find("BM_RequestKey/%d" % size)
        sha = field(results.find("BM_Sha256/%d" % size), "bytes_per_second")
        separate = ratio(field(row, "bytes_per_second"), sha)
        if row is not None and "vs_sha256" in row and separate is not None:
            notes.append("request keys of %d B: the ratio is the benchmark's "
                         "own interleaved vs_sha256 (%.2f); the two rows' "
                         "rates, measured apart, give %.2f" %
                         (size, row["vs_sha256"], separate))
    for n in notes:
        print("note: " + n)

    if args.json:
        out = {
            "figures": [{k: v for k, v in f.items()
                         if not k.endswith("_text") and k != "has_baseline"}
                        for f in figures],
            "lookups": [{"name": Results._name(r),
                         "items_per_second": field(r, "items_per_second")}
                        for r in lookups],
            "baselines": {
                "python_seed_hits_per_second": seed_rate,
                "redis_hits_per_second": redis_rate,
                "redis_client": redis_desc,
                "requests": len(bodies),
                "request_bytes": [min(sizes), max(sizes)],
            },
            "context": results.context,
            "notes": notes,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)
            f.write("\n")

    missed = [f for f in figures if f["met"] is False]
    return 1 if args.fail_on_miss and missed else 0


if __name__ == "__main__":
    sys.exit(main())
