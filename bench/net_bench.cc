// Network benchmarks on loopback against the fake OpenRouter: the overhead a
// miss through the cached client adds over a direct client call, and the
// latency of a cached hit. Each reports p50/p99 latency counters (us).
//
// Embeddings batches (BM_EmbeddingBatch/<percent cached>): 256 inputs of
// which that share is cached, against the fake with a per-input delay of
// 1 ms (fake/embed-delay-1000: a 256-input request takes ~256 ms upstream,
// of the order of a real embeddings API for a batch of this size);
// /0 is the whole batch sent upstream through the cache,
// BM_EmbeddingBatchDirect the same 256 inputs with the plain client.

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "fake_openrouter.h"
#include "llmcache/net/cached_client.h"

namespace llmcache::bench {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

std::string Body(uint64_t i) {
  return R"({"model":"openai/gpt-4o-mini","temperature":0,"messages":[)"
         R"({"role":"system","content":"You are a helpful assistant."},)"
         R"({"role":"user","content":"Question number )" +
         std::to_string(i) + R"(: what is the capital of France?"}]})";
}

struct Env {
  Env() : guard(asio::make_work_guard(ioc)) {
    thread = std::thread([this] { ioc.run(); });
    fake = std::move(fake::FakeOpenRouter::Start(fake::FakeOptions{})).value();
    net::ClientOptions co;
    co.base_url = fake->base_url();
    co.api_key = "bench";
    client = std::move(net::Client::Create(ioc.get_executor(), co)).value();
    char templ[] = "/tmp/llmcache-netbench-XXXXXX";
    path = mkdtemp(templ);
    CacheOptions o;
    o.path = path;
    cache = std::shared_ptr<Cache>(std::move(Cache::Open(o)).value());
    cached = net::CachedClient::Create(cache, client, {});
  }
  ~Env() {
    cached.reset();
    cache.reset();
    client.reset();
    fake->Stop();
    guard.reset();
    ioc.stop();
    thread.join();
    std::filesystem::remove_all(path);
  }
  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> guard;
  std::thread thread;
  std::unique_ptr<fake::FakeOpenRouter> fake;
  std::shared_ptr<net::Client> client;
  std::string path;
  std::shared_ptr<Cache> cache;
  std::shared_ptr<net::CachedClient> cached;
};

void Percentiles(benchmark::State& state, std::vector<double>& us) {
  if (us.empty()) return;
  std::sort(us.begin(), us.end());
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[std::min(us.size() - 1, us.size() * 99 / 100)];
}

uint64_t next_body = 0;

void BM_DirectClient(benchmark::State& state) {
  Env env;
  std::vector<double> us;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    auto r =
        env.client->AsyncComplete(Body(next_body++), asio::use_future).get();
    us.push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    if (!r.ok() || r->status != 200) state.SkipWithError("request failed");
  }
  Percentiles(state, us);
}

void BM_CachedMiss(benchmark::State& state) {
  Env env;
  std::vector<double> us;
  for (auto _ : state) {
    net::CachedRequest req;
    req.body = Body(next_body++);  // never seen: a miss, stored
    const auto t0 = Clock::now();
    auto r =
        env.cached->AsyncComplete(std::move(req), nullptr, asio::use_future)
            .get();
    us.push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    if (!r.ok() || r->result != net::CacheResult::kMiss || !r->stored) {
      state.SkipWithError("expected a stored miss");
    }
  }
  Percentiles(state, us);
}

void BM_CachedHit(benchmark::State& state) {
  Env env;
  net::CachedRequest warm;
  warm.body = Body(1);
  (void)env.cached->AsyncComplete(warm, nullptr, asio::use_future).get();
  std::vector<double> us;
  for (auto _ : state) {
    net::CachedRequest req;
    req.body = Body(1);
    const auto t0 = Clock::now();
    auto r =
        env.cached->AsyncComplete(std::move(req), nullptr, asio::use_future)
            .get();
    us.push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    if (!r.ok() || r->result != net::CacheResult::kHit) {
      state.SkipWithError("expected a hit");
    }
  }
  Percentiles(state, us);
}

constexpr int kBatchInputs = 256;
uint64_t next_input = 0;

// An embeddings request for inputs [from, from + count) of a made-up
// handbook, followed by `fresh` inputs never asked for before.
std::string EmbeddingBatch(uint64_t from, int count, int fresh,
                           const char* model = "fake/embed-delay-1000") {
  std::string body =
      R"({"model":")" + std::string(model) + R"(","dimensions":256,"input":[)";
  for (int i = 0; i < count + fresh; ++i) {
    const uint64_t n = i < count ? from + i : next_input++;
    if (i > 0) body += ',';
    body += R"("Chunk )" + std::to_string(n) +
            R"( of the handbook: deploys drain pods for 30 seconds and the )"
            R"(gateway retries idempotent requests once.")";
  }
  return body + "]}";
}

void BM_EmbeddingBatchDirect(benchmark::State& state) {
  Env env;
  std::vector<double> us;
  for (auto _ : state) {
    net::Request req;
    req.path = "/embeddings";
    req.body = EmbeddingBatch(0, 0, kBatchInputs);
    const auto t0 = Clock::now();
    auto r =
        env.client->AsyncSend(std::move(req), nullptr, asio::use_future).get();
    us.push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    if (!r.ok() || r->status != 200) state.SkipWithError("request failed");
  }
  Percentiles(state, us);
}

void BM_EmbeddingBatch(benchmark::State& state) {
  Env env;
  const int cached = static_cast<int>(kBatchInputs * state.range(0) / 100);
  std::vector<double> us;
  for (auto _ : state) {
    // Store `cached` inputs first (untimed), then ask for them among new
    // ones. The same model: the key includes it.
    state.PauseTiming();
    const uint64_t from = next_input;
    next_input += cached;
    if (cached > 0) {
      net::CachedRequest w;
      w.endpoint = Endpoint::kEmbeddings;
      w.body = EmbeddingBatch(from, cached, 0);
      auto r =
          env.cached->AsyncComplete(std::move(w), nullptr, asio::use_future)
              .get();
      if (!r.ok() || r->status != 200) state.SkipWithError("warm-up failed");
    }
    net::CachedRequest req;
    req.endpoint = Endpoint::kEmbeddings;
    req.body = EmbeddingBatch(from, cached, kBatchInputs - cached);
    state.ResumeTiming();
    const auto t0 = Clock::now();
    auto r =
        env.cached->AsyncComplete(std::move(req), nullptr, asio::use_future)
            .get();
    us.push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    if (!r.ok() || r->status != 200) state.SkipWithError("request failed");
  }
  Percentiles(state, us);
}

BENCHMARK(BM_DirectClient)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CachedMiss)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CachedHit)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_EmbeddingBatchDirect)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EmbeddingBatch)
    ->Arg(0)
    ->Arg(50)
    ->Arg(100)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace llmcache::bench

BENCHMARK_MAIN();
