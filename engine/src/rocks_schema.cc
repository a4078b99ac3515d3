// Column-family options of the persistent cache: block-based tables with a
// shared block cache and bloom filters, ZSTD with a dictionary per file for
// the entry families (CacheOptions::compression), periodic compaction, the TTL
// compaction filter that drops expired entries and time-index records, and the
// merge operator that adds counters. See format.h for what each column family
// holds.

#include "rocks_schema.h"

#include <rocksdb/compaction_filter.h>
#include <rocksdb/listener.h>
#include <rocksdb/table.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "count_out_claims.h"
#include "llmcache/clock.h"

namespace llmcache {
namespace {

// Adds little-endian 64-bit counters. Must never throw into RocksDB.
class AddOperator final : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing,
             const rocksdb::Slice& value, std::string* new_value,
             rocksdb::Logger*) const override {
    uint64_t a = 0;
    if (existing != nullptr && existing->size() == 8) {
      a = ReadLittleEndian64(existing->data());
    }
    const uint64_t b = value.size() == 8 ? ReadLittleEndian64(value.data()) : 0;
    new_value->clear();
    AppendLittleEndian64(a + b, new_value);  // wraps: signed deltas add up
    return true;
  }
  const char* Name() const override { return kAddOperatorName.data(); }
};

// Compression of the entry column families (CacheOptions::compression).
//
// Entries are JSON chat completions that all repeat the same scaffolding
// ("object":"chat.completion", "choices", "usage", ...) and the same
// vocabulary, but a 4 KiB block holds only about four of them, so per-block
// compression finds little to share. A dictionary per file taken from that
// file's own entries gives every block the common part for free. On 50k
// English-like 1 KiB completions (bench/compress_bench.cc), disk / raw
// response bytes of the compacted database: 0.54 with kLz4, 0.38 with
// kZstdDictionary (entry files / encoded values: 0.47 -> 0.32).
// The choices:
//   - ZSTD with the dictionary at every level, not only the bottom one: most
//     data of a compacted database is at the bottom anyway, but flushed and
//     intermediate files are then as small, and a hit costs the same
//     whatever level its block is on.
//   - Level 6: ZSTD decompresses at the same speed whatever the level, so the
//     level only costs flush and compaction CPU (compacting 50k entries:
//     2.6 s at level 3 with a trained dictionary, 3.0 s here).
//   - Raw-content dictionaries of 128 KiB: RocksDB's samples of the file's
//     own data blocks (the first 4 MiB of each output file; keys are
//     uniformly random digests, so any 4 MiB is a fair sample), not a
//     dictionary trained by zstd. A trained dictionary carries entropy
//     tables, and Debian's librocksdb 7.8.3 is built without digested
//     dictionaries (it calls ZSTD_decompress_usingDict, never
//     ZSTD_createDDict), so every block read from a file rebuilt those
//     tables: ~4.4 us of a ~5 us decompression of a 4.7 KB block. A raw
//     dictionary has no tables to build. Measured (bench/compress_bench.cc,
//     50k English-like 1 KiB completions; lookups that read a block from the
//     file, 4 MiB block cache): trained 32 KiB at level 3: 0.389x raw,
//     10.0 us decompression, 58k lookups/s; raw 32 KiB level 3: 0.418x;
//     raw 64 KiB level 6: 0.389x, 5.5 us, 80k/s; raw 128 KiB level 6:
//     0.383x, 5.3 us, 81k/s. The bound on the sample buffer keeps a running
//     compaction's at 4 MiB instead of a whole output file (64 MiB).
//   - Block size stays 4 KiB: a point lookup decompresses one whole block,
//     and with the dictionary 16 KiB blocks gained only ~1%.
// Files written with the earlier trained dictionaries read as they are (a
// file carries its dictionary); compactions rewrite them.
// Lookups served by the block cache (decoded blocks) or the memory tier
// (decoded entries) do not decompress.
void SetCompression(StoreCompression c, rocksdb::ColumnFamilyOptions* cf) {
  switch (c) {
    case StoreCompression::kZstdDictionary: {
      rocksdb::CompressionOptions z;
      z.level = 6;
      z.max_dict_bytes = 128u << 10;
      z.zstd_max_train_bytes = 0;  // the samples are the dictionary
      z.max_dict_buffer_bytes = 4u << 20;
      z.enabled = true;  // bottommost_compression_opts apply only if enabled
      cf->compression = rocksdb::kZSTD;
      cf->compression_opts = z;
      cf->bottommost_compression = rocksdb::kZSTD;
      cf->bottommost_compression_opts = z;
      return;
    }
    case StoreCompression::kLz4:
      cf->compression = rocksdb::kLZ4Compression;
      cf->bottommost_compression = rocksdb::kZSTD;
      return;
    case StoreCompression::kNone:
      cf->compression = rocksdb::kNoCompression;
      cf->bottommost_compression = rocksdb::kNoCompression;
      return;
  }
}

}  // namespace

std::shared_ptr<rocksdb::MergeOperator> NewAddOperator() {
  return std::make_shared<AddOperator>();
}

namespace {

// Takes `entries` entries of `bytes` bytes off `model`'s counters.
void CountOutNow(StatsCollector* stats, std::string_view model, int64_t entries,
                 int64_t bytes) {
  ModelCounters& m = stats->ForModel(model);
  m.Add(ModelCounter::kEntries, -entries);
  m.Add(ModelCounter::kBytes, -bytes);
}

// What the TTL filters of the flush or compaction running on this thread
// counted out, held until that job installs its output. A job whose output
// is not installed (its write or sync failed) dropped nothing: the entries
// stay stored, and the job that does drop them later counts them out then.
// Counted at once, they were counted out once per failed attempt.
//
// CountOutListener opens the record when RocksDB starts a flush or a
// compaction and settles it when the job ends: RocksDB announces both on
// the thread that runs the job, where its filter runs too. That holds with
// this store's settings: one subcompaction per compaction (RocksDB's
// default), and one flush at a time per database (max_background_jobs = 2
// leaves one flush slot), so a flush's output is installed by that flush
// and not by another one's commit. A filter that runs outside an announced
// job (CompactFiles, which RocksDB does not announce; this store calls it
// only in tests) counts at once, as before.
//
// The versions counted out are claimed (count_out_claims.h) until the job
// has ended: one that a purge, insert or bulk load deletes or replaces
// before the install is counted by that writer, and not here.
struct PendingCountOut {
  StatsCollector* stats = nullptr;   // the store whose job runs here, if any
  CountOutClaims* claims = nullptr;  // that store's
  // Per model: entries and bytes counted out (std::map: a model's counts
  // stay where they are while others are added).
  using Counts = std::pair<int64_t, int64_t>;
  std::map<std::string, Counts, std::less<>> models;
  // Per version counted out: its claim, its model's counts, its bytes.
  struct Claimed {
    Counts* counts;
    int64_t bytes;
  };
  std::vector<uint64_t> claimed;
  std::vector<Claimed> claimed_counts;
  std::vector<char> taken_over;

  void Begin(StatsCollector* s, CountOutClaims* c) {
    stats = s;
    claims = c;
    // An earlier job that never ended (a failed flush, whose store may be
    // gone): its claims stay until the store closes its database; writers
    // that meet them take them over, and count.
    Clear();
  }
  void End(StatsCollector* s, bool installed) {
    if (stats != s) return;  // not this store's job
    try {
      if (claims != nullptr) claims->ReleaseFilterClaims(claimed, &taken_over);
      if (installed) {
        for (size_t i = 0; i < taken_over.size(); ++i) {
          if (!taken_over[i]) continue;  // counted by the writer
          claimed_counts[i].counts->first -= 1;
          claimed_counts[i].counts->second -= claimed_counts[i].bytes;
        }
        for (const auto& [model, counts] : models) {
          CountOutNow(s, model, counts.first, counts.second);
        }
      }
    } catch (...) {
      // bad_alloc (a model's counters made): nothing escapes into RocksDB
    }
    stats = nullptr;
    claims = nullptr;
    Clear();
  }
  void Clear() {
    models.clear();
    claimed.clear();
    claimed_counts.clear();
    taken_over.clear();
  }
};
thread_local PendingCountOut pending_count_out;

// Counts one dropped entry of `model` out: when its job installs, if the
// thread runs one of this store's jobs (claiming it until then), else now.
// REQUIRES: claims->mu() held.
void CountOut(StatsCollector* stats, CountOutClaims* claims, uint64_t claim,
              std::string_view model, int64_t bytes) {
  PendingCountOut& pending = pending_count_out;
  if (pending.stats == stats) {
    auto it = pending.models.find(model);
    if (it == pending.models.end()) {
      it = pending.models.emplace(std::string(model), std::make_pair(0, 0))
               .first;
    }
    pending.claimed_counts.push_back({&it->second, bytes});
    pending.claimed.push_back(claim);  // first: End releases what is claimed
    claims->ClaimForFilter(claim);
    it->second.first += 1;
    it->second.second += bytes;
    return;
  }
  CountOutNow(stats, model, 1, bytes);
}

}  // namespace

class RocksCache::CountOutListener final : public rocksdb::EventListener {
 public:
  CountOutListener(StatsCollector* stats, CountOutClaims* claims)
      : stats_(stats), claims_(claims) {}
  const char* Name() const override { return "llmcache.CountOutListener"; }

  void OnFlushBegin(rocksdb::DB*, const rocksdb::FlushJobInfo&) override {
    pending_count_out.Begin(stats_, claims_);
  }
  // Called only for a flush whose output is installed.
  void OnFlushCompleted(rocksdb::DB*, const rocksdb::FlushJobInfo&) override {
    pending_count_out.End(stats_, true);
  }
  void OnCompactionBegin(rocksdb::DB*,
                         const rocksdb::CompactionJobInfo&) override {
    pending_count_out.Begin(stats_, claims_);
  }
  // After the install, with its status.
  void OnCompactionCompleted(rocksdb::DB*,
                             const rocksdb::CompactionJobInfo& ci) override {
    pending_count_out.End(stats_, ci.status.ok());
  }

 private:
  StatsCollector* const stats_;
  CountOutClaims* const claims_;
};

std::shared_ptr<rocksdb::EventListener> RocksCache::NewCountOutListener() {
  return std::make_shared<CountOutListener>(&stats_, &count_out_claims_);
}

// Drops expired entries (and expired time-index records) during flushes and
// compactions, and counts what it drops against the model's statistics.
class RocksCache::TtlFilterFactory final
    : public rocksdb::CompactionFilterFactory {
 public:
  enum class Kind { kModel, kOverflow, kIndex };
  TtlFilterFactory(const RocksCache* cache, const Clock* clock,
                   StatsCollector* stats, Kind kind, std::string model)
      : cache_(cache),
        clock_(clock),
        stats_(stats),
        kind_(kind),
        model_(std::move(model)) {}

  bool ShouldFilterTableFileCreation(
      rocksdb::TableFileCreationReason reason) const override {
    return reason == rocksdb::TableFileCreationReason::kCompaction ||
           reason == rocksdb::TableFileCreationReason::kFlush;
  }

  std::unique_ptr<rocksdb::CompactionFilter> CreateCompactionFilter(
      const rocksdb::CompactionFilter::Context& context) override {
    if (cache_->closing_.load(std::memory_order_acquire)) {
      // A closing store (~RocksCache) has written its statistics: what its
      // last flush, or a compaction that flush triggers, dropped would be
      // counted out in memory only. Expired entries wait for the next
      // open's compactions instead.
      return nullptr;
    }
    return std::make_unique<TtlFilter>(this, clock_->NowMillis(),
                                       context.column_family_id);
  }

  const char* Name() const override { return kTtlFilterFactoryName.data(); }

 private:
  class TtlFilter final : public rocksdb::CompactionFilter {
   public:
    TtlFilter(const TtlFilterFactory* f, int64_t now, uint32_t cf_id)
        : f_(f), now_(now), cf_id_(cf_id) {}
    bool Filter(int, const rocksdb::Slice& key, const rocksdb::Slice& value,
                std::string*, bool*) const override {
      try {
        int64_t created = 0;
        int64_t expires = 0;
        if (f_->kind_ == Kind::kIndex) {
          if (value.size() != 8) return false;
          expires = static_cast<int64_t>(ReadLittleEndian64(value.data()));
        } else if (!PeekEntryTimes(ToView(value), &created, &expires)) {
          return false;  // unknown format: keep it, `verify` reports it
        }
        if (expires == 0 || expires > now_) return false;
        if (f_->kind_ != Kind::kIndex && f_->stats_ != nullptr) {
          std::string_view model = f_->model_;
          if (f_->kind_ == Kind::kOverflow) {
            std::string_view k = ToView(key);
            if (!ConsumeModelPrefix(&k, &model)) model = {};
          }
          // Dropped, but counted out only if it is the entry a read sees
          // now: RocksDB filters the newest version within the compaction's
          // input even when a newer version or a deletion sits outside it,
          // and whoever wrote that one already counted this entry out (a
          // purge) or did not count it in (a replacing insert). Nor if a
          // purge or an insert about to write counts it (a writer's claim,
          // count_out_claims.h).
          CountOutClaims& claims = f_->cache_->count_out_claims_;
          const uint64_t claim =
              CountOutClaims::Key(cf_id_, ToView(key), created, expires);
          std::lock_guard<std::mutex> lock(claims.mu());
          if (claims.ClaimedByWriter(claim)) return true;
          if (!IsCurrent(model, key, value)) return true;
          CountOut(f_->stats_, &claims, claim, model,
                   static_cast<int64_t>(value.size()));
        }
        return true;
      } catch (...) {
        return false;  // never throw into RocksDB
      }
    }
    const char* Name() const override { return "llmcache.TtlFilter"; }

   private:
    // Whether a read of `key` now returns `value`. True when that cannot be
    // told (the database is opening or closing, the families' lock is
    // held, the family is not this one, the read failed): then the entry is
    // counted out, as before.
    bool IsCurrent(std::string_view model, const rocksdb::Slice& key,
                   const rocksdb::Slice& value) const {
      rocksdb::DB* db =
          f_->cache_->shared_->live_db.load(std::memory_order_acquire);
      if (db == nullptr) return true;
      // Never waits for the families' lock: a thread holding it may be
      // waiting for this flush or compaction (a stalled write).
      std::shared_ptr<Family> family;
      {
        std::shared_lock<std::shared_mutex> lock(f_->cache_->families_mu_,
                                                 std::try_to_lock);
        if (!lock.owns_lock()) return true;
        auto it = f_->cache_->families_.find(model);
        family = it != f_->cache_->families_.end() ? it->second
                                                   : f_->cache_->overflow_;
      }
      if (!family || family->handle->GetID() != cf_id_ ||
          family->dropped.load(std::memory_order_acquire)) {
        return true;
      }
      rocksdb::PinnableSlice now;
      rocksdb::Status s =
          db->Get(rocksdb::ReadOptions(), family->handle, key, &now);
      if (s.IsNotFound()) return false;  // deleted since: counted then
      if (!s.ok()) return true;
      return ToView(now) == ToView(value);
    }

    const TtlFilterFactory* const f_;
    const int64_t now_;
    const uint32_t cf_id_;
  };

  const RocksCache* const cache_;

  const Clock* const clock_;
  StatsCollector* const stats_;  // null in inspection mode
  const Kind kind_;
  const std::string model_;
};

rocksdb::ColumnFamilyOptions RocksCache::ModelFamilyOptions(
    std::string_view model, bool overflow) const {
  rocksdb::ColumnFamilyOptions cf;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = shared_->block_cache;
  t.filter_policy = shared_->bloom;
  t.whole_key_filtering = true;
  // Index and filter blocks live in the shared block cache (so their memory
  // is bounded by block_cache_bytes), in its high-priority pool, where data
  // blocks cannot push them out. They are partitioned: a monolithic index or
  // filter of a compacted file grows with the file (about 1.9 MB of index
  // for 500k entries), and a block that large does not fit in one shard of
  // the cache (64 MiB / 64 shards = 1 MiB), so every Get read it again and
  // decompressed it: lookups fell ~200x once the database outgrew the cache.
  // Partitions are metadata_block_size; only the small top level of each
  // file is pinned (RocksDB wiki: "Partitioned Index/Filters", "Block
  // Cache").
  t.cache_index_and_filter_blocks = true;
  t.cache_index_and_filter_blocks_with_high_priority = true;
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  t.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  t.partition_filters = true;
  t.metadata_block_size = 4096;
  t.pin_top_level_index_and_filter = true;
  t.metadata_cache_options.top_level_index_pinning = rocksdb::PinningTier::kAll;
  t.metadata_cache_options.partition_pinning =
      rocksdb::PinningTier::kFlushedAndSimilar;
  // Random 32-byte keys barely compress; uncompressed index partitions are
  // read without a decompression step.
  t.enable_index_compression = false;
  // One restart point per 16 index entries instead of per entry: keys and
  // block handles are delta-encoded between restarts. At 10M 1 KiB entries
  // the model families' index partitions took 38 MB, which with 13 MB of
  // filters overflowed the cache's high-priority pool (32 MiB of 64), so
  // lookups re-read index partitions; a lookup scans at most 16 entries
  // more within one 4 KiB partition.
  t.index_block_restart_interval = 16;
  t.format_version = 5;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  cf.write_buffer_size =
      std::clamp<size_t>(options_.write_buffer_bytes / 4, 1u << 20, 32u << 20);
  if (options_.max_disk_bytes != 0) {
    // A memtable's log is freed only when it is flushed: under a disk
    // budget, one memtable stays within an eighth of it.
    cf.write_buffer_size = std::min<size_t>(
        cf.write_buffer_size,
        std::max<uint64_t>(options_.max_disk_bytes / 8, 1u << 20));
  }
  SetCompression(options_.compression, &cf);
  cf.level_compaction_dynamic_level_bytes = true;
  cf.periodic_compaction_seconds = options_.periodic_compaction_seconds;
  cf.compaction_filter_factory = std::make_shared<TtlFilterFactory>(
      this, clock_, secondary_ ? nullptr : const_cast<StatsCollector*>(&stats_),
      overflow ? TtlFilterFactory::Kind::kOverflow
               : TtlFilterFactory::Kind::kModel,
      std::string(model));
  return cf;
}

rocksdb::WriteOptions RocksCache::WriteOpts() const {
  rocksdb::WriteOptions w;
  w.sync = options_.sync_writes;
  w.ignore_missing_column_families = true;  // second guard, see header
  return w;
}

rocksdb::ColumnFamilyOptions RocksCache::TimeIndexOptions() const {
  rocksdb::ColumnFamilyOptions cf = ModelFamilyOptions("", false);
  // Time-index records are random digests behind a timestamp and an 8-byte
  // value: nothing a dictionary would find. Cheap LZ4 above the bottom level.
  SetCompression(StoreCompression::kLz4, &cf);
  // Nothing looks an index record up by key (listings seek and scan, which
  // filters do not serve): no filter blocks to build, store or cache.
  rocksdb::BlockBasedTableOptions t =
      *cf.table_factory->GetOptions<rocksdb::BlockBasedTableOptions>();
  t.filter_policy = nullptr;
  t.partition_filters = false;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  cf.compaction_filter_factory = std::make_shared<TtlFilterFactory>(
      this, clock_, nullptr, TtlFilterFactory::Kind::kIndex, "");
  return cf;
}

}  // namespace llmcache
