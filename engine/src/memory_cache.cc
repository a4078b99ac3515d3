// Memory mode: the memory tier alone, same API as the persistent cache.

#include <mutex>

#include "cache_internal.h"
#include "llmcache/clock.h"
#include "memory_tier.h"

namespace llmcache::internal {
namespace {

class MemoryCache final : public Cache {
 public:
  explicit MemoryCache(const CacheOptions& options)
      : options_(options),
        clock_(options.clock ? options.clock : Clock::System()),
        tier_(options.memory_tier_bytes) {
    tier_.set_eviction_listener([this](const Digest&, const Entry& e, size_t) {
      stats_.Add(Counter::kEvictions, 1);
      CountRemoval(e);
    });
  }

  Result<LookupResult> Lookup(const RequestKey& key,
                              const LookupOptions& options) override {
    LookupResult result;
    // As RocksCache::Lookup: the model's name is read for the statistics.
    if (options.record_stats) __builtin_prefetch(key.base_model.data());
    std::shared_ptr<const Entry> e = tier_.Get(key.digest);
    if (e) {
      result.outcome = Classify(*e, options, clock_->NowMillis());
      if (result.outcome == LookupOutcome::kHit) {
        result.entry = std::move(e);
        result.from_memory = true;
      } else if (result.outcome == LookupOutcome::kExpired) {
        std::lock_guard<std::mutex> lock(write_mu_);
        if (auto gone = tier_.Erase(key.digest)) CountRemoval(*gone);
      }
    }
    if (options.record_stats) {
      RecordLookup(stats_, key.base_model, result.outcome, result.entry.get());
    }
    return result;
  }

  Status Insert(const RequestKey& key, std::string_view body,
                const InsertOptions& options) override {
    Result<EntryMeta> meta = MakeEntryMeta(
        key, options, options_.default_ttl_ms, clock_->NowMillis());
    if (!meta.ok()) return meta.status();
    auto e = std::make_shared<Entry>();
    e->meta = std::move(*meta);
    e->body.assign(body);
    const size_t size = StoredSize(*e);
    std::lock_guard<std::mutex> lock(write_mu_);
    if (options.flush_count &&
        *options.flush_count != flush_counts_.Get(key.base_model, options.ns)) {
      return FlushedMeanwhile();
    }
    if (auto old = tier_.Erase(key.digest)) CountRemoval(*old);
    if (!tier_.Put(key.digest, std::move(e))) {
      return ResourceExhaustedError(
          "entry of " + std::to_string(size) +
          " bytes does not fit the memory budget's shard of " +
          std::to_string(options_.memory_tier_bytes / 16) + " bytes");
    }
    stats_.Add(Counter::kInserts, 1);
    ModelCounters& m = stats_.ForModel(key.base_model);
    m.Add(ModelCounter::kEntries, 1);
    m.Add(ModelCounter::kBytes, static_cast<int64_t>(size));
    return Status();
  }

  void RecordBypass(BypassReason reason) override { stats_.AddBypass(reason); }

  void RecordProviderStats(std::string_view model,
                           const ProviderStatsDelta& delta) override {
    AddProviderStats(stats_, BaseModel(model), delta);
  }

  Result<uint64_t> FlushModel(std::string_view model) override {
    const std::string_view base = BaseModel(model);
    std::lock_guard<std::mutex> lock(write_mu_);
    flush_counts_.BumpModel(base);
    const size_t n = tier_.EraseIf([&](const Digest&, const Entry& e) {
      return BaseModel(e.meta.model) == base;
    });
    stats_.ResetModel(base);
    stats_.Add(Counter::kFlushes, 1);
    return static_cast<uint64_t>(n);
  }

  Status FlushAll() override {
    std::lock_guard<std::mutex> lock(write_mu_);
    flush_counts_.BumpAll();
    tier_.Clear();
    stats_.ResetAllEntryCounts();
    stats_.Add(Counter::kFlushes, 1);
    return Status();
  }

  Result<uint64_t> PurgeKey(const Digest& digest) override {
    std::lock_guard<std::mutex> lock(write_mu_);
    auto gone = tier_.Erase(digest);
    if (!gone) return 0;
    CountRemoval(*gone);
    stats_.Add(Counter::kPurged, 1);
    return 1;
  }

  uint64_t FlushCount(std::string_view model,
                      std::string_view ns) const override {
    return flush_counts_.Get(model, ns);
  }

  Result<uint64_t> PurgeNamespace(std::string_view ns) override {
    {
      std::lock_guard<std::mutex> lock(write_mu_);
      flush_counts_.BumpNamespace(ns);
    }
    return PurgeIf([&](const Entry& e) { return e.meta.ns == ns; });
  }

  Result<uint64_t> PurgeExpired() override {
    const int64_t now = clock_->NowMillis();
    return PurgeIf([&](const Entry& e) { return e.meta.ExpiredAt(now); });
  }

  Result<uint64_t> PurgeOlderThan(int64_t age_ms) override {
    if (age_ms < 0) return InvalidArgumentError("age_ms must be >= 0");
    return PurgeCreatedBefore(clock_->NowMillis() - age_ms);
  }

  Result<uint64_t> PurgeCreatedBefore(int64_t cutoff) override {
    return PurgeIf([&](const Entry& e) { return e.meta.created_ms < cutoff; });
  }

  Result<std::shared_ptr<const Entry>> Find(const Digest& digest) override {
    return tier_.Get(digest);
  }

  Status ForEachEntry(
      const std::optional<std::string>& model,
      const std::function<bool(const EntryView&)>& fn,
      const std::function<void(std::string_view, const Status&)>&) override {
    std::optional<std::string_view> base;
    if (model) base = BaseModel(*model);
    bool go = true;
    tier_.ForEach([&](const Digest& d, const std::shared_ptr<const Entry>& e) {
      if (!go) return;
      const std::string_view b = BaseModel(e->meta.model);
      if (base && b != *base) return;
      go = fn(EntryView{d, b, *e, StoredSize(*e)});
    });
    return Status();
  }

  Result<CacheStats> GetStats() override {
    CacheStats s;
    AddDelta(stats_.Peek(), &s);
    FinishStats(&s);
    s.memory_tier_entries = tier_.size();
    s.memory_tier_bytes = tier_.bytes();
    return s;
  }

  Status CatchUp() override { return Status(); }
  using Cache::Compact;
  Status Compact(const CompactOptions&) override { return Status(); }
  Status RunMaintenance() override { return Status(); }
  bool persistent() const override { return false; }
  int64_t default_ttl_ms() const override { return options_.default_ttl_ms; }

 private:
  // REQUIRES: write_mu_ held, or called from the eviction listener.
  void CountRemoval(const Entry& e) {
    ModelCounters& m = stats_.ForModel(BaseModel(e.meta.model));
    m.Add(ModelCounter::kEntries, -1);
    m.Add(ModelCounter::kBytes, -static_cast<int64_t>(StoredSize(e)));
  }

  template <typename Pred>
  Result<uint64_t> PurgeIf(Pred pred) {
    std::lock_guard<std::mutex> lock(write_mu_);
    const size_t n = tier_.EraseIf([&](const Digest&, const Entry& e) {
      if (!pred(e)) return false;
      CountRemoval(e);
      return true;
    });
    stats_.Add(Counter::kPurged, static_cast<int64_t>(n));
    return static_cast<uint64_t>(n);
  }

  const CacheOptions options_;
  const Clock* const clock_;
  StatsCollector stats_;
  std::mutex write_mu_;  // serialises mutations so entry counts stay exact
  // Bumped under write_mu_, so an insert sees a flush begun before it.
  FlushCounts flush_counts_;
  MemoryTier tier_;
};

}  // namespace

std::unique_ptr<Cache> NewMemoryCache(const CacheOptions& options) {
  return std::make_unique<MemoryCache>(options);
}

}  // namespace llmcache::internal
