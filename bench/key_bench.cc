// Request-key benchmarks: raw SHA-256 of a request body (the baseline) vs
// KeyBuilder::Compute (parse + canonicalise + hash) on the same body.
//
// Headline targets: BM_RequestKey reaches >= 0.65x BM_Sha256's bytes/s at
// 2 KiB and >= 0.75x at 16 KiB (bench/compare.py). Each BM_RequestKey* also
// reports that ratio itself (`vs_sha256`), measured on the same body by
// interleaving short batches of both and keeping the fastest batch of each
// (interleaved.h), which filters out most noise from other processes.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "bench_data.h"
#include "interleaved.h"
#include "llmcache/key.h"

namespace llmcache::bench {
namespace {

constexpr uint64_t kSeed = 42;

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

// `with_info`: also fill RequestInfo, as the caching proxy does.
void RunRequestKey(benchmark::State& state, bool with_info) {
  const std::string body =
      MakeChatRequest(static_cast<size_t>(state.range(0)), kSeed);
  const KeyBuilder builder;
  const KeyScope scope{"bench", "tenant-1"};
  RequestInfo info;
  RequestInfo* const info_out = with_info ? &info : nullptr;
  {
    // Fail loudly instead of timing the error path.
    Result<RequestKey> key = builder.Compute(body, scope, info_out);
    if (!key.ok()) {
      state.SkipWithError(key.status().ToString().c_str());
      return;
    }
  }
  for (auto _ : state) {
    Result<RequestKey> key = builder.Compute(body, scope, info_out);
    benchmark::DoNotOptimize(key);
  }
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(body.size()));
  const InterleavedTimes t = TimeInterleaved(
      body.size(),
      [&] {
        Digest d = Sha256(body);
        benchmark::DoNotOptimize(d);
      },
      [&] {
        Result<RequestKey> k = builder.Compute(body, scope, info_out);
        benchmark::DoNotOptimize(k);
      });
  state.counters["vs_sha256"] = t.a_s / t.b_s;
}

void BM_RequestKey(benchmark::State& state) { RunRequestKey(state, false); }
void BM_RequestKeyWithInfo(benchmark::State& state) {
  RunRequestKey(state, true);
}

BENCHMARK(BM_Sha256)->Arg(256)->Arg(2048)->Arg(16384)->Arg(131072);
BENCHMARK(BM_RequestKey)->Arg(256)->Arg(2048)->Arg(16384)->Arg(131072);
BENCHMARK(BM_RequestKeyWithInfo)->Arg(256)->Arg(2048)->Arg(16384)->Arg(131072);

}  // namespace
}  // namespace llmcache::bench
