#!/usr/bin/env python3
"""Every headline llmcache figure beside its baseline, in one run.

Runs, one after the other (never two at once: they would share the CPUs):

  engine   bench/compare.py: request keys vs raw SHA-256; the hit path vs the
           seed design in Python and its Redis variant; the hot (memory) tier
           on one and two threads; the RocksDB tier; inserts; a model flush.
  scale    engine_bench BM_ScaleLookup and BM_ScaleFlush at 100k entries and
           at --scale-entries (default 10M; the database is built once into
           <build>/bench-data and reused): lookups with the hot tier off,
           resident memory against the configured budgets, open time, the
           time to flush a model.
  compress engine_bench BM_CompressionRatio: bytes on disk of a compacted
           database of English-like chat completions against their raw bytes.
  import   `llmcache import` of --import-entries exported 1 KiB entries,
           timed for the whole command, against one insert per entry
           (`llmcache import --per-entry`, the former path); the median of
           --rounds runs of each, alternated A-B-B-A.
  proxy    bench/proxy_bench.sh: `llmcache serve` vs nginx proxy_cache hits,
           one thread vs one worker and two threads vs two workers.

Prints one table (figure | llmcache | baseline | ratio | target | met?) and
writes the same as JSON (--json) and as a Markdown table for the README
(--markdown). Needs a Release build (`cmake --preset release && cmake
--build --preset release`) and, for the proxy and Redis baselines, the
packages `scripts/setup.sh --bench` installs.

Usage:
  bench/headline.py [--json OUT] [--markdown OUT] [--only SECTION ...]
                    [--skip SECTION ...] [--scale-entries N]
                    [--import-entries N] [--proxy-duration 10s] [--rounds N]
"""

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SECTIONS = ("engine", "scale", "compress", "import", "proxy")


def log(msg):
    print("headline: " + msg, file=sys.stderr, flush=True)


class Figures:
    def __init__(self):
        self.rows = []
        self.notes = []

    def add(self, section, figure, value, unit, baseline=None,
            baseline_label="", ratio=None, target="", met=None):
        if ratio is None and value is not None and baseline:
            ratio = value / baseline
        self.rows.append({
            "section": section, "figure": figure, "value": value,
            "unit": unit, "baseline": baseline,
            "baseline_label": baseline_label, "ratio": ratio,
            "target": target, "met": met})


def fmt(value, unit):
    if value is None:
        return "n/a"
    if unit in ("items/s", "hits/s", "requests/s", "entries/s"):
        if value >= 1e6:
            return "%.2fM/s" % (value / 1e6)
        if value >= 1e3:
            return "%.1fk/s" % (value / 1e3)
        return "%.0f/s" % value
    if unit == "bytes/s":
        return "%.2f GB/s" % (value / 1e9) if value >= 1e9 else \
            "%.0f MB/s" % (value / 1e6)
    if unit == "ms":
        return "%.1f ms" % value
    if unit == "us":
        return "%.0f us" % value
    if unit == "MiB":
        return "%.0f MiB" % value
    if unit == "x":
        return "%.2fx" % value
    return "%g %s" % (value, unit)


# ---------------------------------------------------------------- sections


def run_json(cmd, env=None):
    log("running: " + " ".join(cmd))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env, check=False)
    try:
        return json.loads(proc.stdout.decode(errors="replace")), proc
    except ValueError:
        return None, proc


def bench_rows(binary, pattern, env_extra=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    cmd = [binary, "--benchmark_format=json", "--benchmark_filter=" + pattern]
    data, proc = run_json(cmd, env)
    if b"scale_bench: built and compacted" in (proc.stderr or b""):
        # The process built the scale database before measuring: its resident
        # memory holds what the build left in the allocator (232 MiB against
        # 83 MiB at 10M entries). Measured again by a process that only
        # opens the database.
        log("the database was built by that run: running it again")
        data, proc = run_json(cmd, env)
    rows = {}
    errors = []
    for row in (data or {}).get("benchmarks", []):
        name = row.get("run_name") or row.get("name", "")
        if row.get("error_occurred"):
            errors.append("%s: %s" % (name, row.get("error_message")))
            continue
        rows[name] = row
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:]
        errors.append("%s exited with %d %s" % (binary, proc.returncode,
                                                 " ".join(tail)))
    return rows, errors


def first(rows, prefix):
    for name, row in rows.items():
        if name == prefix or name.startswith(prefix + "/"):
            return row
    return None


def engine_section(args, figs):
    out = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
    cmd = [sys.executable, os.path.join(HERE, "compare.py"),
           "--bench-binary", args.engine_bench, "--json", out]
    if args.no_redis:
        cmd.append("--no-redis")
    log("running: " + " ".join(cmd))
    subprocess.run(cmd, check=False, stdout=sys.stderr)
    try:
        with open(out, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        figs.notes.append("engine: compare.py wrote no figures (%s)" % e)
        return
    finally:
        os.unlink(out)
    for f in data.get("figures", []):
        figs.add("engine", f["figure"], f["llmcache"], f.get("unit") or "",
                 f.get("baseline"), "", f.get("ratio"), f.get("target", ""),
                 f.get("met"))
    figs.notes.extend("engine: " + n for n in data.get("notes", []))


def count_label(n):
    if n >= 1_000_000:
        return "%gM" % (n / 1e6)
    return "%gk" % (n / 1e3) if n >= 1000 else str(n)


def scale_section(args, figs):
    sizes = [100000, args.scale_entries]
    env = {"LLMCACHE_BENCH_SCALE_MAX": str(max(sizes))}
    found = {}
    for n in sizes:
        # One size per process: resident memory is then that size's alone.
        rows, errors = bench_rows(args.engine_bench,
                                  "^BM_ScaleLookup/%d/" % n, env)
        figs.notes.extend("scale: " + e for e in errors)
        found[("lookup", n)] = first(rows, "BM_ScaleLookup/%d" % n)
        rows, errors = bench_rows(args.engine_bench,
                                  "^BM_ScaleFlush/%d/" % n, env)
        figs.notes.extend("scale: " + e for e in errors)
        found[("flush", n)] = first(rows, "BM_ScaleFlush/%d" % n)
    small, big = sizes
    label = count_label(big)
    ls, lb = found[("lookup", small)], found[("lookup", big)]
    rs = ls and ls.get("items_per_second")
    rb = lb and lb.get("items_per_second")
    r = rb / rs if rs and rb else None
    how = "separate runs"
    # The ratio from one process alternating batches between the two
    # databases: a shared host's changes of speed affect both sides alike.
    rows, errors = bench_rows(args.engine_bench,
                              "^BM_ScaleLookupVs100k/%d/" % big, env)
    figs.notes.extend("scale: " + e for e in errors)
    paired = first(rows, "BM_ScaleLookupVs100k/%d" % big)
    if paired and paired.get("vs_100k"):
        rb, rs = paired.get("lookups_per_s"), paired.get("lookups_per_s_100k")
        r = paired["vs_100k"]
        how = "alternating batches, median"
    figs.add("scale", "RocksDB-tier lookups, %s entries vs 100k (hot tier "
             "off; %s)" % (label, how), rb, "items/s", rs, "100k entries", r,
             ">= 0.70x", None if r is None else r >= 0.70)
    if lb and lb.get("miss_us") is not None:
        figs.add("scale", "lookup of a key not stored, %s entries (before "
                 "the upstream call)" % label, lb.get("miss_us"), "us",
                 ls and ls.get("miss_us"), "100k entries")
    if lb:
        rss, budget = lb.get("rss_mib"), lb.get("budget_mib")
        r = rss / budget if rss and budget else None
        figs.add("scale", "resident memory at %s entries vs budgets (block "
                 "cache + hot tier + write buffers)" % label, rss, "MiB",
                 budget, "budgets", r, "<= 1.10x",
                 None if r is None else r <= 1.10)
        figs.add("scale", "open time at %s entries (%.0f MiB on disk)" %
                 (label, lb.get("db_mib", 0)), lb.get("open_ms"), "ms",
                 ls and ls.get("open_ms"), "100k entries")
    fs, fb = found[("flush", small)], found[("flush", big)]
    if fb:
        model = fb.get("flush_model_ms")
        r = model / fs["flush_model_ms"] if fs and model else None
        figs.add("scale", "flush of a model of %s entries (a quarter of %s)"
                 % (count_label(big // 4), label), model, "ms",
                 fs and fs.get("flush_model_ms"), "at 100k entries", r,
                 "constant: < 250 ms", None if model is None else model < 250)
        figs.add("scale", "flush of every model, %s entries" % label,
                 fb.get("flush_all_ms"), "ms",
                 fs and fs.get("flush_all_ms"), "at 100k entries")


def compress_section(args, figs):
    rows, errors = bench_rows(args.engine_bench, "^BM_CompressionRatio")
    figs.notes.extend("compress: " + e for e in errors)
    row = first(rows, "BM_CompressionRatio")
    if row is None:
        figs.add("compress", "disk bytes / raw response bytes", None, "x",
                 target="<= 0.40x", met=None)
        return
    ratio = row.get("ratio")
    base = row.get("baseline_ratio")
    figs.add("compress", "disk bytes / raw response bytes, compacted",
             ratio, "x", base,
             "LZ4 + ZSTD bottom, no dictionary" if base else "",
             ratio / base if ratio and base else None, "<= 0.40x",
             None if ratio is None else ratio <= 0.40)


_WORDS = ("the of and to in is that for it as was with be by on not he this "
          "are or his from at which but have an they you were her she there "
          "would their we him been has when who will more no if out so said "
          "what up its about into than them can only other new some could "
          "time these two may then do first any my now such like our over "
          "man me even most made after also did many before must through "
          "back years where much your way well down should because each "
          "just those people how too little state good very make world "
          "still own see men work long get here between both life being "
          "under never day same another know while last might us great old "
          "year off come since against go came right used take three").split()


def write_export(path, entries, seed=7):
    """An export file of `entries` ~1 KiB chat completions, 4 models."""
    rng = random.Random(seed)
    models = ("openai/gpt-4o-mini", "anthropic/claude-sonnet-4.5",
              "google/gemini-2.5-flash", "meta-llama/llama-3.3-70b-instruct")
    now = int(time.time() * 1000)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(entries):
            words = []
            size = 0
            while size < 760:
                w = rng.choice(_WORDS)
                words.append(w)
                size += len(w) + 1
            text = " ".join(words).capitalize() + "."
            model = models[i % 4]
            body = json.dumps({
                "id": "gen-%d" % i, "object": "chat.completion",
                "created": 1764000000 + i, "model": model,
                "choices": [{"index": 0, "message": {
                    "role": "assistant", "content": text},
                    "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 200, "completion_tokens": 180,
                          "total_tokens": 380}}, separators=(",", ":"))
            line = {"key": "%064x" % rng.getrandbits(256), "model": model,
                    "resolved_model": model, "namespace": "",
                    "created": now - 1000, "expires": 0, "flags": 0,
                    "usage": {"prompt_tokens": 200, "completion_tokens": 180,
                              "cached_tokens": 0, "cache_write_tokens": 0,
                              "cost_nanousd": 1000},
                    "response": body}
            f.write(json.dumps(line, separators=(",", ":")) + "\n")


def time_import(binary, export, db, extra):
    shutil.rmtree(db, ignore_errors=True)
    # Write back what the set-up left dirty (the 270 MiB export just written,
    # the previous run's database) before the clock starts: otherwise the
    # kernel flushes it during the import, on the same CPUs and disk (first
    # import after writing the export: 126.8k/s; after a sync: 161-172k/s).
    # The import's own writes, synced by RocksDB, stay in the time.
    os.sync()
    cmd = [binary, "import", "--db", db, export] + extra
    log("running: " + " ".join(cmd))
    start = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          check=False)
    secs = time.monotonic() - start
    if proc.returncode != 0:
        return None, proc.stderr.decode(errors="replace").strip()
    return secs, None


def import_section(args, figs):
    tmp = tempfile.mkdtemp(prefix="llmcache-import-bench-")
    try:
        export = os.path.join(tmp, "export.jsonl")
        log("writing %d export lines" % args.import_entries)
        write_export(export, args.import_entries)
        mib = os.path.getsize(export) / (1 << 20)
        db = os.path.join(tmp, "db")
        # Single runs of the same command on this kind of VM spread by
        # +-20% (149-211k/s over five), the slow ones often every other run:
        # the median of rounds alternated A-B-B-A, so that neither command
        # keeps the same turn.
        rates, base_rates = [], []
        for round_no in range(max(1, args.rounds)):
            order = (([], rates, "import"),
                     (["--per-entry"], base_rates, "import --per-entry"))
            if round_no % 2 == 1:
                order = order[::-1]
            for extra, into, what in order:
                secs, err = time_import(args.llmcache, export, db, extra)
                if err:
                    figs.notes.append(what + ": " + err)
                elif secs:
                    into.append(args.import_entries / secs)
        log("import rounds: %s entries/s; --per-entry %s entries/s" %
            (", ".join("%.0f" % r for r in rates),
             ", ".join("%.0f" % r for r in base_rates)))
        rate = statistics.median(rates) if rates else None
        base = statistics.median(base_rates) if base_rates else None
        figs.add("import", "llmcache import, %dk entries of ~1 KiB (%.0f MiB),"
                 " whole command, median of %d" %
                 (args.import_entries // 1000, mib, len(rates)), rate,
                 "entries/s", base, "one insert per entry (--per-entry)",
                 None, ">= 300k/s", None if rate is None else rate >= 3e5)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def proxy_section(args, figs):
    for threads in (1, 2):
        out = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
        env = dict(os.environ, LLMCACHE_BIN=args.llmcache,
                   PROXY_THREADS=str(threads), NGINX_WORKERS=str(threads),
                   WRK_THREADS=str(threads), ROUNDS=str(args.rounds),
                   DURATION=args.proxy_duration, RESULT_JSON=out)
        if threads == 2:
            env["PIN"] = "0"  # four processes on two CPUs: let them share
        log("running: bench/proxy_bench.sh (%d thread(s) vs %d worker(s))" %
            (threads, threads))
        proc = subprocess.run([os.path.join(HERE, "proxy_bench.sh")],
                              env=env, stdout=sys.stderr, check=False)
        try:
            with open(out, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            data = None
        finally:
            os.unlink(out)
        if proc.returncode != 0 or data is None:
            figs.notes.append("proxy: proxy_bench.sh (%d thread(s)) failed "
                              "(exit %d)" % (threads, proc.returncode))
            figs.add("proxy", "proxy cache hits/s, %d thread(s) vs %d nginx "
                     "worker(s)" % (threads, threads), None, "requests/s",
                     target=">= 1.5x")
            continue
        p, n = data["proxy"], data["nginx"]
        r = p["rps"] / n["rps"] if p["rps"] and n["rps"] else None
        figs.add("proxy", "proxy cache hits/s, %d thread(s) vs %d nginx "
                 "worker(s), 2 KiB chat request" % (threads, threads),
                 p["rps"], "requests/s", n["rps"], "nginx proxy_cache", r,
                 ">= 1.5x", None if r is None else r >= 1.5)
        figs.add("proxy", "p99 latency, %d thread(s) vs %d worker(s)" %
                 (threads, threads), p["p99_us"], "us", n["p99_us"],
                 "nginx proxy_cache", None, "<= nginx",
                 p["p99_us"] <= n["p99_us"])


# ------------------------------------------------------------------ output


def table(figs):
    rows = [["figure", "llmcache", "baseline", "ratio", "target", "met?"]]
    for f in figs.rows:
        base = fmt(f["baseline"], f["unit"]) if f["baseline"] else "-"
        if f["baseline"] and f["baseline_label"]:
            base += " (%s)" % f["baseline_label"]
        rows.append([f["figure"], fmt(f["value"], f["unit"]), base,
                     "%.2fx" % f["ratio"] if f["ratio"] else "-",
                     f["target"] or "-",
                     "-" if f["met"] is None else
                     ("yes" if f["met"] else "NO")])
    return rows


def print_table(rows):
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, r in enumerate(rows):
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths)))
        if n == 0:
            print("-+-".join("-" * w for w in widths))


def markdown(rows, context):
    out = ["Measured %s on %s." % (context["date"], context["machine"]), "",
           "| " + " | ".join(rows[0]) + " |",
           "|" + "---|" * len(rows[0])]
    for r in rows[1:]:
        out.append("| " + " | ".join(c.replace("|", "/") for c in r) + " |")
    return "\n".join(out) + "\n"


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kb = int(f.readline().split()[1])
            mem = "%.0f GiB" % (kb / (1 << 20))
    except (OSError, ValueError, IndexError):
        pass
    return "%d CPUs (%s), %s RAM, %s %s" % (
        os.cpu_count() or 0, cpu or platform.machine(), mem,
        platform.system(), platform.release())


def main(argv=None):
    build = os.path.join(ROOT, "build", "release")
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine-bench",
                   default=os.path.join(build, "bench", "engine_bench"),
                   help="the benchmark binary [%(default)s]")
    p.add_argument("--llmcache",
                   default=os.path.join(build, "tools", "llmcache"),
                   help="the llmcache binary (import, serve) [%(default)s]")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=None,
                   help="run only these sections")
    p.add_argument("--skip", nargs="+", choices=SECTIONS, default=[],
                   help="leave these sections out")
    p.add_argument("--scale-entries", type=int, default=10_000_000,
                   help="entries of the large scale database, compared with "
                        "100k (built once, minutes) [%(default)s]")
    p.add_argument("--import-entries", type=int, default=200_000,
                   help="exported ~1 KiB entries imported [%(default)s]")
    p.add_argument("--proxy-duration", default="10s",
                   help="length of one wrk run against the proxy and nginx "
                        "[%(default)s]")
    p.add_argument("--rounds", type=int, default=3,
                   help="proxy and import rounds (medians) [%(default)s]")
    p.add_argument("--no-redis", action="store_true",
                   help="skip the Redis baseline of the engine section")
    p.add_argument("--json", metavar="OUT",
                   help="also write every figure, baseline, ratio and target "
                        "as JSON")
    p.add_argument("--markdown", metavar="OUT",
                   help="also write the table (as in the README) as Markdown")
    args = p.parse_args(argv)

    for path in (args.engine_bench, args.llmcache):
        if not os.access(path, os.X_OK):
            p.error("%s not found: build the release preset first" % path)
    sections = [s for s in (args.only or SECTIONS) if s not in args.skip]
    figs = Figures()
    runners = {"engine": engine_section, "scale": scale_section,
               "compress": compress_section, "import": import_section,
               "proxy": proxy_section}
    started = time.monotonic()
    for s in sections:
        log("section %s" % s)
        runners[s](args, figs)
    context = {"date": datetime.date.today().isoformat(),
               "machine": machine(),
               "load_average_at_end": os.getloadavg(),
               "seconds": round(time.monotonic() - started, 1),
               "sections": sections}
    rows = table(figs)
    print()
    print_table(rows)
    for n in figs.notes:
        print("note: " + n)
    print("%s, %s, %.0f s" % (context["date"], context["machine"],
                              context["seconds"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"context": context, "figures": figs.rows,
                       "notes": figs.notes}, f, indent=2)
            f.write("\n")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(markdown(rows, context))
    missed = [f for f in figs.rows if f["met"] is False]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
