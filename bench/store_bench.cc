// Store benchmarks: lookups (memory tier, RocksDB only, misses), inserts, the
// whole hit path, flushing a large model, and inserts during an age purge.

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench_data.h"
#include "llmcache/cache.h"
#include "llmcache/key.h"

namespace llmcache::bench {
namespace {

constexpr int kEntries = 100'000;
constexpr size_t kResponseBytes = 1024;

std::string TempPath(const char* tag) {
  std::string templ = std::string("/tmp/llmcache-bench-") + tag + "-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) std::abort();
  return templ;
}

RequestKey NumberedKey(const std::string& model, uint64_t i) {
  RequestKey key;
  key.model = model;
  key.base_model = std::string(BaseModel(model));
  key.digest = Sha256("request #" + std::to_string(i) + " of " + model);
  return key;
}

// A cache holding kEntries 1 KiB responses, built once per configuration and
// kept for the whole run (benchmarks with threads share it).
struct Fixture {
  std::string path;
  std::unique_ptr<Cache> cache;
  std::vector<RequestKey> keys;
  std::vector<RequestKey> absent;
};

std::mutex fixtures_mu;
std::unique_ptr<Fixture> fixtures[2];  // released by ReleaseStoreFixtures()

Fixture& GetFixture(bool memory_tier) {
  std::lock_guard<std::mutex> lock(fixtures_mu);
  std::unique_ptr<Fixture>& f = fixtures[memory_tier ? 1 : 0];
  if (f) return *f;
  f = std::make_unique<Fixture>();
  f->path = TempPath(memory_tier ? "tier" : "rocks");
  CacheOptions o;
  o.path = f->path;
  o.memory_tier_bytes = memory_tier ? (512u << 20) : 0;
  o.block_cache_bytes = 512u << 20;  // the hot set fits: a tuned Get
  o.default_ttl_ms = 0;
  auto c = Cache::Open(o);
  if (!c.ok()) std::abort();
  f->cache = std::move(c).value();
  for (int i = 0; i < kEntries; ++i) {
    f->keys.push_back(NumberedKey("openai/gpt-4o-mini", i));
    f->absent.push_back(NumberedKey("openai/gpt-4o-mini", kEntries + i));
    if (!f->cache->Insert(f->keys.back(), MakeCompletion(i, kResponseBytes), {})
             .ok())
      std::abort();
  }
  (void)f->cache->Compact();
  // Warm: every key once, so the block cache or the tier holds the set.
  for (const RequestKey& k : f->keys) (void)f->cache->Lookup(k);
  return *f;
}

void LookupLoop(benchmark::State& state, bool memory_tier, bool hit) {
  Fixture& f = GetFixture(memory_tier);
  const std::vector<RequestKey>& keys = hit ? f.keys : f.absent;
  size_t i = static_cast<size_t>(state.thread_index()) * 7919;
  int64_t wrong = 0;
  for (auto _ : state) {
    auto r = f.cache->Lookup(keys[i % keys.size()]);
    if (!r.ok() || r->hit() != hit) ++wrong;
    benchmark::DoNotOptimize(r);
    i += 104729;  // a large prime stride: no locality between lookups
  }
  if (wrong != 0) state.SkipWithError("unexpected lookup outcome");
  state.SetItemsProcessed(state.iterations());
}

void BM_Lookup_MemoryHit(benchmark::State& s) { LookupLoop(s, true, true); }
void BM_Lookup_RocksDbHit(benchmark::State& s) { LookupLoop(s, false, true); }
void BM_Lookup_Miss(benchmark::State& s) { LookupLoop(s, true, false); }

void BM_Insert(benchmark::State& state) {
  const std::string path = TempPath("insert");
  CacheOptions o;
  o.path = path;
  auto c = Cache::Open(o);
  if (!c.ok()) std::abort();
  const std::string body = MakeCompletion(1, kResponseBytes);
  uint64_t i = 0;
  for (auto _ : state) {
    Status s =
        (*c)->Insert(NumberedKey("anthropic/claude-sonnet-4.5", i++), body, {});
    if (!s.ok()) state.SkipWithError("insert failed");
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(body.size()));
  c->reset();
  std::filesystem::remove_all(path);
}

// Key + lookup + decoded response of a 2 KiB request that is cached.
void HitPath(benchmark::State& state, bool memory_tier) {
  const size_t bytes = static_cast<size_t>(state.range(0));
  const std::string path = TempPath("hitpath");
  CacheOptions o;
  o.path = path;
  o.memory_tier_bytes = memory_tier ? (64u << 20) : 0;
  auto c = Cache::Open(o);
  if (!c.ok()) std::abort();
  KeyBuilder keys;
  std::vector<std::string> requests;
  for (uint64_t seed = 0; seed < 256; ++seed) {
    requests.push_back(MakeChatRequest(bytes, seed));
    auto k = keys.Compute(requests.back(), {});
    if (!k.ok() ||
        !(*c)->Insert(*k, MakeCompletion(seed, kResponseBytes), {}).ok())
      std::abort();
  }
  size_t i = 0;
  size_t served = 0;
  for (auto _ : state) {
    const std::string& body = requests[i++ % requests.size()];
    auto k = keys.Compute(body, {});
    auto r = (*c)->Lookup(*k);
    if (!r.ok() || !r->hit()) {
      state.SkipWithError("expected a hit");
      break;
    }
    served += r->entry->body.size();
    benchmark::DoNotOptimize(r->entry->body.data());
  }
  benchmark::DoNotOptimize(served);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes));
  c->reset();
  std::filesystem::remove_all(path);
}

void BM_HitPath(benchmark::State& s) { HitPath(s, true); }
void BM_HitPath_RocksDbOnly(benchmark::State& s) { HitPath(s, false); }

// Flushing a model of N entries: dropping its column family.
void BM_FlushModel(benchmark::State& state) {
  const int64_t n = state.range(0);
  for (auto _ : state) {
    state.PauseTiming();
    const std::string path = TempPath("flush");
    CacheOptions o;
    o.path = path;
    o.memory_tier_bytes = 0;
    o.maintenance_interval_ms = 0;
    o.write_buffer_bytes = 256u << 20;
    auto c = Cache::Open(o);
    if (!c.ok()) std::abort();
    const std::string body(96, 'r');
    for (int64_t i = 0; i < n; ++i) {
      if (!(*c)->Insert(NumberedKey("big/model", static_cast<uint64_t>(i)),
                        body, {})
               .ok()) {
        std::abort();
      }
    }
    (void)(*c)->Insert(NumberedKey("other/model", 1), body, {});
    state.ResumeTiming();
    auto flushed = (*c)->FlushModel("big/model");
    state.PauseTiming();
    if (!flushed.ok()) state.SkipWithError("flush failed");
    c->reset();
    std::filesystem::remove_all(path);
    state.ResumeTiming();
  }
  state.counters["entries"] = static_cast<double>(n);
}

// A service storing its misses while an operator's age purge (`llmcache
// purge --older-than`, POST /admin/purge) removes `n` old entries of 1 KiB:
// inserts one at a time, for as long as the purge runs, on a cache with the
// default block cache (the purge reads each entry it deletes). Reports the
// inserts' rate and latency quantiles, and the purge's rate.
void BM_InsertDuringAgePurge(benchmark::State& state) {
  const int64_t n = state.range(0);
  std::vector<double> latencies_us;
  double purge_seconds = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const std::string path = TempPath("purge");
    CacheOptions o;
    o.path = path;
    o.maintenance_interval_ms = 0;
    auto c = Cache::Open(o);
    if (!c.ok()) std::abort();
    const int64_t now_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count();
    {
      auto loader = (*c)->NewBulkLoader({});
      if (!loader.ok()) std::abort();
      InsertOptions old;
      old.created_ms = now_ms - 2 * 86'400'000;
      for (int64_t i = 0; i < n; ++i) {
        const uint64_t u = static_cast<uint64_t>(i);
        if (!(*loader)
                 ->Add(NumberedKey("old/model", u), MakeCompletion(u, 1024),
                       old)
                 .ok()) {
          std::abort();
        }
      }
      if (!(*loader)->Finish().ok()) std::abort();
    }
    const std::string body = MakeCompletion(0, kResponseBytes);
    state.ResumeTiming();
    std::atomic<bool> done{false};
    const auto start = std::chrono::steady_clock::now();
    std::thread purge([&] {
      if (!(*c)->PurgeCreatedBefore(now_ms - 86'400'000).ok()) std::abort();
      done.store(true);
    });
    for (uint64_t i = 0; !done.load(); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      if (!(*c)->Insert(NumberedKey("svc/model", i), body, {}).ok()) {
        std::abort();
      }
      latencies_us.push_back(std::chrono::duration<double, std::micro>(
                                 std::chrono::steady_clock::now() - t0)
                                 .count());
    }
    purge.join();
    purge_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    state.PauseTiming();
    c->reset();
    std::filesystem::remove_all(path);
    state.ResumeTiming();
  }
  std::sort(latencies_us.begin(), latencies_us.end());
  auto quantile = [&](double q) {
    if (latencies_us.empty()) return 0.0;
    return latencies_us[std::min(
        latencies_us.size() - 1,
        static_cast<size_t>(q * static_cast<double>(latencies_us.size())))];
  };
  state.counters["inserts_per_s"] =
      static_cast<double>(latencies_us.size()) / purge_seconds;
  state.counters["insert_p50_us"] = quantile(0.5);
  state.counters["insert_p99_us"] = quantile(0.99);
  state.counters["insert_max_us"] =
      latencies_us.empty() ? 0 : latencies_us.back();
  state.counters["purged_per_s"] =
      static_cast<double>(n * state.iterations()) / purge_seconds;
}

BENCHMARK(BM_Lookup_MemoryHit)
    ->Name("BM_Lookup/memory_hit")
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();
BENCHMARK(BM_Lookup_RocksDbHit)
    ->Name("BM_Lookup/rocksdb_hit")
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();
BENCHMARK(BM_Lookup_Miss)
    ->Name("BM_Lookup/miss")
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();
BENCHMARK(BM_Insert)->UseRealTime();
BENCHMARK(BM_HitPath)->Arg(2048);
BENCHMARK(BM_HitPath_RocksDbOnly)->Arg(2048);
BENCHMARK(BM_FlushModel)
    ->Arg(1'000'000)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_InsertDuringAgePurge)
    ->Arg(500'000)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

// Closes the shared caches and removes their directories. Called by main()
// before exit: an open RocksDB must not meet static destruction.
void ReleaseStoreFixtures() {
  std::lock_guard<std::mutex> lock(fixtures_mu);
  for (std::unique_ptr<Fixture>& f : fixtures) {
    if (!f) continue;
    f->cache.reset();
    std::filesystem::remove_all(f->path);
    f.reset();
  }
}

}  // namespace llmcache::bench
