// Purge selectors: which entries to remove, named the same way by the
// `llmcache purge` flags and the proxy's /admin/purge and /admin/flush query
// parameters, applied to a Cache in one place.
//
//   Result<PurgeSelector> s = ParsePurgeSelector("older_than", "7d");
//   Result<uint64_t> removed = Purge(*cache, *s);
//
// Thread safety: free functions; Purge is as thread-safe as the Cache.

#ifndef LLMCACHE_PURGE_H_
#define LLMCACHE_PURGE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "llmcache/cache.h"
#include "llmcache/key.h"
#include "llmcache/status.h"

namespace llmcache {

enum class PurgeKind {
  kModel,      // every entry of BaseModel(value) (drops its column family)
  kAll,        // every entry
  kKey,        // one entry, by digest
  kNamespace,  // every entry stored under namespace `value`
  kExpired,    // every entry whose TTL has passed
  kOlderThan,  // every entry created more than age_ms ago
};

struct PurgeSelector {
  PurgeKind kind = PurgeKind::kAll;
  std::string name;   // the selector's name as given, normalised ("older_than")
  std::string value;  // the model, namespace, key or duration as given
  Digest digest{};    // kKey
  int64_t age_ms = 0;  // kOlderThan

  // For messages: "every entry of model M", "the entry K", ...
  std::string Describe() const;
};

// Parses one selector. `name` is one of model, all, key, namespace, expired,
// older_than (older-than too). The flags `all` and `expired` take "", "1" or
// "true"; the others a non-empty value: a key is 64 hex digits, a duration as
// ParseDuration reads it. InvalidArgument with a message that says what is
// wrong otherwise.
Result<PurgeSelector> ParsePurgeSelector(std::string_view name,
                                         std::string_view value);

// Removes what `selector` names; returns how many entries were removed.
Result<uint64_t> Purge(Cache& cache, const PurgeSelector& selector);

// Reads a duration: a sequence of <digits><unit> with units ms, s, m, h, d,
// w ("90s", "15m", "1h30m", "7d"). Returns milliseconds. InvalidArgument for
// anything else (empty, negative, fractional, a number without a unit, which
// is never taken for seconds, unknown unit, overflow).
Result<int64_t> ParseDuration(std::string_view text);

}  // namespace llmcache

#endif  // LLMCACHE_PURGE_H_
