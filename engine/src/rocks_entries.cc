// RocksCache: reading and writing entries (lookup through the memory tier,
// insert with its time-index record and entry counters, find by digest,
// iteration), the model -> column family map, and the test hooks.

#include <rocksdb/db.h>
#include <rocksdb/metadata.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <cstring>

#include "cache_internal.h"
#include "format.h"
#include "rocks_cache.h"
#include "rocks_schema.h"
#include "rocks_status.h"

namespace llmcache {

std::shared_ptr<RocksCache::Family> RocksCache::FamilyFor(
    std::string_view base_model) const {
  std::shared_lock<std::shared_mutex> lock(families_mu_);
  auto it = families_.find(base_model);
  if (it != families_.end()) return it->second;
  return overflow_;
}

std::vector<std::shared_ptr<RocksCache::Family>> RocksCache::AllFamilies()
    const {
  std::shared_lock<std::shared_mutex> lock(families_mu_);
  std::vector<std::shared_ptr<Family>> all;
  all.reserve(families_.size() + 1);
  for (const auto& [model, f] : families_) all.push_back(f);
  if (overflow_) all.push_back(overflow_);
  return all;
}

std::vector<rocksdb::ColumnFamilyHandle*> RocksCache::AllHandles() const {
  std::vector<rocksdb::ColumnFamilyHandle*> handles = {meta_cf_};
  for (rocksdb::ColumnFamilyHandle* h : {time_cf_, model_time_cf_}) {
    if (h != nullptr) handles.push_back(h);
  }
  for (const auto& f : AllFamilies()) handles.push_back(f->handle);
  return handles;
}

Result<std::shared_ptr<RocksCache::Family>> RocksCache::FamilyForInsert(
    std::string_view base_model) {
  {
    std::shared_lock<std::shared_mutex> lock(families_mu_);
    auto it = families_.find(base_model);
    if (it != families_.end()) return it->second;
    if (families_.size() >= options_.max_model_column_families) {
      return overflow_;
    }
  }
  std::unique_lock<std::shared_mutex> lock(families_mu_);
  auto it = families_.find(base_model);
  if (it != families_.end()) return it->second;
  if (families_.size() >= options_.max_model_column_families) return overflow_;
  // A model's entries live in one family: a model that has entries in the
  // overflow family (written while the bound was reached) stays there until
  // they are gone, even after a flush freed a slot. Lookups, iteration,
  // purges, flushes and the disk budget all look in FamilyFor's family
  // only, so giving the model its own family now would make those entries
  // unreachable yet still counted. The alternatives cost more: looking in
  // both families costs every miss a second read, and moving the entries
  // costs O(entries) under the write fence. This costs one seek per such
  // model and process (the answer is remembered) while a slot is free.
  if (overflow_models_.contains(base_model)) return overflow_;
  Result<bool> in_overflow = HasOverflowEntries(base_model);
  if (!in_overflow.ok()) return in_overflow.status();
  if (*in_overflow) {
    overflow_models_.emplace(base_model);
    return overflow_;
  }
  const std::string name = ModelToColumnFamilyName(base_model);
  rocksdb::ColumnFamilyHandle* handle = nullptr;
  rocksdb::Status s = db_->CreateColumnFamily(
      ModelFamilyOptions(base_model, false), name, &handle);
  if (!s.ok()) {
    return WriteFailed(
        s, "creating the column family of " + std::string(base_model), false);
  }
  s = db_->Put(WriteOpts(), meta_cf_, std::string(kCfMetaPrefix) + name,
               std::string(base_model));
  auto family = std::make_shared<Family>(db_.get(), handle,
                                         std::string(base_model), false);
  families_[std::string(base_model)] = family;
  if (!s.ok()) return WriteFailed(s, "recording a column family", true);
  return family;
}

Result<bool> RocksCache::HasOverflowEntries(std::string_view base_model) {
  std::string prefix;
  AppendModelPrefix(base_model, &prefix);
  const std::string end = prefix + std::string(kDigestSize + 1, '\xff');
  const rocksdb::Slice upper(end);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(ro, overflow_->handle));
  it->Seek(prefix);
  if (it->Valid()) return ToView(it->key()).starts_with(prefix);
  LLMCACHE_RETURN_IF_ERROR(
      FromRocks(it->status(), path_, "scanning the overflow family"));
  return false;
}

std::string RocksCache::EntryKey(const Family& f, std::string_view base_model,
                                 const Digest& d) const {
  std::string key;
  if (f.overflow) {
    key.reserve(base_model.size() + 5 + d.size());
    AppendModelPrefix(base_model, &key);
  }
  key.append(reinterpret_cast<const char*>(d.data()), d.size());
  return key;
}

Status RocksCache::ReadEntry(const Family& f, const std::string& key,
                             Entry* out, size_t* stored_bytes) {
  rocksdb::PinnableSlice value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), f.handle, key, &value);
  if (s.IsNotFound()) return NotFoundError("no entry");
  if (!s.ok()) return FromRocks(s, path_, "reading an entry");
  if (stored_bytes != nullptr) *stored_bytes = value.size();
  return DecodeEntry(ToView(value), out);
}

Result<LookupResult> RocksCache::Lookup(const RequestKey& key,
                                        const LookupOptions& options) {
  LookupResult result;
  // The statistics compare the model's name; its characters usually live on
  // the heap. Start that read now, so it overlaps the tier's.
  if (options.record_stats) __builtin_prefetch(key.base_model.data());
  if (tier_) {
    if (std::shared_ptr<const Entry> e = tier_->Get(key.digest)) {
      result.outcome = internal::Classify(*e, options, clock_->NowMillis());
      if (result.outcome == LookupOutcome::kHit) {
        result.entry = std::move(e);
        result.from_memory = true;
      } else if (result.outcome == LookupOutcome::kExpired) {
        tier_->Erase(key.digest);  // no point keeping it hot
      }
      if (options.record_stats) {
        internal::RecordLookup(stats_, key.base_model, result.outcome,
                               result.entry.get());
      }
      return result;
    }
  }
  DbLock db_lock(this);
  if (Status st = db_lock.status(); !st.ok()) {
    if (!secondary_) stats_.Add(Counter::kStoreErrors, 1);
    return st.WithContext("lookup of " + key.Hex());
  }

  const uint64_t epoch = epoch_.load(std::memory_order_acquire);
  std::shared_ptr<Family> family = FamilyFor(key.base_model);
  if (family) {
    auto entry = std::make_shared<Entry>();
    Status s = ReadEntry(*family, EntryKey(*family, key.base_model, key.digest),
                         entry.get(), nullptr);
    if (s.ok()) {
      if (!family->dropped.load(std::memory_order_acquire)) {
        result.outcome =
            internal::Classify(*entry, options, clock_->NowMillis());
        if (result.outcome == LookupOutcome::kHit) {
          if (tier_) tier_->Put(key.digest, entry, &epoch_, epoch);
          result.entry = std::move(entry);
        }
      }
    } else if (s.code() != StatusCode::kNotFound) {
      if (!secondary_) stats_.Add(Counter::kStoreErrors, 1);
      return s.WithContext("lookup of " + key.Hex());
    }
  }
  if (options.record_stats && !secondary_) {
    internal::RecordLookup(stats_, key.base_model, result.outcome,
                           result.entry.get());
  }
  return result;
}

Status RocksCache::Insert(const RequestKey& key, std::string_view body,
                          const InsertOptions& options) {
  Result<EntryMeta> meta = internal::MakeEntryMeta(
      key, options, options_.default_ttl_ms, clock_->NowMillis());
  if (!meta.ok()) return meta.status();
  auto entry = std::make_shared<Entry>();
  entry->meta = std::move(*meta);
  std::string value;
  LLMCACHE_RETURN_IF_ERROR(EncodeEntry(entry->meta, body, &value));
  entry->body.assign(body);

  DbLock db_lock(this);
  std::shared_lock<FenceMutex> fence(write_fence_);
  // Checked under the fence: recovery drains the fence before it resumes
  // the DB, so no write that passed this check can reach RocksDB then.
  LLMCACHE_RETURN_IF_ERROR(WriteAllowed());
  // Flushes bump the count under the exclusive fence: one that began after
  // the answer was asked for is seen here, one that begins later waits for
  // this write and removes it.
  if (options.flush_count &&
      *options.flush_count != flush_counts_.Get(key.base_model, options.ns)) {
    return internal::FlushedMeanwhile();
  }
  Result<std::shared_ptr<Family>> family = FamilyForInsert(key.base_model);
  if (!family.ok()) return family.status();
  const Family& f = **family;
  const std::string k = EntryKey(f, key.base_model, key.digest);

  // The previous version, if any: for exact entry counts and to retire its
  // time-index record. Read and replaced under the key's stripe: another
  // Insert of the key waits (deletions hold the fence exclusively).
  std::unique_lock<std::mutex> stripe(
      insert_stripes_[key.digest[kDigestSize - 1] % insert_stripes_.size()]);
  rocksdb::PinnableSlice prev;
  int64_t prev_created = 0, prev_expires = 0;
  bool had_prev = false, unreadable_prev = false;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), f.handle, k, &prev);
  // A version that expires (within the hour) may be dropped by a TTL filter
  // whose job has not installed its output yet: read again under the
  // claims' mutex and claim it, so that no filter counts it out too
  // (count_out_claims.h). Not when the same bytes are stored (not written).
  WriterClaims claims(&count_out_claims_);  // until the write returned
  if (s.ok() && PeekEntryTimes(ToView(prev), &prev_created, &prev_expires) &&
      CountOutClaims::Claims(prev_expires, clock_->NowMillis())) {
    std::lock_guard<std::mutex> lock(count_out_claims_.mu());
    prev.Reset();
    s = db_->Get(rocksdb::ReadOptions(), f.handle, k, &prev);
    if (s.ok() && PeekEntryTimes(ToView(prev), &prev_created, &prev_expires) &&
        prev_expires != 0 && !SameStoredEntry(ToView(prev), value)) {
      claims.Claim(CountOutClaims::Key(f.handle->GetID(), k, prev_created,
                                       prev_expires));
    }
  }
  if (s.ok()) {
    had_prev = PeekEntryTimes(ToView(prev), &prev_created, &prev_expires);
  } else if (s.IsCorruption()) {
    // A version that cannot be read (a damaged table file): an error, and
    // replaced, which heals the key (the new version shadows it; before, the
    // key could never be stored again). Whether a version existed cannot be
    // told (a damaged index or filter block fails absent keys too): counted
    // as if it did, so the entry count may end one low per such insert. Its
    // time-index record, if any, is dropped as stale when met.
    stats_.Add(Counter::kStoreErrors, 1);
    unreadable_prev = true;
  } else if (!s.IsNotFound()) {
    stats_.Add(Counter::kStoreErrors, 1);
    return FromRocks(s, path_, "reading before insert");
  }

  // The same bytes as the stored version (the same entry written twice in
  // one millisecond, or imported again) are not written again: two
  // identical versions would each be counted out when they expire.
  const bool unchanged = had_prev && SameStoredEntry(ToView(prev), value);
  if (!unchanged) {
    rocksdb::WriteBatch batch;
    batch.Put(f.handle, k, value);
    batch.Put(
        model_time_cf_,
        ModelTimeIndexKey(key.base_model, entry->meta.created_ms, key.digest),
        Le64(entry->meta.expires_ms));
    if (had_prev && prev_created != entry->meta.created_ms) {
      batch.Delete(model_time_cf_,
                   ModelTimeIndexKey(key.base_model, prev_created, key.digest));
    }
    // Entry counts travel in the same batch as the entry: exact after a crash.
    if (!had_prev && !unreadable_prev) {
      batch.Merge(meta_cf_,
                  ModelStatKey(ModelCounter::kEntries, key.base_model),
                  Le64(1));
    }
    batch.Merge(meta_cf_, ModelStatKey(ModelCounter::kBytes, key.base_model),
                Le64(static_cast<int64_t>(value.size()) -
                     static_cast<int64_t>(had_prev ? prev.size() : 0)));
    CountedWrite counted(f);
    if (before_write_hook_for_test_) before_write_hook_for_test_();
    s = db_->Write(WriteOpts(), &batch);
    if (!s.ok()) return WriteFailed(s, "writing an entry", true);
    stats_.Add(Counter::kInserts, 1);
  } else {
    entry->meta.flags = static_cast<uint8_t>(prev.data()[1]);  // as stored
  }
  if (tier_) {
    if (had_prev || unreadable_prev) {
      epoch_.fetch_add(1, std::memory_order_acq_rel);
    }
    tier_->Put(key.digest, std::move(entry));  // in the stripe: in write order
  }
  stripe.unlock();
  if (!options.resolved_model.empty()) {
    NoteResolvedModel(key.base_model, options.resolved_model);
  }
  return Status();
}

void RocksCache::NoteResolvedModel(std::string_view base_model,
                                   std::string_view resolved) {
  std::lock_guard<std::mutex> lock(resolved_mu_);
  auto it = resolved_.find(std::string(base_model));
  if (it != resolved_.end() && it->second == resolved) return;
  resolved_[std::string(base_model)] = std::string(resolved);
  // REQUIRES (the caller, Insert): db_mu_ and write_fence_ held.
  if (degraded_.load(std::memory_order_acquire)) return;  // kept in memory
  rocksdb::Status s =
      db_->Put(WriteOpts(), meta_cf_,
               std::string(kResolvedPrefix) + std::string(base_model),
               std::string(resolved));
  if (!s.ok()) (void)WriteFailed(s, "recording the resolved model", true);
}

void RocksCache::RecordBypass(BypassReason reason) {
  if (!secondary_) stats_.AddBypass(reason);
}

Result<std::shared_ptr<const Entry>> RocksCache::Find(const Digest& digest) {
  DbLock db_lock(this);
  LLMCACHE_RETURN_IF_ERROR(db_lock.status());
  for (const std::shared_ptr<Family>& f : AllFamilies()) {
    if (f->overflow) continue;
    auto e = std::make_shared<Entry>();
    Status s = ReadEntry(
        *f,
        std::string(reinterpret_cast<const char*>(digest.data()), kDigestSize),
        e.get(), nullptr);
    if (s.ok()) return std::shared_ptr<const Entry>(std::move(e));
    if (s.code() != StatusCode::kNotFound) return s;
  }
  std::shared_ptr<Family> overflow = FamilyFor("\x01not-a-model");
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), overflow->handle));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view k = ToView(it->key());
    std::string_view model;
    if (!ConsumeModelPrefix(&k, &model) || k.size() != kDigestSize) continue;
    if (std::memcmp(k.data(), digest.data(), kDigestSize) != 0) continue;
    auto e = std::make_shared<Entry>();
    LLMCACHE_RETURN_IF_ERROR(DecodeEntry(ToView(it->value()), e.get()));
    return std::shared_ptr<const Entry>(std::move(e));
  }
  LLMCACHE_RETURN_IF_ERROR(
      FromRocks(it->status(), path_, "scanning the overflow family"));
  return std::shared_ptr<const Entry>();
}

Status RocksCache::ForEachEntry(
    const std::optional<std::string>& model,
    const std::function<bool(const EntryView&)>& fn,
    const std::function<void(std::string_view, const Status&)>& on_corrupt) {
  DbLock db_lock(this);
  LLMCACHE_RETURN_IF_ERROR(db_lock.status());
  std::optional<std::string> base;
  if (model) base = std::string(BaseModel(*model));
  std::vector<std::shared_ptr<Family>> families;
  if (base) {
    std::shared_ptr<Family> f = FamilyFor(*base);
    if (f) families.push_back(f);
  } else {
    families = AllFamilies();
  }
  Entry entry;
  for (const std::shared_ptr<Family>& f : families) {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), f->handle));
    if (f->overflow && base) {
      std::string prefix;
      AppendModelPrefix(*base, &prefix);
      it->Seek(prefix);
    } else {
      it->SeekToFirst();
    }
    for (; it->Valid(); it->Next()) {
      std::string_view k = ToView(it->key());
      std::string_view m = f->base_model;
      if (f->overflow) {
        if (!ConsumeModelPrefix(&k, &m)) k = {};
        if (base && m != *base) break;  // past this model's range
      }
      Digest d{};
      Status s;
      if (k.size() != kDigestSize) {
        s = DataLossError("malformed key in column family of '" +
                          std::string(m) + "'");
      } else {
        std::memcpy(d.data(), k.data(), kDigestSize);
        s = DecodeEntry(ToView(it->value()), &entry);
      }
      if (!s.ok()) {
        const std::string name = k.size() == kDigestSize
                                     ? DigestToHex(d)
                                     : it->key().ToString(/*hex=*/true);
        if (!on_corrupt) {
          return s.WithContext("entry " + name);
        }
        on_corrupt(name, s);
        continue;
      }
      if (!fn(EntryView{d, m, entry, it->value().size()})) return Status();
    }
    LLMCACHE_RETURN_IF_ERROR(
        FromRocks(it->status(), path_, "iterating entries"));
  }
  return Status();
}

Status RocksCache::FlushMemtablesForTest(bool metadata_only) {
  DbLock db_lock(this);
  std::shared_lock<FenceMutex> fence(write_fence_);
  LLMCACHE_RETURN_IF_ERROR(WriteAllowed());
  rocksdb::FlushOptions fo;
  const std::vector<rocksdb::ColumnFamilyHandle*> handles =
      metadata_only ? std::vector<rocksdb::ColumnFamilyHandle*>{meta_cf_}
                    : AllHandles();
  for (rocksdb::ColumnFamilyHandle* h : handles) {
    rocksdb::Status s = db_->Flush(fo, h);
    if (!s.ok()) return WriteFailed(s, "flush", false);
  }
  return Status();
}

Status RocksCache::CompactBottomFilesForTest(std::string_view base_model) {
  DbLock db_lock(this);
  LLMCACHE_RETURN_IF_ERROR(db_lock.status());
  std::shared_ptr<Family> f = FamilyFor(BaseModel(base_model));
  rocksdb::ColumnFamilyMetaData meta;
  db_->GetColumnFamilyMetaData(f->handle, &meta);
  for (auto level = meta.levels.rbegin(); level != meta.levels.rend();
       ++level) {
    if (level->files.empty()) continue;
    std::vector<std::string> names;
    for (const rocksdb::SstFileMetaData& file : level->files) {
      names.push_back(file.name);
    }
    return FromRocks(db_->CompactFiles(rocksdb::CompactionOptions(), f->handle,
                                       names, level->level),
                     path_, "compacting files");
  }
  return Status();
}

rocksdb::ColumnFamilyHandle* RocksCache::FamilyHandleForTest(
    std::string_view base_model) {
  std::shared_ptr<Family> f = FamilyFor(base_model);
  return f ? f->handle : nullptr;
}

Result<uint64_t> RocksCache::RawKeyCountForTest(std::string_view base_model) {
  DbLock db_lock(this);
  LLMCACHE_RETURN_IF_ERROR(db_lock.status());
  std::shared_ptr<Family> f = FamilyFor(base_model);
  if (!f) return uint64_t{0};
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), f->handle));
  uint64_t n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view k = ToView(it->key());
    std::string_view m = f->base_model;
    if (f->overflow && !ConsumeModelPrefix(&k, &m)) continue;
    if (m == base_model) ++n;
  }
  LLMCACHE_RETURN_IF_ERROR(FromRocks(it->status(), path_, "counting"));
  return n;
}

Status RocksCache::PutRawForTest(std::string_view base_model,
                                 const std::string& key,
                                 const std::string& value) {
  DbLock db_lock(this);
  std::shared_lock<FenceMutex> fence(write_fence_);
  LLMCACHE_RETURN_IF_ERROR(WriteAllowed());
  std::shared_ptr<Family> f = FamilyFor(base_model);
  CountedWrite counted(*f);
  rocksdb::Status s = db_->Put(WriteOpts(), f->handle, key, value);
  return s.ok() ? Status() : WriteFailed(s, "raw put", true);
}

size_t RocksCache::ModelFamilyCountForTest() {
  std::shared_lock<std::shared_mutex> lock(families_mu_);
  return families_.size();
}

}  // namespace llmcache
