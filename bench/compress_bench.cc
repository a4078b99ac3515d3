// Compression benchmark: how small the store keeps English-like chat
// completions, and what reading them back costs.
//
// BM_CompressionRatio/<compression>/<block cache MiB>: a database of 50k
// 1 KiB completions (MakeEnglishCompletion) in one model, written with the
// default options but CacheOptions::compression = <compression> (0
// kZstdDictionary, the default; 1 kLz4, the previous layout; 2 kNone), and
// compacted; then random hits with the memory tier off and a block cache of
// <block cache MiB>. With 64 (the default) the decoded blocks of the whole
// database fit in the block cache after a while; with 4 most hits read a
// block from the file (in the OS page cache) and decompress it.
//
// Counters:
//   raw_mib         response bytes inserted
//   disk_mib        CacheStats::disk_bytes of the compacted database (all
//                   families and the WAL)
//   ratio           disk_mib / raw_mib
//   stored_ratio    CacheStats::compression_ratio() (entry files / encoded
//                   values)
//   items_per_second  lookups per CPU second
//   decompress_ns   RocksDB's block decompression time per lookup (perf
//                   context, measured in a second pass of 20k lookups, not in
//                   the timed loop)
//   block_reads     data blocks read from files per lookup (same pass)
//
// The database is built once per <compression> and reopened for each block
// cache size; one is kept open at a time (the build takes ~10 s).

#include <benchmark/benchmark.h>
#include <rocksdb/perf_context.h>
#include <rocksdb/perf_level.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include "bench_data.h"
#include "llmcache/cache.h"
#include "llmcache/key.h"

namespace llmcache::bench {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kEntries = 50'000;
constexpr size_t kResponseBytes = 1024;
constexpr std::string_view kModel = "openai/gpt-4o-mini";

RequestKey KeyOf(uint64_t i) {
  RequestKey key;
  key.model = std::string(kModel);
  key.base_model = std::string(BaseModel(kModel));
  key.digest = Sha256("completion #" + std::to_string(i));
  return key;
}

CacheOptions Options(const std::string& path, StoreCompression c,
                     size_t block_cache_mib) {
  CacheOptions o;
  o.path = path;
  o.memory_tier_bytes = 0;
  o.default_ttl_ms = 0;
  o.maintenance_interval_ms = 0;
  o.compression = c;
  o.block_cache_bytes = block_cache_mib << 20;
  return o;
}

struct Fixture {
  StoreCompression compression = StoreCompression::kZstdDictionary;
  size_t block_cache_mib = 0;
  std::string path;
  std::unique_ptr<Cache> cache;
  double raw_mib = 0;
  double disk_mib = 0;
  double stored_ratio = 0;
  double build_s = 0;

  ~Fixture() {
    cache.reset();
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

std::mutex fixture_mu;
std::unique_ptr<Fixture> fixture;

void CloseFixture() {
  std::lock_guard<std::mutex> lock(fixture_mu);
  fixture.reset();  // before static destruction: RocksDB must close
}

bool Build(Fixture* f, std::string* error) {
  std::string templ = "/tmp/llmcache-bench-compress-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) {
    *error = "mkdtemp failed";
    return false;
  }
  f->path = templ;
  const auto start = std::chrono::steady_clock::now();
  auto c = Cache::Open(Options(f->path, f->compression, 64));
  if (!c.ok()) {
    *error = c.status().ToString();
    return false;
  }
  uint64_t raw = 0;
  for (uint64_t i = 0; i < kEntries; ++i) {
    const std::string body = MakeEnglishCompletion(i, kResponseBytes);
    raw += body.size();
    if (Status s = (*c)->Insert(KeyOf(i), body, {}); !s.ok()) {
      *error = s.ToString();
      return false;
    }
  }
  if (Status s = (*c)->Compact(); !s.ok()) {
    *error = s.ToString();
    return false;
  }
  f->build_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  auto st = (*c)->GetStats();
  if (!st.ok()) {
    *error = st.status().ToString();
    return false;
  }
  f->raw_mib = static_cast<double>(raw) / (1 << 20);
  f->disk_mib = static_cast<double>(st->disk_bytes) / (1 << 20);
  f->stored_ratio = st->compression_ratio();
  return true;
}

Fixture* GetFixture(StoreCompression c, size_t block_cache_mib,
                    std::string* error) {
  std::lock_guard<std::mutex> lock(fixture_mu);
  if (!fixture || fixture->compression != c) {
    fixture.reset();
    auto f = std::make_unique<Fixture>();
    f->compression = c;
    if (!Build(f.get(), error)) return nullptr;
    fixture = std::move(f);
    static const bool registered = (std::atexit(CloseFixture), true);
    (void)registered;
  }
  if (!fixture->cache || fixture->block_cache_mib != block_cache_mib) {
    fixture->cache.reset();
    auto c2 = Cache::Open(Options(fixture->path, c, block_cache_mib));
    if (!c2.ok()) {
      *error = c2.status().ToString();
      return nullptr;
    }
    fixture->cache = std::move(c2).value();
    fixture->block_cache_mib = block_cache_mib;
    // Warm: every key once, as a running cache would have it.
    for (uint64_t i = 0; i < kEntries; ++i) {
      (void)fixture->cache->Lookup(KeyOf(i));
    }
  }
  return fixture.get();
}

void BM_CompressionRatio(benchmark::State& state) {
  const auto compression = static_cast<StoreCompression>(state.range(0));
  const auto block_cache_mib = static_cast<size_t>(state.range(1));
  std::string error;
  Fixture* f = GetFixture(compression, block_cache_mib, &error);
  if (f == nullptr) {
    state.SkipWithError(("cannot build the database: " + error).c_str());
    for (auto _ : state) {
    }
    return;
  }
  std::vector<RequestKey> keys;
  keys.reserve(kEntries);
  for (uint64_t i = 0; i < kEntries; ++i) keys.push_back(KeyOf(i));
  static uint64_t seq = 0;
  int64_t wrong = 0;
  for (auto _ : state) {
    seq += 104729;  // a large prime stride: no locality between lookups
    auto r = f->cache->Lookup(keys[seq % keys.size()]);
    if (!r.ok() || !r->hit()) ++wrong;
    benchmark::DoNotOptimize(r);
  }
  if (wrong != 0) state.SkipWithError("unexpected lookup outcome");
  state.SetItemsProcessed(state.iterations());

  // Where the time goes: a second pass with RocksDB's perf context on.
  constexpr int kProbes = 20'000;
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableTimeExceptForMutex);
  rocksdb::get_perf_context()->Reset();
  for (int i = 0; i < kProbes; ++i) {
    seq += 104729;
    benchmark::DoNotOptimize(f->cache->Lookup(keys[seq % keys.size()]));
  }
  const rocksdb::PerfContext* pc = rocksdb::get_perf_context();
  const double decompress_ns =
      static_cast<double>(pc->block_decompress_time) / kProbes;
  const double block_reads =
      static_cast<double>(pc->block_read_count) / kProbes;
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);

  state.counters["raw_mib"] = f->raw_mib;
  state.counters["disk_mib"] = f->disk_mib;
  state.counters["ratio"] = f->raw_mib > 0 ? f->disk_mib / f->raw_mib : 0;
  state.counters["stored_ratio"] = f->stored_ratio;
  state.counters["build_s"] = f->build_s;
  state.counters["decompress_ns"] = decompress_ns;
  state.counters["block_reads"] = block_reads;
}

BENCHMARK(BM_CompressionRatio)
    ->ArgNames({"compression", "cache_mib"})
    ->ArgsProduct({{static_cast<int64_t>(StoreCompression::kZstdDictionary),
                    static_cast<int64_t>(StoreCompression::kLz4),
                    static_cast<int64_t>(StoreCompression::kNone)},
                   {64, 4}})
    ->MinTime(1.0);

}  // namespace
}  // namespace llmcache::bench
