// CacheStats as JSON: the one shape every reporter uses (`llmcache stats
// --json`, the proxy's GET /stats "cache" section).
//
// CacheStatsJson returns one JSON object (compact, no trailing newline) with
// these members, in this order:
//
//   hits                 uint   lookups that found a live entry
//   misses               uint   lookups that did not (expired ones included)
//   expired              uint   misses that found an expired entry
//   hit_rate             number hits / (hits + misses); 0 with no lookups
//   inserts              uint
//   flushes              uint
//   evictions            uint   entries removed by the disk or memory budget
//   purged               uint   entries removed by Purge* calls
//   store_errors         uint   failed reads/writes of the store
//   bypasses             uint   requests that bypassed the cache, all reasons
//   bypasses_by_reason   object {"<BypassReasonName>": uint} for every reason
//                               except "none", in BypassReason order, zeros
//                               included
//   tokens_saved         uint   prompt + completion tokens of served hits
//   cost_saved_usd       number cost_saved_nanousd / 1e9
//   entries              uint   sum over models
//   bytes                uint   sum over models (stored value bytes)
//   disk_bytes           uint   live SST + WAL files (0 in memory mode)
//   stored_bytes         uint   live SST files of the entry column families
//                               (0 in memory mode)
//   compression_ratio    number stored_bytes / bytes; 0 when either is 0
//   memory_tier_entries  uint
//   memory_tier_bytes    uint
//   persistent           bool   CacheStats::persistent
//   models               array  ModelStatsJson of each model, sorted by model
//
// ModelStatsJson returns one object per model:
//
//   model                string base model
//   entries              uint
//   bytes                uint
//   hits                 uint
//   tokens_saved         uint
//   cost_saved_usd       number cost_saved_nanousd / 1e9
//   last_resolved_model  string "" when none was recorded
//   own_column_family    bool   false: the model lives in the overflow family
//   provider_cache_read_tokens        uint    provider prompt cache (not
//   provider_cache_write_tokens       uint    the response cache): tokens
//   provider_cache_saved_usd          number  read and written, what reads
//   provider_cache_write_premium_usd  number  saved and writes cost extra
//   drift_events         uint   times the resolved model changed
//
// Callers that know more (the CLI's database path, the first and last entry
// times per model) add members to the parsed object; they do not rename or
// drop these.

#ifndef LLMCACHE_STATS_JSON_H_
#define LLMCACHE_STATS_JSON_H_

#include <string>

#include "llmcache/cache.h"

namespace llmcache {

std::string CacheStatsJson(const CacheStats& stats);
std::string ModelStatsJson(const ModelStats& model);

}  // namespace llmcache

#endif  // LLMCACHE_STATS_JSON_H_
