// Pieces shared by the memory and the RocksDB cache implementations.

#ifndef LLMCACHE_ENGINE_CACHE_INTERNAL_H_
#define LLMCACHE_ENGINE_CACHE_INTERNAL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "llmcache/cache.h"
#include "stats.h"

namespace llmcache::internal {

// The entry metadata an insert stores, at time `now_ms`; kInvalidArgument
// for a negative TTL or time, or a creation time past kMaxEntryTimeMs (see
// InsertOptions).
Result<EntryMeta> MakeEntryMeta(const RequestKey& key,
                                const InsertOptions& options,
                                int64_t default_ttl_ms, int64_t now_ms);

// Cache::FlushCount for both implementations. Thread-safe. The caller
// bumps a count when a flush begins, under whatever orders the flush after
// the inserts that read the old count.
class FlushCounts {
 public:
  // All of BaseModel(model)'s entries in `ns` (a sum of counts that only
  // grow: any flush that covers them changes it).
  uint64_t Get(std::string_view model, std::string_view ns) const;
  void BumpAll();
  void BumpModel(std::string_view base_model);
  void BumpNamespace(std::string_view ns);

 private:
  using Counts = std::unordered_map<std::string, uint64_t, StringViewHash,
                                    std::equal_to<>>;
  mutable std::mutex mu_;
  uint64_t all_ = 0;
  Counts models_;
  Counts namespaces_;
};

// kAborted: InsertOptions::flush_count is stale (a flush began after the
// answer was asked for), so the insert stores nothing.
Status FlushedMeanwhile();

// Classifies an entry found under a key: kHit, kExpired, or kMiss when it is
// older than options.max_age_ms.
LookupOutcome Classify(const Entry& entry, const LookupOptions& options,
                       int64_t now_ms);

// Counts a lookup's outcome (and the savings of a hit) in `stats`.
void RecordLookup(StatsCollector& stats, std::string_view base_model,
                  LookupOutcome outcome, const Entry* entry);

// Adds a delta (global, bypasses, per model) into `stats`.
void AddDelta(const StatsDelta& delta, CacheStats* stats);

// Sums the per-model figures into the totals and sorts the models.
void FinishStats(CacheStats* stats);

// The rows of stats->models by model name, found or appended in constant
// time: a linear search per model made GetStats quadratic in the number of
// models (7.4 s for `llmcache stats` with 50k models). Valid while nothing
// else adds rows to stats->models.
class ModelRows {
 public:
  explicit ModelRows(CacheStats* stats);
  ModelRows(const ModelRows&) = delete;
  ModelRows& operator=(const ModelRows&) = delete;

  // The row of `model`, appended if it is not there yet.
  ModelStats& Get(std::string_view model);
  // The row of `model`, or null.
  ModelStats* Find(std::string_view model);

 private:
  CacheStats* const stats_;
  std::unordered_map<std::string, size_t, StringViewHash, std::equal_to<>> at_;
};

std::unique_ptr<Cache> NewMemoryCache(const CacheOptions& options);

}  // namespace llmcache::internal

#endif  // LLMCACHE_ENGINE_CACHE_INTERNAL_H_
