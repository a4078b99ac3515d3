// main() of engine_bench: Google Benchmark's, plus an orderly release of the
// caches that benchmarks share.

#include <benchmark/benchmark.h>

namespace llmcache::bench {
void ReleaseStoreFixtures();
}  // namespace llmcache::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  llmcache::bench::ReleaseStoreFixtures();
  return 0;
}
