// Scale benchmark: RocksDB-tier lookups in a database that outgrows the
// block cache.
//
// BM_ScaleLookup/<entries>: random hits among <entries> 1 KiB responses of 4
// models, with the memory tier off and the default block cache and write
// buffer budgets (CacheOptions), after a full compaction. The database is
// built once (it takes minutes at millions of entries) into
//   $LLMCACHE_BENCH_DATA/scale-<entries>, or, without that variable,
//   <build dir>/bench-data/scale-<entries> (beside the bench/ directory of
//   this binary),
// and reused by later runs while its marker file matches. Set
// LLMCACHE_BENCH_REBUILD=1 to build it again (do so after changing the
// engine's table options: files keep the layout they were written with).
//
// Sizes above LLMCACHE_BENCH_SCALE_MAX (default 2000000) are skipped, so the
// 10M database is only built when asked for:
//   LLMCACHE_BENCH_SCALE_MAX=10000000 engine_bench
//   --benchmark_filter=BM_ScaleLookup/10000000
//
// Counters: items_per_second (lookups per CPU second of the benchmark
// thread: robust on a shared machine; the Time column is wall time), rss_mib
// (the process's resident memory after the timed loop: run one size per process
// for a clean figure), budget_mib (the configured memory budgets: block cache
// + hot tier + write buffers; resident memory should stay within it + 10%),
// rss_vs_budget, db_mib (live files of the database), open_ms (Cache::Open of
// the database, its files in the OS page cache), and, from an untimed pass
// of 20k more lookups, the blocks read from the files per lookup by kind
// (index_reads, filter_reads, dict_reads, data_reads: RocksDB's perf
// context; 0 when the block cache served them), and miss_us (CPU time of a
// lookup of a key that is not stored, from 20k more).
//
// BM_ScaleLookupVs100k/<entries>: the lookup rate at <entries> against the
// rate at 100k in one process, both databases open, in alternating batches
// (vs_100k: the median of the rounds' ratios).
//
// BM_ScaleFlush/<entries>: on a hard-linked copy of the same database (SST
// files are immutable, so the copy costs no data), the time to flush one model
// (a quarter of the entries: flush_model_ms) and then all four (flush_all_ms:
// every entry). Both are column-family drops, so they should not grow with
// the entry count.

#include <benchmark/benchmark.h>
#include <rocksdb/perf_context.h>
#include <rocksdb/perf_level.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "bench_data.h"
#include "llmcache/cache.h"
#include "llmcache/key.h"

namespace llmcache::bench {
namespace {

namespace fs = std::filesystem;

// Bump when the data written (keys, bodies, options of the build) changes.
// 2: ZSTD with a trained dictionary at every level of model families; built
//    with the bulk loader. 3: index restart interval 16. 6: no filters in
//    the time indexes. 7: the values are valid JSON (they had a stray closing
//    brace, so `llmcache verify` called every entry corrupt).
constexpr int kScaleDataVersion = 7;
constexpr size_t kResponseBytes = 1024;
constexpr std::array<std::string_view, 4> kScaleModels = {
    "openai/gpt-4o-mini",
    "anthropic/claude-sonnet-4.5",
    "google/gemini-2.5-flash",
    "meta-llama/llama-3.3-70b-instruct",
};
constexpr int64_t kDefaultScaleMax = 2'000'000;

// SplitMix64: keys are uniformly random, deterministic, and cheap to derive
// again at lookup time (so the benchmark holds no key array of its own that
// would show in the RSS figure).
uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

Digest DigestOf(uint64_t i) {
  Digest d;
  uint64_t s = i * 4 + 0x5CA1E0000ull;
  for (size_t w = 0; w < d.size() / 8; ++w) {
    const uint64_t v = Mix(s + w);
    std::memcpy(d.data() + 8 * w, &v, 8);
  }
  return d;
}

size_t ModelOf(uint64_t i) { return static_cast<size_t>(i % 4); }

// The options of both the build and the timed lookups: the defaults, minus
// the memory tier, expiry and background work (a reused database may be days
// old; nothing may expire or get recompacted under the benchmark).
CacheOptions ScaleOptions(const std::string& db_path) {
  CacheOptions o;
  o.path = db_path;
  o.memory_tier_bytes = 0;
  o.default_ttl_ms = 0;
  o.maintenance_interval_ms = 0;
  o.periodic_compaction_seconds = 0;
  return o;
}

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoll(v, nullptr, 10);
}

std::string DataRoot() {
  if (const char* v = std::getenv("LLMCACHE_BENCH_DATA"); v && *v) return v;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "bench-data";
  // <build>/bench/engine_bench -> <build>/bench-data
  return (exe.parent_path().parent_path() / "bench-data").string();
}

std::string Marker(int64_t entries) {
  std::ostringstream m;
  m << "llmcache scale-bench data\n"
    << "bench_data_version=" << kScaleDataVersion << "\n"
    << "key_format=" << kKeyFormatVersion << "\n"
    << "entries=" << entries << "\n"
    << "value_bytes=" << kResponseBytes << "\n"
    << "models=" << kScaleModels.size() << "\n";
  return m.str();
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

RequestKey KeyOf(uint64_t i) {
  RequestKey k;
  k.digest = DigestOf(i);
  k.model = std::string(kScaleModels[ModelOf(i)]);
  k.base_model = std::string(BaseModel(k.model));
  return k;
}

bool Build(const fs::path& dir, int64_t entries, std::string* error) {
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  if (ec) {
    *error = "cannot create " + dir.string() + ": " + ec.message();
    return false;
  }
  auto opened = Cache::Open(ScaleOptions((dir / "db").string()));
  if (!opened.ok()) {
    *error = opened.status().ToString();
    return false;
  }
  std::unique_ptr<Cache> cache = std::move(opened).value();
  std::fprintf(stderr, "scale_bench: building %lld entries in %s\n",
               static_cast<long long>(entries), dir.c_str());
  const auto start = std::chrono::steady_clock::now();
  // The bulk loader (what `llmcache import` uses): sorted table files, then
  // one compaction below rewrites them as the cache's own compaction would.
  auto loader = cache->NewBulkLoader(BulkLoadOptions{});
  if (!loader.ok()) {
    *error = loader.status().ToString();
    return false;
  }
  const int64_t step = std::max<int64_t>(entries / 10, 1);
  for (int64_t i = 0; i < entries; ++i) {
    const auto u = static_cast<uint64_t>(i);
    Status s = (*loader)->Add(KeyOf(u), MakeCompletion(u, kResponseBytes), {});
    if (!s.ok()) {
      *error = s.ToString();
      return false;
    }
    if ((i + 1) % step == 0) {
      std::fprintf(stderr, "scale_bench:   %lld / %lld\n",
                   static_cast<long long>(i + 1),
                   static_cast<long long>(entries));
    }
  }
  if (auto done = (*loader)->Finish(); !done.ok()) {
    *error = done.status().ToString();
    return false;
  }
  loader->reset();
  Status s = cache->Compact();
  if (!s.ok()) {
    *error = s.ToString();
    return false;
  }
  cache.reset();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::fprintf(stderr, "scale_bench: built and compacted in %.1f s\n", secs);
  std::ofstream(dir / "MARKER", std::ios::binary) << Marker(entries);
  return true;
}

// Reads every file of the database once: the benchmark measures the block
// cache layout, not the disk, so every file starts in the OS page cache.
void WarmPageCache(const fs::path& db) {
  std::vector<char> buf(1 << 20);
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(db, ec)) {
    std::ifstream in(e.path(), std::ios::binary);
    while (in.read(buf.data(), static_cast<std::streamsize>(buf.size()))) {
    }
  }
}

struct ScaleFixture {
  int64_t entries = 0;
  std::unique_ptr<Cache> cache;
  double db_mib = 0;
  double open_ms = 0;
  fs::path dir;
};

double MsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - start)
      .count();
}

std::mutex scale_mu;
std::unique_ptr<ScaleFixture> scale_fixture;  // one size open at a time

void CloseScaleFixture() {
  std::lock_guard<std::mutex> lock(scale_mu);
  scale_fixture.reset();  // before static destruction: RocksDB must close
}

// Opens the database of `entries` entries, building it first if needed.
std::unique_ptr<ScaleFixture> OpenScaleFixture(int64_t entries,
                                               std::string* error) {
  const fs::path dir =
      fs::path(DataRoot()) / ("scale-" + std::to_string(entries));
  bool built = false;
  if (EnvInt("LLMCACHE_BENCH_REBUILD", 0) != 0 ||
      ReadFile(dir / "MARKER") != Marker(entries)) {
    if (!Build(dir, entries, error)) return nullptr;
    built = true;
  }
  WarmPageCache(dir / "db");
  auto open_start = std::chrono::steady_clock::now();
  auto opened = Cache::Open(ScaleOptions((dir / "db").string()));
  if (!opened.ok() && !built) {
    // Written by another version of the engine: build it again.
    std::fprintf(stderr, "scale_bench: cannot reuse %s (%s)\n", dir.c_str(),
                 opened.status().ToString().c_str());
    if (!Build(dir, entries, error)) return nullptr;
    WarmPageCache(dir / "db");
    open_start = std::chrono::steady_clock::now();
    opened = Cache::Open(ScaleOptions((dir / "db").string()));
  }
  const double open_ms = MsSince(open_start);
  if (!opened.ok()) {
    *error = opened.status().ToString();
    return nullptr;
  }
  auto f = std::make_unique<ScaleFixture>();
  f->entries = entries;
  f->open_ms = open_ms;
  f->dir = dir;
  f->cache = std::move(opened).value();
  if (auto st = f->cache->GetStats(); st.ok()) {
    f->db_mib = static_cast<double>(st->disk_bytes) / (1 << 20);
  }
  return f;
}

// The open cache of `entries` entries, built first if needed; kept open for
// the next benchmark of the same size.
ScaleFixture* GetScaleFixture(int64_t entries, std::string* error) {
  std::lock_guard<std::mutex> lock(scale_mu);
  if (scale_fixture && scale_fixture->entries == entries) {
    return scale_fixture.get();
  }
  scale_fixture.reset();
  scale_fixture = OpenScaleFixture(entries, error);
  if (!scale_fixture) return nullptr;
  // Registered after the open, so that it runs before the destructors of any
  // static object that opening created.
  std::atexit(CloseScaleFixture);
  return scale_fixture.get();
}

double RssMib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::strtod(line.c_str() + 6, nullptr) / 1024.0;  // kB
    }
  }
  return 0;
}

// Lookups of random entries of a fixture's database.
class RandomLookups {
 public:
  // `seq` is the position in the random sequence, advanced by each lookup.
  RandomLookups(ScaleFixture* f, uint64_t* seq)
      : f_(f), n_(static_cast<uint64_t>(f->entries)), seq_(seq) {
    for (size_t m = 0; m < keys_.size(); ++m) keys_[m] = KeyOf(m);
  }

  // Looks up the next random entry; false unless a hit.
  bool Next() {
    const uint64_t i = Mix((*seq_)++) % n_;
    RequestKey& k = keys_[ModelOf(i)];
    k.digest = DigestOf(i);
    auto r = f_->cache->Lookup(k);
    benchmark::DoNotOptimize(r);
    return r.ok() && r->hit();
  }

 private:
  ScaleFixture* const f_;
  const uint64_t n_;
  uint64_t* const seq_;
  std::array<RequestKey, kScaleModels.size()> keys_;
};

// CPU time of the calling thread, in seconds.
double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) +
         1e-9 * static_cast<double>(ts.tv_nsec);
}

void BM_ScaleLookup(benchmark::State& state) {
  const int64_t entries = state.range(0);
  const int64_t max = EnvInt("LLMCACHE_BENCH_SCALE_MAX", kDefaultScaleMax);
  if (entries > max) {
    state.SkipWithError(
        ("skipped: above LLMCACHE_BENCH_SCALE_MAX=" + std::to_string(max) +
         " (building this database takes long)")
            .c_str());
    for (auto _ : state) {
    }
    return;
  }
  std::string error;
  ScaleFixture* f = GetScaleFixture(entries, &error);
  if (f == nullptr) {
    state.SkipWithError(("cannot build the database: " + error).c_str());
    for (auto _ : state) {
    }
    return;
  }
  // Carried over from call to call: every timed batch draws fresh keys.
  static uint64_t seq = 0x1234567ull;
  RandomLookups lookups(f, &seq);
  int64_t wrong = 0;
  for (auto _ : state) {
    if (!lookups.Next()) ++wrong;
  }
  if (wrong != 0) {
    state.SkipWithError(
        (std::to_string(wrong) + " lookups were not hits").c_str());
  }
  state.SetItemsProcessed(state.iterations());
  const CacheOptions o = ScaleOptions("");
  const double budget_mib =
      static_cast<double>(o.block_cache_bytes + o.memory_tier_bytes +
                          o.write_buffer_bytes) /
      (1 << 20);
  const double rss = RssMib();
  state.counters["rss_mib"] = rss;
  state.counters["budget_mib"] = budget_mib;
  state.counters["rss_vs_budget"] = rss / budget_mib;
  state.counters["db_mib"] = f->db_mib;
  state.counters["open_ms"] = f->open_ms;
  // Where the blocks came from, in an untimed pass over fresh keys (RocksDB's
  // perf context): reads from the files per lookup, by kind. Index and
  // filter partitions and dictionaries that stay in the block cache read 0.
  constexpr int kCounted = 20000;
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
  rocksdb::get_perf_context()->Reset();
  for (int j = 0; j < kCounted; ++j) (void)lookups.Next();
  const rocksdb::PerfContext& pc = *rocksdb::get_perf_context();
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  const uint64_t meta = pc.index_block_read_count + pc.filter_block_read_count +
                        pc.compression_dict_block_read_count;
  auto per_lookup = [](uint64_t count) {
    return static_cast<double>(count) / kCounted;
  };
  state.counters["index_reads"] = per_lookup(pc.index_block_read_count);
  state.counters["filter_reads"] = per_lookup(pc.filter_block_read_count);
  state.counters["dict_reads"] =
      per_lookup(pc.compression_dict_block_read_count);
  state.counters["data_reads"] =
      per_lookup(pc.block_read_count > meta ? pc.block_read_count - meta : 0);
  // Lookups of keys that are not stored (a miss, before the upstream call),
  // in microseconds of CPU each: the filters answer them.
  {
    RequestKey k = KeyOf(0);
    const auto n = static_cast<uint64_t>(entries);
    int misses = 0;
    const double start = ThreadCpuSeconds();
    for (int j = 0; j < kCounted; ++j) {
      k.digest = DigestOf(n + Mix(seq++) % n);  // indexes n..2n-1: not stored
      auto r = f->cache->Lookup(k);
      if (r.ok() && !r->hit()) ++misses;
    }
    state.counters["miss_us"] = 1e6 * (ThreadCpuSeconds() - start) / kCounted;
    if (misses != kCounted) state.SkipWithError("a missing key was found");
  }
}

// The lookup rate at `entries` against the rate at 100k entries, measured
// in one process by alternating batches of lookups between the two databases
// (both open, each with its own default budgets), so that a change in the
// machine's speed during the run (other tenants of a shared host) affects
// both sides of each pair alike. Counters: vs_100k (the median over rounds of
// the ratio of the two batches' rates), lookups_per_s and lookups_per_s_100k
// (the median batch rates, per CPU second of this thread).
void BM_ScaleLookupVs100k(benchmark::State& state) {
  constexpr int64_t kBase = 100'000;
  const int64_t entries = state.range(0);
  const int64_t max = EnvInt("LLMCACHE_BENCH_SCALE_MAX", kDefaultScaleMax);
  auto skip = [&state](const std::string& why) {
    state.SkipWithError(why.c_str());
    for (auto _ : state) {
    }
  };
  if (entries > max) {
    skip("skipped: above LLMCACHE_BENCH_SCALE_MAX=" + std::to_string(max) +
         " (building this database takes long)");
    return;
  }
  CloseScaleFixture();  // a database is opened by one cache at a time
  std::string error;
  std::unique_ptr<ScaleFixture> base = OpenScaleFixture(kBase, &error);
  std::unique_ptr<ScaleFixture> big =
      base ? OpenScaleFixture(entries, &error) : nullptr;
  if (!base || !big) {
    skip("cannot build the database: " + error);
    return;
  }
  uint64_t base_seq = 0x1234567ull;
  uint64_t big_seq = 0x7654321ull;
  RandomLookups base_lookups(base.get(), &base_seq);
  RandomLookups big_lookups(big.get(), &big_seq);
  constexpr int kBatch = 10000;
  constexpr int kRounds = 30;
  int64_t wrong = 0;
  // CPU seconds of one batch.
  auto batch = [&wrong](RandomLookups& lookups) {
    const double start = ThreadCpuSeconds();
    for (int i = 0; i < kBatch; ++i) {
      if (!lookups.Next()) ++wrong;
    }
    return ThreadCpuSeconds() - start;
  };
  // Untimed warm-up: the block caches reach their steady state.
  for (int i = 0; i < 5; ++i) {
    (void)batch(base_lookups);
    (void)batch(big_lookups);
  }
  std::vector<double> ratios, base_rates, big_rates;
  for (auto _ : state) {
    for (int round = 0; round < kRounds; ++round) {
      // Alternate which side goes first.
      double t_base = 0, t_big = 0;
      if (round % 2 == 0) {
        t_base = batch(base_lookups);
        t_big = batch(big_lookups);
      } else {
        t_big = batch(big_lookups);
        t_base = batch(base_lookups);
      }
      ratios.push_back(t_base / t_big);
      base_rates.push_back(kBatch / t_base);
      big_rates.push_back(kBatch / t_big);
    }
  }
  if (wrong != 0) {
    state.SkipWithError(
        (std::to_string(wrong) + " lookups were not hits").c_str());
    return;
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
  };
  state.counters["vs_100k"] = median(ratios);
  state.counters["lookups_per_s"] = median(big_rates);
  state.counters["lookups_per_s_100k"] = median(base_rates);
  state.counters["entries"] = static_cast<double>(entries);
}

// A copy of `from` whose SST files are hard links (RocksDB never modifies
// them in place) and whose other files (manifest, options, log) are copied.
bool LinkCopy(const fs::path& from, const fs::path& to, std::string* error) {
  std::error_code ec;
  fs::remove_all(to, ec);
  fs::create_directories(to, ec);
  for (const auto& e : fs::directory_iterator(from, ec)) {
    if (!e.is_regular_file()) continue;
    const fs::path target = to / e.path().filename();
    if (e.path().extension() == ".sst") {
      fs::create_hard_link(e.path(), target, ec);
    } else if (e.path().filename() != "LOCK") {
      fs::copy_file(e.path(), target, ec);
    }
    if (ec) {
      *error = "cannot copy " + e.path().string() + ": " + ec.message();
      return false;
    }
  }
  if (ec) *error = ec.message();
  return !ec;
}

void BM_ScaleFlush(benchmark::State& state) {
  const int64_t entries = state.range(0);
  const int64_t max = EnvInt("LLMCACHE_BENCH_SCALE_MAX", kDefaultScaleMax);
  if (entries > max) {
    state.SkipWithError(
        ("skipped: above LLMCACHE_BENCH_SCALE_MAX=" + std::to_string(max))
            .c_str());
    for (auto _ : state) {
    }
    return;
  }
  std::string error;
  ScaleFixture* f = GetScaleFixture(entries, &error);
  if (f == nullptr) {
    state.SkipWithError(("cannot build the database: " + error).c_str());
    for (auto _ : state) {
    }
    return;
  }
  const fs::path copy = f->dir / "flush-copy";
  double model_ms = 0, all_ms = 0;
  for (auto _ : state) {
    // The owner holds the database open: its files are complete and stable
    // (no background work runs in ScaleOptions), so linking them is safe.
    state.PauseTiming();
    if (!LinkCopy(f->dir / "db", copy, &error)) break;
    auto opened = Cache::Open(ScaleOptions(copy.string()));
    if (!opened.ok()) {
      error = opened.status().ToString();
      break;
    }
    std::unique_ptr<Cache> cache = std::move(opened).value();
    state.ResumeTiming();
    auto start = std::chrono::steady_clock::now();
    auto one = cache->FlushModel(kScaleModels[0]);
    model_ms = MsSince(start);
    start = std::chrono::steady_clock::now();
    Status all = cache->FlushAll();
    all_ms = MsSince(start) + model_ms;
    state.PauseTiming();
    if (!one.ok() || !all.ok()) {
      error = !one.ok() ? one.status().ToString() : all.ToString();
      break;
    }
    auto st = cache->GetStats();
    if (!st.ok() || st->entries != 0) {
      error = "entries left after FlushAll";
      break;
    }
    cache.reset();
    std::error_code ec;
    fs::remove_all(copy, ec);
    state.ResumeTiming();
  }
  std::error_code ec;
  fs::remove_all(copy, ec);
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  state.counters["flush_model_ms"] = model_ms;
  state.counters["flush_all_ms"] = all_ms;
  state.counters["entries"] = static_cast<double>(entries);
}

BENCHMARK(BM_ScaleLookup)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Arg(2'000'000)
    ->Arg(5'000'000)
    ->Arg(10'000'000)
    ->MinTime(2.0);

BENCHMARK(BM_ScaleLookupVs100k)
    ->Arg(1'000'000)
    ->Arg(2'000'000)
    ->Arg(10'000'000)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK(BM_ScaleFlush)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Arg(2'000'000)
    ->Arg(5'000'000)
    ->Arg(10'000'000)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace llmcache::bench
