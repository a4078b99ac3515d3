// Request-key benchmarks: raw SHA-256 of a request body (the baseline) vs
// KeyBuilder::Compute (parse + canonicalise + hash) on the same body.
//
// Headline target: BM_RequestKey reaches >= 50% of BM_Sha256's bytes/s at
// 2 KiB and 16 KiB. BM_RequestKey also reports the ratio itself
// (`vs_sha256`), measured on the same body right after its timed loop.

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "bench_data.h"
#include "llmcache/key.h"

namespace llmcache::bench {
namespace {

constexpr uint64_t kSeed = 42;

// Seconds per call of `fn`, averaged over at least `min_seconds`.
template <typename Fn>
double SecondsPerCall(Fn fn, double min_seconds) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  int64_t calls = 0;
  double elapsed = 0;
  do {
    for (int i = 0; i < 64; ++i) fn();
    calls += 64;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < min_seconds);
  return elapsed / static_cast<double>(calls);
}

void BM_Sha256(benchmark::State& state) {
  const std::string body =
      MakeChatRequest(static_cast<size_t>(state.range(0)), kSeed);
  for (auto _ : state) {
    Digest digest = Sha256(body);
    benchmark::DoNotOptimize(digest);
  }
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(body.size()));
}

void BM_RequestKey(benchmark::State& state) {
  const std::string body =
      MakeChatRequest(static_cast<size_t>(state.range(0)), kSeed);
  const KeyBuilder builder;
  const KeyScope scope{"bench", "tenant-1"};
  RequestInfo info;
  {
    // Fail loudly instead of timing the error path.
    Result<RequestKey> key = builder.Compute(body, scope, &info);
    if (!key.ok()) {
      state.SkipWithError(key.status().ToString().c_str());
      return;
    }
  }
  for (auto _ : state) {
    Result<RequestKey> key = builder.Compute(body, scope, &info);
    benchmark::DoNotOptimize(key);
  }
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(body.size()));

  // Headline ratio: key throughput / raw SHA-256 throughput on this body.
  const double sha = SecondsPerCall(
      [&] {
        Digest d = Sha256(body);
        benchmark::DoNotOptimize(d);
      },
      0.02);
  const double key = SecondsPerCall(
      [&] {
        Result<RequestKey> k = builder.Compute(body, scope, &info);
        benchmark::DoNotOptimize(k);
      },
      0.02);
  state.counters["vs_sha256"] = sha / key;
}

BENCHMARK(BM_Sha256)->Arg(256)->Arg(2048)->Arg(16384)->Arg(131072);
BENCHMARK(BM_RequestKey)->Arg(256)->Arg(2048)->Arg(16384)->Arg(131072);

}  // namespace
}  // namespace llmcache::bench
