// Timing two functions against each other on a shared, noisy machine.

#ifndef LLMCACHE_BENCH_INTERLEAVED_H_
#define LLMCACHE_BENCH_INTERLEAVED_H_

#include <algorithm>
#include <chrono>
#include <cstddef>

namespace llmcache::bench {

// Seconds per call of `a` and of `b`, each the fastest of 80 batches, the
// batches of the two interleaved: a slow spell of the host then falls on
// both, and keeping the fastest batch filters out most of the rest. A batch
// is about 100 kB of `body_bytes`-sized work.
struct InterleavedTimes {
  double a_s = 0;
  double b_s = 0;
};

template <typename A, typename B>
InterleavedTimes TimeInterleaved(size_t body_bytes, A a, B b) {
  using Clock = std::chrono::steady_clock;
  const int batch = static_cast<int>(std::max<size_t>(1, 100000 / body_bytes));
  double best_a = 1e300;
  double best_b = 1e300;
  for (int round = 0; round < 80; ++round) {
    const auto t0 = Clock::now();
    for (int i = 0; i < batch; ++i) a();
    const auto t1 = Clock::now();
    for (int i = 0; i < batch; ++i) b();
    const auto t2 = Clock::now();
    best_a = std::min(best_a, std::chrono::duration<double>(t1 - t0).count());
    best_b = std::min(best_b, std::chrono::duration<double>(t2 - t1).count());
  }
  return {best_a / batch, best_b / batch};
}

}  // namespace llmcache::bench

#endif  // LLMCACHE_BENCH_INTERLEAVED_H_
