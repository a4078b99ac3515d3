// Cache::Open, the bulk loader of a cache without table files, and the
// helpers both implementations share.

#include <algorithm>
#include <cstdlib>
#include <set>

#include "cache_internal.h"
#include "llmcache/clock.h"
#include "rocks_cache.h"

namespace llmcache {
namespace {

// A cache without table files (memory mode): one Insert per entry.
class InsertingLoader final : public BulkLoader {
 public:
  explicit InsertingLoader(Cache* cache) : cache_(cache) {}

  Status Add(const RequestKey& key, std::string_view body,
             const InsertOptions& options) override {
    if (finished_) return FailedPreconditionError("bulk load is finished");
    LLMCACHE_RETURN_IF_ERROR(cache_->Insert(key, body, options));
    ++stats_.added;
    return Status();
  }
  Result<BulkLoadStats> Finish() override {
    if (finished_) return FailedPreconditionError("bulk load is finished");
    finished_ = true;
    return stats_;
  }
  uint64_t stored() const override { return stats_.added; }

 private:
  Cache* const cache_;
  BulkLoadStats stats_;
  bool finished_ = false;
};

}  // namespace

Result<std::unique_ptr<BulkLoader>> Cache::NewBulkLoader(
    const BulkLoadOptions&) {
  return std::unique_ptr<BulkLoader>(new InsertingLoader(this));
}

std::string DefaultDatabasePath() {
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v != nullptr ? std::string(v) : std::string();
  };
  if (std::string p = env("LLMCACHE_DB"); !p.empty()) return p;
  if (std::string p = env("XDG_CACHE_HOME"); !p.empty()) return p + "/llmcache";
  if (std::string p = env("HOME"); !p.empty()) return p + "/.cache/llmcache";
  return "llmcache-db";
}

Result<std::unique_ptr<Cache>> Cache::Open(const CacheOptions& options) {
  if (options.default_ttl_ms < 0) {
    return InvalidArgumentError("default_ttl_ms must be >= 0");
  }
  if (options.maintenance_interval_ms < 0) {
    return InvalidArgumentError(
        "maintenance_interval_ms must be >= 0 (0 = no maintenance thread)");
  }
  switch (options.compression) {
    case StoreCompression::kZstdDictionary:
    case StoreCompression::kLz4:
    case StoreCompression::kNone:
      break;
    default:
      return InvalidArgumentError("compression is not a StoreCompression");
  }
  if (options.path.empty() && options.memory_tier_bytes == 0) {
    return InvalidArgumentError(
        "memory mode (no path) keeps every entry in memory_tier_bytes: it "
        "must be > 0");
  }
  if (options.path.empty()) return internal::NewMemoryCache(options);
  return RocksCache::Open(options);
}

Result<uint64_t> Cache::PurgeCreatedBefore(int64_t cutoff_ms) {
  // By the system clock; a cutoff after now is taken as now. Saturating: a
  // cutoff far in the past is the largest age.
  int64_t age = 0;
  if (__builtin_sub_overflow(Clock::System()->NowMillis(), cutoff_ms, &age)) {
    age = INT64_MAX;
  }
  return PurgeOlderThan(std::max<int64_t>(0, age));
}

Result<std::unique_ptr<Cache>> Cache::Inspect(const InspectOptions& options) {
  if (options.path.empty()) {
    return InvalidArgumentError("inspection needs a database path");
  }
  return RocksCache::OpenSecondary(options);
}

// Memory mode holds few entries: collecting their keys and sorting them is
// cheap. Entries are fetched again (Find) rather than copied, and one
// replaced or removed since the walk is left out, as an index walk leaves
// out a record whose entry has changed.
Status Cache::ForEachEntryByAge(
    const std::optional<std::string>& model, bool newest_first,
    const std::function<bool(const EntryView&)>& fn,
    const std::function<void(std::string_view, const Status&)>& on_corrupt) {
  struct Item {
    int64_t created_ms;
    Digest digest;
  };
  std::vector<Item> items;
  LLMCACHE_RETURN_IF_ERROR(ForEachEntry(
      model,
      [&](const EntryView& v) {
        items.push_back(Item{v.entry.meta.created_ms, v.digest});
        return true;
      },
      on_corrupt));
  std::sort(items.begin(), items.end(), [&](const Item& a, const Item& b) {
    if (a.created_ms != b.created_ms) {
      return newest_first ? a.created_ms > b.created_ms
                          : a.created_ms < b.created_ms;
    }
    return a.digest < b.digest;
  });
  for (const Item& item : items) {
    LLMCACHE_ASSIGN_OR_RETURN(std::shared_ptr<const Entry> e,
                              Find(item.digest));
    if (!e || e->meta.created_ms != item.created_ms) continue;
    if (!fn(EntryView{item.digest, BaseModel(e->meta.model), *e,
                      StoredSize(*e)})) {
      break;
    }
  }
  return Status();
}

Result<std::map<std::string, AgeRange, std::less<>>> Cache::AgeRanges(
    const std::vector<std::string>& models) {
  std::set<std::string, std::less<>> wanted;
  for (const std::string& m : models) wanted.emplace(BaseModel(m));
  std::map<std::string, AgeRange, std::less<>> ranges;
  LLMCACHE_RETURN_IF_ERROR(ForEachEntry(
      std::nullopt,
      [&](const EntryView& v) {
        if (!wanted.contains(v.base_model)) return true;
        const int64_t c = v.entry.meta.created_ms;
        auto it =
            ranges.try_emplace(std::string(v.base_model), AgeRange{c, c}).first;
        it->second.oldest_ms = std::min(it->second.oldest_ms, c);
        it->second.newest_ms = std::max(it->second.newest_ms, c);
        return true;
      },
      [](std::string_view, const Status&) {}));
  return ranges;
}

namespace internal {

uint64_t FlushCounts::Get(std::string_view model, std::string_view ns) const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t n = all_;
  if (auto it = models_.find(BaseModel(model)); it != models_.end()) {
    n += it->second;
  }
  if (auto it = namespaces_.find(ns); it != namespaces_.end()) n += it->second;
  return n;
}

void FlushCounts::BumpAll() {
  std::lock_guard<std::mutex> lock(mu_);
  ++all_;
}

void FlushCounts::BumpModel(std::string_view base_model) {
  std::lock_guard<std::mutex> lock(mu_);
  ++models_[std::string(base_model)];
}

void FlushCounts::BumpNamespace(std::string_view ns) {
  std::lock_guard<std::mutex> lock(mu_);
  ++namespaces_[std::string(ns)];
}

Status FlushedMeanwhile() {
  return AbortedError(
      "not stored: a flush began after this answer was asked for");
}

Result<EntryMeta> MakeEntryMeta(const RequestKey& key,
                                const InsertOptions& options,
                                int64_t default_ttl_ms, int64_t now_ms) {
  if (options.ttl_ms && *options.ttl_ms < 0) {
    return InvalidArgumentError("ttl_ms must be >= 0");
  }
  // Times before 1970 are stored as negative timestamps, which every later
  // read reports as damage (as an expiry that overflowed did).
  if (options.created_ms < 0 || options.created_ms > kMaxEntryTimeMs ||
      options.expires_ms < 0) {
    return InvalidArgumentError(
        "created_ms must be Unix milliseconds from 1970 to the end of the "
        "year 9999, expires_ms from 1970 (0 = not set)");
  }
  EntryMeta meta;
  meta.flags = options.flags;
  meta.created_ms = options.created_ms != 0 ? options.created_ms : now_ms;
  const int64_t ttl = options.ttl_ms.value_or(default_ttl_ms);
  if (options.expires_ms != 0) {
    // Entries written before the clamp may carry a later one.
    meta.expires_ms = std::min(options.expires_ms, kMaxEntryTimeMs);
  } else {
    meta.expires_ms = ExpiryAfter(meta.created_ms, ttl);
  }
  meta.usage = options.usage;
  meta.model = key.model;
  meta.resolved_model = std::string(options.resolved_model);
  meta.ns = std::string(options.ns);
  return meta;
}

LookupOutcome Classify(const Entry& entry, const LookupOptions& options,
                       int64_t now_ms) {
  if (entry.meta.ExpiredAt(now_ms)) return LookupOutcome::kExpired;
  if (options.max_age_ms >= 0 &&
      now_ms - entry.meta.created_ms > options.max_age_ms) {
    return LookupOutcome::kMiss;
  }
  return LookupOutcome::kHit;
}

void RecordLookup(StatsCollector& stats, std::string_view base_model,
                  LookupOutcome outcome, const Entry* entry) {
  switch (outcome) {
    case LookupOutcome::kHit: {
      const Usage& u = entry->meta.usage;
      const int64_t tokens =
          static_cast<int64_t>(u.prompt_tokens + u.completion_tokens);
      stats.Add(Counter::kHits, 1);
      stats.Add(Counter::kTokensSaved, tokens);
      stats.Add(Counter::kCostSavedNanoUsd, u.cost_nanousd);
      ModelCounters& m = stats.ForModel(base_model);
      m.Add(ModelCounter::kHits, 1);
      m.Add(ModelCounter::kTokensSaved, tokens);
      m.Add(ModelCounter::kCostSavedNanoUsd, u.cost_nanousd);
      break;
    }
    case LookupOutcome::kExpired:
      stats.Add(Counter::kExpired, 1);
      stats.Add(Counter::kMisses, 1);
      break;
    case LookupOutcome::kMiss:
      stats.Add(Counter::kMisses, 1);
      break;
  }
}

ModelRows::ModelRows(CacheStats* stats) : stats_(stats) {
  at_.reserve(stats->models.size());
  for (size_t i = 0; i < stats->models.size(); ++i) {
    at_.emplace(stats->models[i].model, i);
  }
}

ModelStats& ModelRows::Get(std::string_view model) {
  if (ModelStats* m = Find(model)) return *m;
  at_.emplace(std::string(model), stats_->models.size());
  stats_->models.emplace_back();
  stats_->models.back().model = std::string(model);
  return stats_->models.back();
}

ModelStats* ModelRows::Find(std::string_view model) {
  auto it = at_.find(model);
  return it == at_.end() ? nullptr : &stats_->models[it->second];
}

namespace {
uint64_t Plus(uint64_t base, int64_t delta) {
  // Counters never go below zero, even when a delta over-corrects.
  if (delta < 0 && static_cast<uint64_t>(-delta) > base) return 0;
  return base + static_cast<uint64_t>(delta);
}
}  // namespace

void AddDelta(const StatsDelta& d, CacheStats* s) {
  auto g = [&](Counter c) { return d.global[static_cast<size_t>(c)]; };
  s->hits = Plus(s->hits, g(Counter::kHits));
  s->misses = Plus(s->misses, g(Counter::kMisses));
  s->expired = Plus(s->expired, g(Counter::kExpired));
  s->inserts = Plus(s->inserts, g(Counter::kInserts));
  s->flushes = Plus(s->flushes, g(Counter::kFlushes));
  s->evictions = Plus(s->evictions, g(Counter::kEvictions));
  s->purged = Plus(s->purged, g(Counter::kPurged));
  s->store_errors = Plus(s->store_errors, g(Counter::kStoreErrors));
  s->tokens_saved = Plus(s->tokens_saved, g(Counter::kTokensSaved));
  s->cost_saved_nanousd += g(Counter::kCostSavedNanoUsd);
  for (size_t i = 0; i < s->bypasses.size(); ++i) {
    s->bypasses[i] = Plus(s->bypasses[i], d.bypasses[i]);
  }
  ModelRows rows(s);
  for (const auto& [model, v] : d.models) {
    ModelStats& m = rows.Get(model);
    // An init-capture: clang before 16 cannot capture a structured binding.
    auto mv = [&counters = v](ModelCounter c) {
      return counters[static_cast<size_t>(c)];
    };
    m.hits = Plus(m.hits, mv(ModelCounter::kHits));
    m.entries = Plus(m.entries, mv(ModelCounter::kEntries));
    m.bytes = Plus(m.bytes, mv(ModelCounter::kBytes));
    m.tokens_saved = Plus(m.tokens_saved, mv(ModelCounter::kTokensSaved));
    m.cost_saved_nanousd += mv(ModelCounter::kCostSavedNanoUsd);
    m.provider_cache_read_tokens =
        Plus(m.provider_cache_read_tokens,
             mv(ModelCounter::kProviderCacheReadTokens));
    m.provider_cache_write_tokens =
        Plus(m.provider_cache_write_tokens,
             mv(ModelCounter::kProviderCacheWriteTokens));
    m.provider_cache_saved_nanousd +=
        mv(ModelCounter::kProviderCacheSavedNanoUsd);
    m.provider_cache_write_premium_nanousd +=
        mv(ModelCounter::kProviderCacheWritePremiumNanoUsd);
    m.drift_events = Plus(m.drift_events, mv(ModelCounter::kDriftEvents));
  }
}

void FinishStats(CacheStats* s) {
  std::sort(s->models.begin(), s->models.end(),
            [](const ModelStats& a, const ModelStats& b) {
              return a.model < b.model;
            });
  s->entries = 0;
  s->bytes = 0;
  for (const ModelStats& m : s->models) {
    s->entries += m.entries;
    s->bytes += m.bytes;
  }
}

}  // namespace internal
}  // namespace llmcache
