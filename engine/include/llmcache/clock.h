// Clock: the engine's only source of time, injectable for tests.

#ifndef LLMCACHE_CLOCK_H_
#define LLMCACHE_CLOCK_H_

#include <atomic>
#include <cstdint>

namespace llmcache {

// Thread safety: implementations must be safe to call from any thread,
// including RocksDB's compaction threads.
class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch (wall clock: entries store absolute
  // creation and expiry times).
  virtual int64_t NowMillis() const = 0;

  // The process-wide system clock. Never null; never destroyed.
  static const Clock* System();
};

// A clock that moves only when told to. For tests.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t now_ms = 1'700'000'000'000) : now_ms_(now_ms) {}
  int64_t NowMillis() const override {
    return now_ms_.load(std::memory_order_acquire);
  }
  void Set(int64_t now_ms) { now_ms_.store(now_ms, std::memory_order_release); }
  void Advance(int64_t delta_ms) {
    now_ms_.fetch_add(delta_ms, std::memory_order_acq_rel);
  }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace llmcache

#endif  // LLMCACHE_CLOCK_H_
