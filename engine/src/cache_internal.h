// Pieces shared by the memory and the RocksDB cache implementations.

#ifndef LLMCACHE_ENGINE_CACHE_INTERNAL_H_
#define LLMCACHE_ENGINE_CACHE_INTERNAL_H_

#include <memory>
#include <string_view>

#include "llmcache/cache.h"
#include "stats.h"

namespace llmcache::internal {

// The entry metadata an insert stores, at time `now_ms`; kInvalidArgument
// for a negative TTL or time, or a creation time past kMaxEntryTimeMs (see
// InsertOptions).
Result<EntryMeta> MakeEntryMeta(const RequestKey& key,
                                const InsertOptions& options,
                                int64_t default_ttl_ms, int64_t now_ms);

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

// The ModelStats of `model` in `stats`, appended if it is not there yet.
ModelStats& ModelEntry(CacheStats* stats, std::string_view model);

std::unique_ptr<Cache> NewMemoryCache(const CacheOptions& options);

}  // namespace llmcache::internal

#endif  // LLMCACHE_ENGINE_CACHE_INTERNAL_H_
