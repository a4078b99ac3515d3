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
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "llmcache/cache.h"
#include "llmcache/policy.h"

namespace llmcache {

// A hash for std::string keys that also takes std::string_view (with
// std::equal_to<>): lookups by a view build no string.
struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const {
    return std::hash<std::string_view>()(s);
  }
};

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
  // Provider-side prompt caching seen in upstream usage, and resolved-model
  // changes (Cache::RecordProviderStats). Kept by FlushModel, like hits.
  kProviderCacheReadTokens,
  kProviderCacheWriteTokens,
  kProviderCacheSavedNanoUsd,
  kProviderCacheWritePremiumNanoUsd,
  kDriftEvents,
  kCount,
};
std::string_view ModelCounterName(ModelCounter c);

// This thread's stripe of striped counters: threads are dealt stripes in
// turn when they first count, so up to kStatStripes threads counting at once
// (hits on every proxy thread) each add to a cache line of their own
// instead of bouncing one line between cores.
inline constexpr size_t kStatStripes = 8;
size_t NextStatStripe();
inline size_t StatStripe() {
  thread_local size_t stripe = kStatStripes;  // constant-initialised
  if (stripe == kStatStripes) [[unlikely]] {
    stripe = NextStatStripe();
  }
  return stripe;
}

// N counters, each the sum of its stripes. Adds are relaxed atomic adds to
// the caller's stripe; reads sum the stripes. Take() and Zero() work stripe
// by stripe, so an add racing with them lands either before (taken or
// zeroed) or after (kept), never lost.
template <size_t N>
class StripedCounters {
 public:
  void Add(size_t i, int64_t d) {
    stripes_[StatStripe()].v[i].fetch_add(d, std::memory_order_relaxed);
  }
  int64_t Get(size_t i) const {
    int64_t sum = 0;
    for (const Stripe& s : stripes_) {
      sum += s.v[i].load(std::memory_order_relaxed);
    }
    return sum;
  }
  int64_t Take(size_t i) {
    int64_t sum = 0;
    for (Stripe& s : stripes_) {
      sum += s.v[i].exchange(0, std::memory_order_relaxed);
    }
    return sum;
  }
  void Zero(size_t i) {
    for (Stripe& s : stripes_) s.v[i].store(0, std::memory_order_relaxed);
  }

 private:
  struct alignas(64) Stripe {
    std::array<std::atomic<int64_t>, N> v{};
  };
  std::array<Stripe, kStatStripes> stripes_{};
};

struct ModelCounters {
  StripedCounters<static_cast<size_t>(ModelCounter::kCount)> v;
  void Add(ModelCounter c, int64_t d) { v.Add(static_cast<size_t>(c), d); }
  int64_t Get(ModelCounter c) const { return v.Get(static_cast<size_t>(c)); }
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
  void Add(Counter c, int64_t d) { global_.Add(static_cast<size_t>(c), d); }
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

  mutable StripedCounters<static_cast<size_t>(Counter::kCount)> global_;
  mutable std::array<std::atomic<int64_t>,
                     static_cast<size_t>(BypassReason::kCount)>
      bypasses_{};
  const uint64_t id_;  // tells this collector's thread-local cache entries
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<ModelCounters>,
                     StringViewHash, std::equal_to<>>
      models_;
};

// Adds a client's provider prompt-cache and drift counts to the counters of
// `base_model` (both cache modes' Cache::RecordProviderStats).
void AddProviderStats(StatsCollector& stats, std::string_view base_model,
                      const ProviderStatsDelta& delta);

}  // namespace llmcache

#endif  // LLMCACHE_ENGINE_STATS_H_
