// The shared tier (RedisTier) under the cached client, against a real
// redis-server: hits per second with the local tiers cold (every hit comes
// from Redis), at 1 and 32 concurrent callers, and the latency a shared-tier
// hit adds over a memory-tier hit. bench/shared_bench.sh starts the server,
// runs the baselines (redis-py, redis-benchmark) and prints the comparison.
//
//   LLMCACHE_BENCH_REDIS=redis://127.0.0.1:6379 shared_bench
//
// Setup: kEntries distinct chat requests, keyed with KeyBuilder as the cached
// client keys them; a 1 KiB chat.completion response for each is written
// through RedisTier::Put and read back until every one is a hit.
//
// Benchmarks (items/s = hits/s):
//   BM_SharedTierHit       CachedClient::Complete on a cold local cache (a
//                          memory cache with a zero byte budget: it stores
//                          nothing, checked at setup and after each run), one
//                          blocking request per caller; 1 thread reports
//                          p50_us/p99_us.
//   BM_SharedTierHitAsync  one caller keeping `window` requests in flight (1
//                          and 32), issuing the next as one completes.
//   BM_SharedTierGetRaw    RedisTier::Get alone (no pipeline).
//   BM_MemoryTierHit       CachedClient::Complete answered by a warm memory
//                          tier (no shared tier); p50_us/p99_us.
// The entry keys are written under the default prefix ("llmcache:"); the
// server is expected to be a throw-away one.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "llmcache/cache.h"
#include "llmcache/key.h"
#include "llmcache/net/cached_client.h"
#include "llmcache/net/client.h"
#include "llmcache/net/redis_tier.h"

namespace llmcache::bench {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

constexpr size_t kEntries = 1000;
// Size of each stored response body; bench/shared_bench.sh passes the same
// size to redis-benchmark (-d) and to the redis-py baseline.
constexpr size_t kResponseBytes = 1024;
constexpr const char* kModel = "openai/gpt-4o-mini";

// A chat request as an application sends it. shared_bench.sh builds the
// same requests and responses in Python for the redis-py baseline.
std::string RequestBody(size_t i) {
  return std::string(R"({"model":")") + kModel +
         R"(","messages":[{"role":"system","content":"You are a concise )"
         R"(assistant for a travel booking site. Answer in two sentences."},)"
         R"({"role":"user","content":"Question )" +
         std::to_string(i) +
         R"(: which documents do I need to board a flight from Paris to )"
         R"(Berlin?"}],"temperature":0,"max_tokens":256})";
}

// A chat.completion response of exactly kResponseBytes bytes.
std::string ResponseBody(size_t i) {
  const std::string head =
      R"({"id":"gen-)" + std::to_string(1700000000 + i) +
      R"(","object":"chat.completion","created":1700000000,"model":")"
      R"(openai/gpt-4o-mini-2024-07-18","provider":"OpenAI","choices":[)"
      R"({"index":0,"logprobs":null,"finish_reason":"stop",)"
      R"("native_finish_reason":"stop","message":{"role":"assistant",)"
      R"("content":")";
  const std::string tail = R"(","refusal":null}}],"usage":{"prompt_tokens":48,)"
                           R"("completion_tokens":180,"total_tokens":228}})";
  const std::string filler =
      "You need a valid passport or national identity card; within the "
      "Schengen area no visa is required for EU citizens. ";
  std::string content;
  const size_t want = kResponseBytes - head.size() - tail.size();
  while (content.size() < want) content += filler;
  content.resize(want);
  return head + content + tail;
}

// Waits for a completion callback (called on another thread, or inline).
template <typename T>
class Waiter {
 public:
  void Set(T v) {
    std::lock_guard<std::mutex> lock(mu_);
    value_.emplace(std::move(v));
    cv_.notify_one();
  }
  T Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return value_.has_value(); });
    return std::move(*value_);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<T> value_;
};

struct Env {
  std::string error;  // set when setup failed: every benchmark skips

  asio::io_context ioc;
  std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>>
      guard;
  std::thread io_thread;
  std::shared_ptr<net::Client> client;  // unused loopback URL: never called
  std::shared_ptr<net::RedisTier> tier;

  std::vector<std::string> bodies;
  std::vector<RequestKey> keys;

  // Cold local tiers: a memory cache with a zero budget stores nothing.
  std::shared_ptr<Cache> cold_cache;
  std::shared_ptr<net::CachedClient> shared_client;
  // Warm memory tier holding every entry, no shared tier.
  std::shared_ptr<Cache> warm_cache;
  std::shared_ptr<net::CachedClient> memory_client;

  std::atomic<uint64_t> next{0};
  std::atomic<uint64_t> logged{0};

  const std::string& NextBody() { return bodies[next++ % bodies.size()]; }
  const RequestKey& NextKey() { return keys[next++ % keys.size()]; }

  ~Env() {
    shared_client.reset();
    memory_client.reset();
    if (tier) tier->Shutdown();
    tier.reset();
    client.reset();
    guard.reset();
    ioc.stop();
    if (io_thread.joinable()) io_thread.join();
  }

  void Setup(const char* url) {
    guard = std::make_unique<
        asio::executor_work_guard<asio::io_context::executor_type>>(
        ioc.get_executor());
    io_thread = std::thread([this] { ioc.run(); });

    net::ClientOptions co;
    co.base_url = "http://127.0.0.1:9/api/v1";  // discard port: unused
    co.api_key = "bench";
    co.max_attempts = 1;
    auto client_or = net::Client::Create(ioc.get_executor(), co);
    if (!client_or.ok())
      return Fail("client: " + client_or.status().ToString());
    client = std::move(*client_or);

    auto parsed = net::RedisUrl::Parse(url);
    if (!parsed.ok())
      return Fail("LLMCACHE_BENCH_REDIS: " + parsed.status().ToString());
    net::RedisTierOptions to;
    to.redis.url = *parsed;
    to.redis.command_timeout_ms = 1000;
    to.log = [this](std::string_view line) {
      if (logged++ < 5)
        std::fprintf(stderr, "redis tier: %.*s\n",
                     static_cast<int>(line.size()), line.data());
    };
    auto tier_or = net::RedisTier::Create(std::move(to));
    if (!tier_or.ok()) return Fail("tier: " + tier_or.status().ToString());
    tier = std::move(*tier_or);
    for (int i = 0; i < 100 && !tier->Health().generations_loaded; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!tier->Health().generations_loaded) {
      return Fail("the shared tier could not read its generations from " +
                  parsed->Redacted() + ": " + tier->Health().last_error);
    }

    // Requests keyed as the cached client keys them (no namespace, no scope).
    KeyBuilder kb;
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    for (size_t i = 0; i < kEntries; ++i) {
      bodies.push_back(RequestBody(i));
      auto key = kb.Compute(bodies.back(), KeyScope{});
      if (!key.ok()) return Fail("key: " + key.status().ToString());
      keys.push_back(*key);
      auto e = std::make_shared<Entry>();
      e->body = ResponseBody(i);
      e->meta.created_ms = now;
      e->meta.expires_ms = now + 3'600'000;
      e->meta.model = kModel;
      e->meta.resolved_model = "openai/gpt-4o-mini-2024-07-18";
      e->meta.usage.prompt_tokens = 48;
      e->meta.usage.completion_tokens = 180;
      e->meta.usage.cost_nanousd = 115'200;
      tier->Put(keys.back(), std::move(e));
    }
    // Put is asynchronous: read every entry back until it is a hit.
    for (size_t i = 0; i < kEntries; ++i) {
      bool hit = false;
      for (int attempt = 0; attempt < 50 && !hit; ++attempt) {
        Waiter<Result<std::shared_ptr<const Entry>>> w;
        tier->Get(keys[i], [&w](Result<std::shared_ptr<const Entry>> r) {
          w.Set(std::move(r));
        });
        auto r = w.Wait();
        hit = r.ok() && *r && (*r)->body.size() == kResponseBytes;
        if (!hit) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (!hit) {
        return Fail("entry " + std::to_string(i) +
                    " was not readable from the shared tier after Put");
      }
    }

    CacheOptions cold;
    cold.memory_tier_bytes = 0;  // path empty: memory mode
    cold.maintenance_interval_ms = 0;
    auto cold_or = Cache::Open(cold);
    if (!cold_or.ok()) return Fail("cache: " + cold_or.status().ToString());
    cold_cache = std::shared_ptr<Cache>(std::move(*cold_or));
    // "Local tiers cold" must hold: an insert is refused and not found.
    InsertOptions io;
    (void)cold_cache->Insert(keys[0], ResponseBody(0), io);
    LookupOptions lo;
    lo.record_stats = false;
    auto probe = cold_cache->Lookup(keys[0], lo);
    if (!probe.ok() || probe->hit()) {
      return Fail("a memory cache with memory_tier_bytes = 0 stores entries");
    }

    net::CachedClientOptions so;
    so.shared = tier;
    // Each shared hit tries to fill the local tier, which refuses it: that
    // store error is expected here, so its (rate-limited) log is dropped.
    so.log = [](std::string_view) {};
    shared_client = net::CachedClient::Create(cold_cache, client, so);

    CacheOptions warm;
    warm.maintenance_interval_ms = 0;
    auto warm_or = Cache::Open(warm);
    if (!warm_or.ok()) return Fail("cache: " + warm_or.status().ToString());
    warm_cache = std::shared_ptr<Cache>(std::move(*warm_or));
    for (size_t i = 0; i < kEntries; ++i) {
      InsertOptions wo;
      wo.resolved_model = "openai/gpt-4o-mini-2024-07-18";
      wo.usage.prompt_tokens = 48;
      wo.usage.completion_tokens = 180;
      if (Status s = warm_cache->Insert(keys[i], ResponseBody(i), wo);
          !s.ok()) {
        return Fail("warm insert: " + s.ToString());
      }
    }
    memory_client = net::CachedClient::Create(warm_cache, client, {});
  }

  void Fail(std::string why) { error = std::move(why); }
};

Env* env = nullptr;

bool Ready(benchmark::State& state) {
  if (env == nullptr) {
    state.SkipWithError(
        "LLMCACHE_BENCH_REDIS is not set (e.g. redis://127.0.0.1:6379 of a "
        "throw-away redis-server); bench/shared_bench.sh starts one");
    return false;
  }
  if (!env->error.empty()) {
    state.SkipWithError(env->error.c_str());
    return false;
  }
  return true;
}

void Percentiles(benchmark::State& state, std::vector<double>& us) {
  if (us.empty()) return;
  std::sort(us.begin(), us.end());
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[std::min(us.size() - 1, us.size() * 99 / 100)];
}

// One blocking cached completion; true when it was a hit.
bool CompleteHit(net::CachedClient& cc, const std::string& body) {
  Waiter<bool> w;
  net::CachedRequest req;
  req.body = body;
  cc.Complete(std::move(req), nullptr, [&w](Result<net::CachedResponse> r) {
    w.Set(r.ok() && r->result == net::CacheResult::kHit);
  });
  return w.Wait();
}

// Checks, after a run on the cold client, that every hit came from the
// shared tier and that the local tier still holds nothing.
void CheckCold(benchmark::State& state, const net::CachedClientStats& before) {
  const net::CachedClientStats after = env->shared_client->stats();
  const uint64_t hits = after.hits - before.hits;
  const uint64_t shared = after.shared_hits - before.shared_hits;
  state.counters["local_hits"] = static_cast<double>(hits - shared);
  auto cs = env->cold_cache->GetStats();
  if (hits != shared || !cs.ok() || cs->memory_tier_entries != 0) {
    state.SkipWithError("a hit was served by the local tiers");
  }
}

void BM_SharedTierHit(benchmark::State& state) {
  if (!Ready(state)) return;
  const bool timed = state.threads() == 1;
  net::CachedClientStats before;
  if (state.thread_index() == 0) before = env->shared_client->stats();
  std::vector<double> us;
  for (auto _ : state) {
    const std::string& body = env->NextBody();
    const auto t0 = Clock::now();
    const bool hit = CompleteHit(*env->shared_client, body);
    if (timed) {
      us.push_back(
          std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    if (!hit) {
      state.SkipWithError("expected a hit from the shared tier");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (timed) Percentiles(state, us);
  if (state.thread_index() == 0) CheckCold(state, before);
}

void BM_SharedTierHitAsync(benchmark::State& state) {
  if (!Ready(state)) return;
  const int64_t window = state.range(0);
  const net::CachedClientStats before = env->shared_client->stats();
  std::mutex mu;
  std::condition_variable cv;
  int64_t in_flight = 0;
  uint64_t not_hits = 0;
  for (auto _ : state) {
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return in_flight < window; });
      ++in_flight;
    }
    net::CachedRequest req;
    req.body = env->NextBody();
    env->shared_client->Complete(
        std::move(req), nullptr, [&](Result<net::CachedResponse> r) {
          const bool hit = r.ok() && r->result == net::CacheResult::kHit;
          std::lock_guard<std::mutex> lock(mu);
          if (!hit) ++not_hits;
          --in_flight;
          cv.notify_one();
        });
  }
  {
    // The callbacks refer to this frame: wait for the last ones.
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return in_flight == 0; });
  }
  state.SetItemsProcessed(state.iterations());
  if (not_hits != 0) {
    state.SkipWithError("expected a hit from the shared tier");
    return;
  }
  CheckCold(state, before);
}

void BM_SharedTierGetRaw(benchmark::State& state) {
  if (!Ready(state)) return;
  for (auto _ : state) {
    Waiter<bool> w;
    env->tier->Get(env->NextKey(),
                   [&w](Result<std::shared_ptr<const Entry>> r) {
                     w.Set(r.ok() && *r != nullptr);
                   });
    if (!w.Wait()) {
      state.SkipWithError("expected a hit from RedisTier::Get");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_MemoryTierHit(benchmark::State& state) {
  if (!Ready(state)) return;
  const bool timed = state.threads() == 1;
  std::vector<double> us;
  for (auto _ : state) {
    const std::string& body = env->NextBody();
    const auto t0 = Clock::now();
    const bool hit = CompleteHit(*env->memory_client, body);
    if (timed) {
      us.push_back(
          std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    if (!hit) {
      state.SkipWithError("expected a hit from the memory tier");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (timed) Percentiles(state, us);
}

constexpr double kMinTime = 2.0;  // seconds per benchmark

BENCHMARK(BM_SharedTierHit)
    ->Threads(1)
    ->Threads(32)
    ->UseRealTime()
    ->MinTime(kMinTime)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SharedTierHitAsync)
    ->Arg(1)
    ->Arg(32)
    ->ArgName("window")
    ->UseRealTime()
    ->MinTime(kMinTime)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SharedTierGetRaw)
    ->Threads(1)
    ->Threads(32)
    ->UseRealTime()
    ->MinTime(kMinTime)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MemoryTierHit)
    ->Threads(1)
    ->UseRealTime()
    ->MinTime(kMinTime)
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace llmcache::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const char* url = std::getenv("LLMCACHE_BENCH_REDIS");
  std::unique_ptr<llmcache::bench::Env> env;
  if (url == nullptr || *url == '\0') {
    std::fprintf(stderr,
                 "shared_bench: LLMCACHE_BENCH_REDIS is not set; every "
                 "benchmark is skipped (bench/shared_bench.sh runs it against "
                 "a throw-away redis-server)\n");
  } else {
    env = std::make_unique<llmcache::bench::Env>();
    env->Setup(url);
    if (!env->error.empty()) {
      std::fprintf(stderr, "shared_bench: setup failed: %s\n",
                   env->error.c_str());
    }
    llmcache::bench::env = env.get();
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  llmcache::bench::env = nullptr;
  const bool failed = env && !env->error.empty();
  env.reset();
  return failed ? 1 : 0;
}
