// RocksCache: removing entries. Flushes drop column families (constant
// time); purges by key or namespace scan entries; purges by age or expiry
// walk the creation-time records oldest first (WalkTimeIndex). Deletions go in
// chunks under the write fence and keep the entry counters and the memory tier
// right.

#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/metadata.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache_internal.h"
#include "format.h"
#include "rocks_cache.h"
#include "rocks_schema.h"
#include "rocks_status.h"

namespace llmcache {
namespace {

// Entries deleted per write batch, and per hold of the write fence, which
// inserts wait for (bench/store_bench.cc BM_InsertDuringAgePurge, 500k
// entries purged at ~90k/s: inserts meanwhile 15-16k/s, p99 0.55 ms, at
// most 41-52 ms; 256: 16-17k/s, p99 1.2 ms, at most 23-25 ms, but four
// times the write batches, each an fsync with sync_writes).
constexpr size_t kPurgeChunk = 1024;

// Has `cf` a table file with keys in [begin, end) (null: unbounded)?
bool FilesOverlap(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                  const rocksdb::Slice* begin, const rocksdb::Slice* end) {
  rocksdb::ColumnFamilyMetaData meta;
  db->GetColumnFamilyMetaData(cf, &meta);
  for (const rocksdb::LevelMetaData& level : meta.levels) {
    for (const rocksdb::SstFileMetaData& file : level.files) {
      if (begin != nullptr &&
          rocksdb::Slice(file.largestkey).compare(*begin) < 0) {
        continue;
      }
      if (end != nullptr &&
          rocksdb::Slice(file.smallestkey).compare(*end) >= 0) {
        continue;
      }
      return true;
    }
  }
  return false;
}

// After a flush wrote range tombstones over [begin, end) of `cf`: gives
// the space of the table files they cover back now, by compacting the range
// (not exclusive: an exclusive manual compaction, RocksDB's default, first
// waits for every compaction running in the database). Only if a table file
// overlaps the range: such a compaction still queues behind the running one
// on the database's one compaction thread, which made every flush right
// after a bulk import wait for the import's files to be compressed
// (1.3-5.7 s at 1M entries, longer the larger the database). A failure here
// degrades the store (ErrorListener); the flush is done.
void ReclaimIfStored(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                     const rocksdb::Slice* begin, const rocksdb::Slice* end) {
  if (!FilesOverlap(db, cf, begin, end)) return;
  rocksdb::CompactRangeOptions cro;
  cro.exclusive_manual_compaction = false;
  cro.allow_write_stall = true;  // its memtable flush: no wait for a stall
  (void)db->CompactRange(cro, cf, begin, end);
}

}  // namespace

Result<uint64_t> RocksCache::FlushModel(std::string_view model) {
  const std::string base(BaseModel(model));
  LLMCACHE_ASSIGN_OR_RETURN(uint64_t removed, FlushBase(base));
  // A model id with two variants ("a/b:free:online") had a family and
  // counters of its own, "a/b:free", before BaseModel() stripped from the
  // first ':' (2026-12-07). They hold variants of `base`: they go with it.
  std::vector<std::string> older;
  {
    std::shared_lock<std::shared_mutex> lock(families_mu_);
    for (const auto& [name, family] : families_) {
      if (name != base && BaseModel(name) == base) older.push_back(name);
    }
  }
  {
    std::lock_guard<std::mutex> stats_lock(stats_write_mu_);
    CacheStats stats;
    (void)LoadPersistedStats(&stats);
    internal::AddDelta(stats_.Peek(), &stats);
    for (const ModelStats& ms : stats.models) {
      if (ms.model != base && BaseModel(ms.model) == base &&
          std::find(older.begin(), older.end(), ms.model) == older.end()) {
        older.push_back(ms.model);
      }
    }
  }
  for (const std::string& name : older) {
    LLMCACHE_ASSIGN_OR_RETURN(const uint64_t n, FlushBase(name));
    removed += n;
  }
  return removed;
}

Result<uint64_t> RocksCache::FlushBase(const std::string& base) {
  DbLock db_lock(this);
  LLMCACHE_RETURN_IF_ERROR(MutationAllowed());
  std::string begin, end;
  AppendModelPrefix(base, &begin);
  end = begin + std::string(kDigestSize + 1, '\xff');
  std::shared_ptr<Family> family;
  uint64_t known = 0;
  auto forget_in_memory = [&] {
    epoch_.fetch_add(1, std::memory_order_acq_rel);
    if (tier_) {
      tier_->EraseIf([&](const Digest&, const Entry& e) {
        return BaseModel(e.meta.model) == base;
      });
    }
  };
  {
    std::unique_lock<FenceMutex> fence(write_fence_);
    LLMCACHE_RETURN_IF_ERROR(WriteAllowed());
    flush_counts_.BumpModel(base);
    {
      std::unique_lock<std::shared_mutex> lock(families_mu_);
      auto it = families_.find(base);
      if (it != families_.end()) {
        family = it->second;
        families_.erase(it);
      }
      overflow_models_.erase(base);  // its overflow range goes below
    }
    rocksdb::WriteBatch batch;
    if (family) {
      rocksdb::Status s = db_->DropColumnFamily(family->handle);
      if (!s.ok()) {
        std::unique_lock<std::shared_mutex> lock(families_mu_);
        families_[base] = family;
        return WriteFailed(s, "dropping the column family of " + base, false);
      }
      family->dropped.store(true, std::memory_order_release);
      batch.Delete(meta_cf_,
                   std::string(kCfMetaPrefix) + ModelToColumnFamilyName(base));
    }
    // Entries the model may have in the overflow family, and its records
    // in the per-model time index.
    batch.DeleteRange(overflow_->handle, begin, end);
    {
      std::string index_begin, index_end;
      ModelTimeIndexRange(base, &index_begin, &index_end);
      batch.DeleteRange(model_time_cf_, index_begin, index_end);
    }

    // Statistics: the model has no entries any more.
    {
      std::lock_guard<std::mutex> stats_lock(stats_write_mu_);
      CacheStats persisted;
      (void)LoadPersistedStats(&persisted);
      internal::AddDelta(stats_.Peek(), &persisted);
      for (const ModelStats& ms : persisted.models) {
        if (ms.model == base) known = ms.entries;
      }
      stats_.ResetModel(base);
      batch.Delete(meta_cf_, ModelStatKey(ModelCounter::kEntries, base));
      batch.Delete(meta_cf_, ModelStatKey(ModelCounter::kBytes, base));
      rocksdb::Status s = db_->Write(WriteOpts(), &batch);
      if (!s.ok()) {
        Status st = WriteFailed(s, "flushing " + base, true);
        if (family) {
          // The family is gone, its mapping and counters are not. Degraded
          // (if the error did not already do it), nothing else is written
          // until the recovery has finished the flush
          // (FinishInterruptedFlushes), as the next open would after a kill
          // right here. The family's entries are gone: so are their copies
          // in the memory tier.
          Degrade(st.ToString(), Damage::kResumable);
          forget_in_memory();
        }
        return st;
      }
    }
    forget_in_memory();
    stats_.Add(Counter::kFlushes, 1);
  }
  // Give the space of the model's entries in the overflow family back
  // (outside the fence: slow). The model's own family went with its drop:
  // unless the model had entries in the overflow family, nothing waits.
  if (!degraded_.load(std::memory_order_acquire)) {
    const rocksdb::Slice b(begin), e(end);
    ReclaimIfStored(db_.get(), FamilyFor("\x01not-a-model")->handle, &b, &e);
  }
  return known;
}

Status RocksCache::FlushAll() {
  DbLock db_lock(this);
  std::unique_lock<FenceMutex> fence(write_fence_);
  LLMCACHE_RETURN_IF_ERROR(WriteAllowed());
  flush_counts_.BumpAll();
  // A failure half way leaves families dropped and not recreated: only a
  // reopen (which creates the missing ones) repairs that.
  auto half_done = [this](Status st) {
    Degrade(st.ToString(), Damage::kFatal);
    return st;
  };
  auto failed = [&](const rocksdb::Status& s, std::string_view what) {
    return half_done(WriteFailed(s, what, false));
  };
  std::vector<std::shared_ptr<Family>> dropped;
  {
    std::unique_lock<std::shared_mutex> lock(families_mu_);
    for (auto& [model, f] : families_) dropped.push_back(f);
    dropped.push_back(overflow_);
    families_.clear();
    overflow_models_.clear();
  }
  for (const std::shared_ptr<Family>& f : dropped) {
    rocksdb::Status s = db_->DropColumnFamily(f->handle);
    if (!s.ok()) return failed(s, "dropping column families");
    f->dropped.store(true, std::memory_order_release);
  }
  // A fresh overflow family.
  rocksdb::ColumnFamilyHandle* handle = nullptr;
  rocksdb::Status s =
      db_->CreateColumnFamily(ModelFamilyOptions("", true),
                              std::string(kOverflowColumnFamily), &handle);
  if (!s.ok()) return failed(s, "recreating the overflow family");
  {
    std::unique_lock<std::shared_mutex> lock(families_mu_);
    overflow_ = std::make_shared<Family>(db_.get(), handle, "", true);
  }
  // The indexes are emptied in place, with the metadata: their handles are
  // read under the shared database lock alone (listings, purges), so they
  // are never replaced while the database is open.
  {
    std::lock_guard<std::mutex> stats_lock(stats_write_mu_);
    rocksdb::WriteBatch batch;
    for (rocksdb::ColumnFamilyHandle* cf : {time_cf_, model_time_cf_}) {
      if (cf == nullptr) continue;
      if (Status st = DeleteAllInIndex(cf, &batch); !st.ok()) {
        return half_done(std::move(st));
      }
    }
    // Metadata: mappings and entry counters go.
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), meta_cf_));
    // "mstat/entries/" and "mstat/bytes/": every model's entry counters.
    const std::string entries_prefix = ModelStatKey(ModelCounter::kEntries, "");
    const std::string bytes_prefix = ModelStatKey(ModelCounter::kBytes, "");
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::string_view k = ToView(it->key());
      if (k.starts_with(kCfMetaPrefix) || k.starts_with(entries_prefix) ||
          k.starts_with(bytes_prefix)) {
        batch.Delete(meta_cf_, it->key());
      }
    }
    if (!it->status().ok()) {
      return half_done(FromRocks(it->status(), path_, "reading the metadata"));
    }
    stats_.ResetAllEntryCounts();
    s = db_->Write(WriteOpts(), &batch);
    if (!s.ok())
      return WriteFailed(s, "clearing the indexes and metadata", true);
  }
  // The index files the tombstones cover go at once (no new record can be in
  // them: writes wait for the fence); what is left in memory and level 0
  // goes with later compactions (below).
  for (rocksdb::ColumnFamilyHandle* cf : {time_cf_, model_time_cf_}) {
    if (cf == nullptr) continue;
    (void)rocksdb::DeleteFilesInRange(db_.get(), cf, nullptr, nullptr);
  }
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  if (tier_) tier_->Clear();
  stats_.Add(Counter::kFlushes, 1);
  fence.unlock();
  // The index records left after DeleteFilesInRange (in memtables, level 0
  // and files a running compaction had) are covered by the tombstones: they
  // go to level 0 now, and with the compactions the next writes cause (or
  // the periodic one) their space. Not compacted here, which would wait for
  // the compaction running on the database's one compaction thread (seconds
  // after a bulk import) before the flush returned.
  if (!degraded_.load(std::memory_order_acquire)) {
    std::vector<rocksdb::ColumnFamilyHandle*> indexes;
    for (rocksdb::ColumnFamilyHandle* cf : {time_cf_, model_time_cf_}) {
      if (cf != nullptr) indexes.push_back(cf);
    }
    rocksdb::FlushOptions fo;
    fo.allow_write_stall = true;
    (void)db_->Flush(fo, indexes);
  }
  return Status();
}

Status RocksCache::DeleteAllInIndex(rocksdb::ColumnFamilyHandle* cf,
                                    rocksdb::WriteBatch* batch) {
  // One range tombstone from the smallest key to just past the last one.
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), cf));
  it->SeekToLast();
  LLMCACHE_RETURN_IF_ERROR(
      FromRocks(it->status(), path_, "reading an index's last record"));
  if (!it->Valid()) return Status();
  std::string end = it->key().ToString();
  end.push_back('\0');
  rocksdb::Status s = batch->DeleteRange(cf, rocksdb::Slice(), end);
  return FromRocks(s, path_, "deleting an index's records");
}

Status RocksCache::FinishInterruptedFlushes() {
  // Mappings whose column family is missing: (meta key, model).
  std::vector<std::pair<std::string, std::string>> orphans;
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), meta_cf_));
    std::shared_lock<std::shared_mutex> lock(families_mu_);
    for (it->Seek(kCfMetaPrefix); it->Valid(); it->Next()) {
      std::string_view k = ToView(it->key());
      if (!k.starts_with(kCfMetaPrefix)) break;
      Result<std::string> model =
          ColumnFamilyNameToModel(k.substr(kCfMetaPrefix.size()));
      if (!model.ok() || families_.contains(*model)) continue;
      orphans.emplace_back(std::string(k), std::move(*model));
    }
    LLMCACHE_RETURN_IF_ERROR(
        FromRocks(it->status(), path_, "reading column-family mappings"));
  }
  if (orphans.empty()) return Status();
  // What FlushModel's batch does, so that running it twice is harmless.
  rocksdb::WriteBatch batch;
  for (const auto& [meta_key, model] : orphans) {
    batch.Delete(meta_cf_, meta_key);
    batch.Delete(meta_cf_, ModelStatKey(ModelCounter::kEntries, model));
    batch.Delete(meta_cf_, ModelStatKey(ModelCounter::kBytes, model));
    std::string begin;
    AppendModelPrefix(model, &begin);
    const std::string end = begin + std::string(kDigestSize + 1, '\xff');
    batch.DeleteRange(overflow_->handle, begin, end);
    std::string index_begin, index_end;
    ModelTimeIndexRange(model, &index_begin, &index_end);
    batch.DeleteRange(model_time_cf_, index_begin, index_end);
  }
  std::lock_guard<std::mutex> stats_lock(stats_write_mu_);
  rocksdb::Status s = db_->Write(WriteOpts(), &batch);
  if (!s.ok()) return WriteFailed(s, "finishing an interrupted flush", true);
  for (const auto& [meta_key, model] : orphans) stats_.ResetModel(model);
  return Status();
}

Status RocksCache::ReadDoomed(std::span<const Doomed> doomed, DoomedNow* now,
                              WriterClaims* claims) const {
  if (claims == nullptr) return ReadDoomedOnce(doomed, now, nullptr);
  // The versions to claim are read without the claims' mutex (a filter
  // waits for it), then claimed under it, unless a job released its claims
  // in between: it may have claimed a version this read saw, which is gone
  // now. Then they are read again under the mutex.
  std::vector<std::pair<size_t, uint64_t>> to_claim;
  const uint64_t releases = claims->claims().releases();
  LLMCACHE_RETURN_IF_ERROR(ReadDoomedOnce(doomed, now, &to_claim));
  std::lock_guard<std::mutex> lock(claims->claims().mu());
  if (claims->claims().releases() != releases) {
    to_claim.clear();
    LLMCACHE_RETURN_IF_ERROR(ReadDoomedOnce(doomed, now, &to_claim));
  }
  for (const auto& [i, claim] : to_claim) claims->Claim(claim);
  return Status();
}

Status RocksCache::ReadDoomedOnce(
    std::span<const Doomed> doomed, DoomedNow* now,
    std::vector<std::pair<size_t, uint64_t>>* to_claim) const {
  // The values stay pinned only while their chunk is looked at.
  constexpr size_t kReadChunk = 1024;
  now->stored.assign(doomed.size(), -1);
  now->keep_record.assign(doomed.size(), 0);
  const int64_t now_ms = clock_->NowMillis();
  std::unordered_map<const Family*, std::vector<size_t>> by_family;
  for (size_t i = 0; i < doomed.size(); ++i) {
    const Doomed& d = doomed[i];
    if (d.family && !d.key.empty() && !d.family->dropped.load()) {
      by_family[d.family.get()].push_back(i);
    }
  }
  std::vector<rocksdb::Slice> keys;
  std::vector<rocksdb::PinnableSlice> values(kReadChunk);
  std::vector<rocksdb::Status> statuses(kReadChunk);
  for (const auto& [family, indexes] : by_family) {
    for (size_t at = 0; at < indexes.size(); at += kReadChunk) {
      const size_t n = std::min(kReadChunk, indexes.size() - at);
      keys.clear();
      for (size_t j = 0; j < n; ++j)
        keys.emplace_back(doomed[indexes[at + j]].key);
      db_->MultiGet(rocksdb::ReadOptions(), family->handle, n, keys.data(),
                    values.data(), statuses.data());
      for (size_t j = 0; j < n; ++j) {
        const Doomed& d = doomed[indexes[at + j]];
        rocksdb::PinnableSlice& v = values[j];
        if (statuses[j].IsNotFound()) continue;  // deleted since
        if (!statuses[j].ok()) {
          return FromRocks(statuses[j], path_, "reading entries to delete");
        }
        int64_t created = 0, expires = 0;
        if (d.created_ms != Doomed::kUnknownTime &&
            (!PeekEntryTimes(ToView(v), &created, &expires) ||
             created != d.created_ms ||
             (d.expires_ms != Doomed::kUnknownTime &&
              expires != d.expires_ms))) {
          now->keep_record[indexes[at + j]] = created == d.created_ms;
          v.Reset();
          continue;  // replaced since
        }
        now->stored[indexes[at + j]] = static_cast<int64_t>(v.size());
        if (to_claim != nullptr &&
            PeekEntryTimes(ToView(v), &created, &expires) &&
            CountOutClaims::Claims(expires, now_ms)) {
          to_claim->emplace_back(indexes[at + j],
                                 CountOutClaims::Key(family->handle->GetID(),
                                                     d.key, created, expires));
        }
        v.Reset();
      }
    }
  }
  return Status();
}

Result<uint64_t> RocksCache::DeleteEntriesLocked(std::span<const Doomed> doomed,
                                                 const DoomedNow& now,
                                                 Counter counter) {
  if (doomed.empty()) return uint64_t{0};
  LLMCACHE_RETURN_IF_ERROR(WriteAllowed());
  rocksdb::WriteBatch batch;
  uint64_t deleted = 0;
  for (size_t i = 0; i < doomed.size(); ++i) {
    const Doomed& d = doomed[i];
    if (!d.index_key.empty() && !now.keep_record[i]) {
      batch.Delete(model_time_cf_, d.index_key);
    }
    // (A family dropped since the read: nothing of it to delete.)
    if (now.stored[i] < 0 || d.family->dropped.load()) continue;
    batch.Delete(d.family->handle, d.key);
    batch.Merge(meta_cf_, ModelStatKey(ModelCounter::kEntries, d.base_model),
                Le64(-1));
    batch.Merge(meta_cf_, ModelStatKey(ModelCounter::kBytes, d.base_model),
                Le64(-now.stored[i]));
    ++deleted;
  }
  // Counted in the same write: a process killed after it keeps the count.
  if (deleted != 0) {
    batch.Merge(meta_cf_,
                std::string(kStatPrefix) + std::string(CounterName(counter)),
                Le64(static_cast<int64_t>(deleted)));
  }
  rocksdb::Status s = db_->Write(WriteOpts(), &batch);
  if (!s.ok()) return WriteFailed(s, "deleting entries", true);
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  if (tier_) {
    for (const Doomed& d : doomed) tier_->Erase(d.digest);
  }
  return deleted;
}

Result<uint64_t> RocksCache::PurgeKey(const Digest& digest) {
  DbLock db_lock(this);
  LLMCACHE_RETURN_IF_ERROR(MutationAllowed());
  LLMCACHE_RETURN_IF_ERROR(db_lock.status());
  std::vector<Doomed> doomed;
  for (const std::shared_ptr<Family>& f : AllFamilies()) {
    auto consider = [&](const std::string& key, std::string_view model,
                        std::string_view value) {
      int64_t created = 0, expires = 0;
      Doomed d{f, key, "", digest, std::string(model), value.size()};
      if (PeekEntryTimes(value, &created, &expires)) {
        d.index_key = ModelTimeIndexKey(model, created, digest);
        d.created_ms = created;
        d.expires_ms = expires;
      }
      doomed.push_back(std::move(d));
    };
    if (!f->overflow) {
      rocksdb::PinnableSlice v;
      const std::string key(reinterpret_cast<const char*>(digest.data()),
                            digest.size());
      rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), f->handle, key, &v);
      if (s.ok()) consider(key, f->base_model, ToView(v));
      if (!s.ok() && !s.IsNotFound()) {
        return FromRocks(s, path_, "looking up a key");
      }
      continue;
    }
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), f->handle));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::string_view k = ToView(it->key());
      std::string_view model;
      if (!ConsumeModelPrefix(&k, &model) || k.size() != kDigestSize) continue;
      if (std::memcmp(k.data(), digest.data(), kDigestSize) == 0) {
        consider(it->key().ToString(), model, ToView(it->value()));
      }
    }
    if (!it->status().ok()) {
      return FromRocks(it->status(), path_, "scanning the overflow family");
    }
  }
  return DeleteInChunks(doomed, Counter::kPurged);
}

Result<uint64_t> RocksCache::DeleteInChunks(std::span<const Doomed> doomed,
                                            Counter counter) {
  uint64_t deleted = 0;
  DoomedNow now;
  for (size_t at = 0; at < doomed.size(); at += kPurgeChunk) {
    const std::span<const Doomed> chunk =
        doomed.subspan(at, std::min(kPurgeChunk, doomed.size() - at));
    // Read once before the fence is taken, so that the blocks come from the
    // files while inserts go on; then again under it, from the block cache:
    // what the write replaces is what that second read saw.
    LLMCACHE_RETURN_IF_ERROR(ReadDoomed(chunk, &now));
    std::unique_lock<FenceMutex> fence(write_fence_);
    WriterClaims claims(&count_out_claims_);  // until the write returned
    LLMCACHE_RETURN_IF_ERROR(ReadDoomed(chunk, &now, &claims));
    LLMCACHE_ASSIGN_OR_RETURN(const uint64_t n,
                              DeleteEntriesLocked(chunk, now, counter));
    deleted += n;
  }
  return deleted;
}

Result<uint64_t> RocksCache::PurgeNamespace(std::string_view ns) {
  DbLock db_lock(this);
  LLMCACHE_RETURN_IF_ERROR(MutationAllowed());
  LLMCACHE_RETURN_IF_ERROR(db_lock.status());
  {
    // Before the walk: an insert that saw the old count has written its
    // entry by now, so the walk finds it; later ones see the new count.
    std::unique_lock<FenceMutex> fence(write_fence_);
    flush_counts_.BumpNamespace(ns);
  }
  std::vector<Doomed> doomed;
  Status s = ForEachEntry(
      std::nullopt,
      [&](const EntryView& v) {
        if (v.entry.meta.ns != ns) return true;
        std::shared_ptr<Family> f = FamilyFor(v.base_model);
        if (!f) return true;
        doomed.push_back(Doomed{
            f, EntryKey(*f, v.base_model, v.digest),
            ModelTimeIndexKey(v.base_model, v.entry.meta.created_ms, v.digest),
            v.digest, std::string(v.base_model), v.stored_bytes,
            v.entry.meta.created_ms, v.entry.meta.expires_ms});
        return true;
      },
      [](std::string_view, const Status&) {});
  LLMCACHE_RETURN_IF_ERROR(s);
  return DeleteInChunks(doomed, Counter::kPurged);
}

Result<std::optional<RocksCache::Doomed>> RocksCache::ResolveIndexed(
    int64_t created_ms, std::string_view model, const Digest& d,
    std::string_view index_key) {
  Doomed doomed{nullptr, "", std::string(index_key), d, std::string(model), 0};
  std::shared_ptr<Family> f = FamilyFor(model);
  if (!f) return std::optional<Doomed>(doomed);
  const std::string key = EntryKey(*f, model, d);
  rocksdb::PinnableSlice v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), f->handle, key, &v);
  if (s.IsNotFound()) return std::optional<Doomed>(doomed);  // dangling
  if (!s.ok()) return FromRocks(s, path_, "reading an indexed entry");
  int64_t created = 0, expires = 0;
  if (!PeekEntryTimes(ToView(v), &created, &expires) || created != created_ms) {
    return std::optional<Doomed>(doomed);  // stale record of a rewritten key
  }
  doomed.family = f;
  doomed.key = key;
  doomed.bytes = v.size();
  doomed.created_ms = created;
  doomed.expires_ms = expires;
  return std::optional<Doomed>(doomed);
}

Result<uint64_t> RocksCache::PurgeIndexed(
    const std::function<bool(int64_t, int64_t, bool*)>& pred) {
  DbLock db_lock(this);
  LLMCACHE_RETURN_IF_ERROR(MutationAllowed());
  LLMCACHE_RETURN_IF_ERROR(db_lock.status());
  uint64_t removed = 0;
  std::vector<Doomed> doomed;
  Status inner;
  auto flush = [&]() -> Status {
    LLMCACHE_ASSIGN_OR_RETURN(const uint64_t deleted,
                              DeleteInChunks(doomed, Counter::kPurged));
    removed += deleted;
    doomed.clear();
    return Status();
  };
  Status s = WalkTimeIndex([&](int64_t created, std::string_view model,
                               const Digest& d, int64_t expires,
                               std::string_view index_key) {
    bool stop = false;
    if (!pred(created, expires, &stop)) return !stop;
    // Not read here: DeleteEntriesLocked reads each chunk's entries (one
    // MultiGet per family) and leaves alone those gone or of another
    // version; it deletes the record unless the entry left alone has the
    // record's creation time (only its expiry changed).
    std::shared_ptr<Family> f = FamilyFor(model);
    doomed.push_back(Doomed{f, f ? EntryKey(*f, model, d) : std::string(),
                            std::string(index_key), d, std::string(model), 0,
                            created, expires});
    if (doomed.size() >= kPurgeChunk) {
      inner = flush();
      if (!inner.ok()) return false;
    }
    return true;
  });
  LLMCACHE_RETURN_IF_ERROR(s);
  LLMCACHE_RETURN_IF_ERROR(inner);
  LLMCACHE_RETURN_IF_ERROR(flush());
  return removed;
}

Result<uint64_t> RocksCache::PurgeExpired() {
  const int64_t now = clock_->NowMillis();
  return PurgeIndexed([now](int64_t, int64_t expires, bool*) {
    return expires != 0 && expires <= now;
  });
}

Result<uint64_t> RocksCache::PurgeOlderThan(int64_t age_ms) {
  if (age_ms < 0) return InvalidArgumentError("age_ms must be >= 0");
  return PurgeCreatedBefore(clock_->NowMillis() - age_ms);
}

Result<uint64_t> RocksCache::PurgeCreatedBefore(int64_t cutoff) {
  return PurgeIndexed([cutoff](int64_t created, int64_t, bool* stop) {
    if (created >= cutoff) {
      *stop = true;  // the index is in creation order
      return false;
    }
    return true;
  });
}

}  // namespace llmcache
