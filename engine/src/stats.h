// StatsCollector: lock-free statistics counters shared by both cache modes.
//
// Counters are signed deltas since the last Drain(): the persistent cache
// drains them into RocksDB merge operands; the memory cache never drains, so
// its deltas are its totals.
//
// Thread safety: all methods may be called concurrently.

#ifndef LLMCACHE_ENGINE_STATS_H_
#define LLMCACHE_ENGINE_STATS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "llmcache/policy.h"

namespace llmcache {

// The global counters. Persisted as "stat/<name>" with the names of
// kCounterNames (format.h), in this order: only add before kCount.
enum class Counter : int {
  kHits,
  kMisses,
  kExpired,
  kInserts,
  kFlushes,
  kEvictions,
  kPurged,
  kStoreErrors,
  kTokensSaved,
  kCostSavedNanoUsd,
  kCount,
};
std::string_view CounterName(Counter c);

// The per-model counters. Persisted as "mstat/<name>/<model>" with the names
// of kModelCounterNames (format.h), in this order: only add before kCount.
enum class ModelCounter : int {
  kHits,
  kEntries,
  kBytes,
  kTokensSaved,
  kCostSavedNanoUsd,
  kCount,
};
std::string_view ModelCounterName(ModelCounter c);

struct ModelCounters {
  std::array<std::atomic<int64_t>, static_cast<size_t>(ModelCounter::kCount)>
      v{};
  void Add(ModelCounter c, int64_t d) {
    v[static_cast<size_t>(c)].fetch_add(d, std::memory_order_relaxed);
  }
  int64_t Get(ModelCounter c) const {
    return v[static_cast<size_t>(c)].load(std::memory_order_relaxed);
  }
};

struct StatsDelta {
  std::array<int64_t, static_cast<size_t>(Counter::kCount)> global{};
  std::array<int64_t, static_cast<size_t>(BypassReason::kCount)> bypasses{};
  std::map<std::string,
           std::array<int64_t, static_cast<size_t>(ModelCounter::kCount)>>
      models;
  bool empty() const;
};

class StatsCollector {
 public:
  void Add(Counter c, int64_t d) {
    global_[static_cast<size_t>(c)].fetch_add(d, std::memory_order_relaxed);
  }
  void AddBypass(BypassReason r) {
    const size_t i = static_cast<size_t>(r);
    if (i < bypasses_.size()) {
      bypasses_[i].fetch_add(1, std::memory_order_relaxed);
    }
  }
  StatsCollector();

  // The counters of `base_model`, created on first use. The reference stays
  // valid (and keeps counting) for the collector's lifetime, even after
  // ResetModel. The hot path (the same model again on this thread) takes no
  // lock.
  ModelCounters& ForModel(std::string_view base_model);

  // Takes and zeroes all deltas.
  StatsDelta Drain();
  // Current deltas without zeroing them.
  StatsDelta Peek() const;
  // Forgets the per-model deltas of `base_model` (its entries were flushed).
  void ResetModel(std::string_view base_model);
  // Forgets every per-model delta of entries and bytes.
  void ResetAllEntryCounts();

 private:
  StatsDelta Collect(bool drain) const;

  mutable std::array<std::atomic<int64_t>, static_cast<size_t>(Counter::kCount)>
      global_{};
  mutable std::array<std::atomic<int64_t>,
                     static_cast<size_t>(BypassReason::kCount)>
      bypasses_{};
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const {
      return std::hash<std::string_view>()(s);
    }
  };
  const uint64_t id_;  // tells this collector's thread-local cache entries
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<ModelCounters>, Hash,
                     std::equal_to<>>
      models_;
};

}  // namespace llmcache

#endif  // LLMCACHE_ENGINE_STATS_H_
