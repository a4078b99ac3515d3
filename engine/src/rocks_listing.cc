// RocksCache: entries in creation order (ForEachEntryByAge, WalkTimeIndex)
// and each model's oldest and newest entry (AgeRanges), read from the
// creation-time index, so that listing the newest entries or the age of
// each model costs what is read, not the size of the database.
//
// The per-model index ("llmcache.bymodel", format.h: model, creation time,
// digest) serves a walk over one model with that model's range, so it
// never reads the records of other models, and a walk over every model
// with the models' ranges merged (one iterator per model). A view of a
// version-1 database, which lacks it, walks the time index of that format
// ("llmcache.time": creation time, model, digest) and skips the records of
// other models. A record is only a pointer: its entry may be gone (the disk
// budget or a purge raced with the walk) or may have been written again at
// another time (its new record is elsewhere in the index). Each record is
// therefore checked against the entry's own creation time before it is
// reported.

#include <rocksdb/db.h>
#include <rocksdb/snapshot.h>
#include <rocksdb/sst_file_writer.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "format.h"
#include "rocks_cache.h"
#include "rocks_private_fs.h"
#include "rocks_schema.h"
#include "rocks_status.h"

namespace llmcache {
namespace {

namespace fs = std::filesystem;

// A parsed time-index key; `model` points into the key (or, from
// IndexMerge, into the merge). `expires_ms` is read from the value when it
// is an index value (`has_expiry`).
struct IndexRecord {
  int64_t created_ms = 0;
  std::string_view model;
  Digest digest{};
  int64_t expires_ms = 0;
  bool has_expiry = false;
};

// False for a key that is not an index key (never written by llmcache;
// walks skip it).
bool ParseIndexKey(std::string_view k, IndexRecord* r) {
  if (k.size() < 8 + 1 + kDigestSize) return false;
  r->created_ms = static_cast<int64_t>(ReadBigEndian64(k.data()));
  std::string_view rest = k.substr(8);
  if (!ConsumeModelPrefix(&rest, &r->model) || rest.size() != kDigestSize) {
    return false;
  }
  std::memcpy(r->digest.data(), rest.data(), kDigestSize);
  return true;
}

// The same for a per-model time-index key.
bool ParseModelIndexKey(std::string_view k, IndexRecord* r) {
  if (!ConsumeModelPrefix(&k, &r->model) || k.size() != 8 + kDigestSize) {
    return false;
  }
  r->created_ms = static_cast<int64_t>(ReadBigEndian64(k.data()));
  std::memcpy(r->digest.data(), k.data() + 8, kDigestSize);
  return true;
}

// One model's range of the per-model index. Either over an iterator of its
// own, bounded so that it never steps into (the deletions of) other models'
// ranges, or over an unbounded iterator shared with other models' ranges
// (IndexMerge beyond kMaxOwnIterators models): then each step starts with a
// seek back to the record it returned last, which the shared iterator's
// view (one snapshot for all) still holds.
class ModelRangeIterator {
 public:
  ModelRangeIterator(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                     const rocksdb::ReadOptions& ro, std::string_view model)
      : model_(model) {
    ModelTimeIndexRange(model, &begin_, &end_);
    lower_ = rocksdb::Slice(begin_);
    upper_ = rocksdb::Slice(end_);
    rocksdb::ReadOptions bounded = ro;
    bounded.iterate_lower_bound = &lower_;
    bounded.iterate_upper_bound = &upper_;
    own_.reset(db->NewIterator(bounded, cf));
    it_ = own_.get();
  }
  ModelRangeIterator(rocksdb::Iterator* shared, std::string_view model)
      : model_(model), it_(shared) {
    ModelTimeIndexRange(model, &begin_, &end_);
  }

  const std::string& model() const { return model_; }
  rocksdb::Iterator* get() { return it_; }
  rocksdb::Iterator* operator->() { return it_; }
  // Own iterator only.
  void SeekToEnd(bool newest) {
    if (newest) {
      it_->SeekToLast();
    } else {
      it_->SeekToFirst();
    }
  }

  // The next record in listing order into *r; false at the end (or on an
  // error: see status()). Oldest first is key order. Newest first goes
  // millisecond by millisecond from the newest, each millisecond's records
  // in ascending digest order as oldest first reads them: on an iterator
  // of its own, read backwards into a small buffer (NextNewest); on a
  // shared one, two seeks per millisecond, never a collection of its
  // records.
  bool Next(bool first, bool newest_first, IndexRecord* r) {
    if (newest_first && own_) return NextNewest(first, r);
    if (!NextKey(first, newest_first, r)) return false;
    if (!own_) last_.assign(it_->key().data(), it_->key().size());
    ReadExpiry(r);
    return true;
  }

 private:
  // A millisecond of up to this many records is read backwards and handed
  // out from memory; a larger one is streamed with two seeks.
  static constexpr size_t kGroupMax = 16;

  void ReadExpiry(IndexRecord* r) const {
    const rocksdb::Slice v = it_->value();
    r->has_expiry = v.size() == 8;
    r->expires_ms =
        r->has_expiry ? static_cast<int64_t>(ReadLittleEndian64(v.data())) : 0;
  }

  // Newest first on an iterator of its own: a millisecond's records are
  // read with Prev into group_ and handed out in ascending digest order, so
  // that the walk needs no seek (two per millisecond cost a full listing
  // ~40% of its time). A millisecond of more than kGroupMax records is
  // streamed instead (large_): from its first record on with Next, then a
  // seek back to the millisecond before it.
  bool NextNewest(bool first, IndexRecord* r) {
    if (first) {
      group_.clear();
      large_ = false;
      it_->SeekToLast();
    }
    if (large_) {
      for (it_->Next(); it_->Valid(); it_->Next()) {
        if (!ParseModelIndexKey(ToView(it_->key()), r)) continue;
        if (r->created_ms != group_ms_) break;
        ReadExpiry(r);
        return true;
      }
      if (!it_->status().ok()) return false;
      large_ = false;
      it_->SeekForPrev(GroupKey(group_ms_));
    }
    if (group_.empty() && !FillGroup(r)) return false;
    if (large_) return true;  // FillGroup placed its first record in *r
    *r = group_.back();
    group_.pop_back();
    return true;
  }

  // From the record under the iterator backwards: that record's
  // millisecond into group_ (last = smallest digest), the iterator left on
  // the next older record; or, for a large millisecond, its first record
  // into *r with large_ set. False at the end or on an error.
  bool FillGroup(IndexRecord* r) {
    IndexRecord rec;
    auto parse_back = [&] {
      while (it_->Valid() && !ParseModelIndexKey(ToView(it_->key()), &rec)) {
        it_->Prev();
      }
      return it_->Valid();
    };
    if (!parse_back()) return false;
    group_ms_ = rec.created_ms;
    for (;;) {
      if (group_.size() == kGroupMax) {
        group_.clear();
        large_ = true;
        for (it_->Seek(GroupKey(group_ms_)); it_->Valid(); it_->Next()) {
          if (!ParseModelIndexKey(ToView(it_->key()), r)) continue;
          ReadExpiry(r);
          return true;
        }
        return false;
      }
      ReadExpiry(&rec);
      rec.model = {};
      group_.push_back(rec);
      it_->Prev();
      if (!parse_back() || rec.created_ms != group_ms_) return true;
    }
  }

  // Whether the iterator is on a record of this range.
  bool InRange() const {
    if (!it_->Valid()) return false;
    if (own_) return true;
    const rocksdb::Slice k = it_->key();
    return k.compare(lower_bound()) >= 0 && k.compare(upper_bound()) < 0;
  }
  rocksdb::Slice lower_bound() const { return rocksdb::Slice(begin_); }
  rocksdb::Slice upper_bound() const { return rocksdb::Slice(end_); }
  void SeekFirst() {
    if (own_) {
      it_->SeekToFirst();
    } else {
      it_->Seek(lower_bound());
    }
  }
  void SeekLast() {
    if (own_) {
      it_->SeekToLast();
    } else {
      // No key of the range equals its upper bound (longer than any key).
      it_->SeekForPrev(upper_bound());
    }
  }
  // Moves past the record returned last.
  void StepPastLast() {
    if (!own_) {
      it_->Seek(last_);
      if (!it_->Valid() || it_->key() != rocksdb::Slice(last_)) return;
    }
    it_->Next();
  }

  bool NextKey(bool first, bool newest_first, IndexRecord* r) {
    if (!newest_first) {
      for (first ? SeekFirst() : StepPastLast(); InRange(); it_->Next()) {
        if (ParseModelIndexKey(ToView(it_->key()), r)) return true;
      }
      return false;
    }
    if (first) {
      SeekLast();
    } else {
      for (StepPastLast(); InRange(); it_->Next()) {
        if (!ParseModelIndexKey(ToView(it_->key()), r)) continue;
        if (r->created_ms == group_ms_) return true;
        break;
      }
      if (!it_->status().ok()) return false;
      // The millisecond is done: the newest record older than it. Its keys
      // all sort after (model, created) alone.
      it_->SeekForPrev(GroupKey(group_ms_));
    }
    for (; InRange(); it_->Prev()) {
      if (ParseModelIndexKey(ToView(it_->key()), r)) break;
    }
    if (!InRange()) return false;
    // The first record of that record's millisecond.
    group_ms_ = r->created_ms;
    for (it_->Seek(GroupKey(group_ms_)); InRange(); it_->Next()) {
      if (ParseModelIndexKey(ToView(it_->key()), r)) return true;
    }
    return false;
  }

  const std::string& GroupKey(int64_t ms) {
    group_key_ = begin_;
    AppendBigEndian64(static_cast<uint64_t>(ms), &group_key_);
    return group_key_;
  }

  const std::string model_;
  std::string begin_, end_;
  std::string group_key_;
  int64_t group_ms_ = 0;
  std::vector<IndexRecord> group_;  // NextNewest: the rest of a millisecond
  bool large_ = false;
  rocksdb::Slice lower_, upper_;
  std::unique_ptr<rocksdb::Iterator> own_;  // null: shared
  rocksdb::Iterator* it_ = nullptr;
  std::string last_;  // shared: the key Next returned last
};

// A merge of up to this many models holds one iterator per model; beyond,
// one iterator shared by all, at the cost of a seek per record (a RocksDB
// iterator holds ~8 KB, and model ids come from requests).
constexpr size_t kMaxOwnIterators = 64;

// Several models' ranges of the per-model index merged into one listing
// order: by creation time (oldest or newest first), then digest, then
// model. Each range is read as far as the merge has come, so a walk that
// stops early reads about what it reported.
class IndexMerge {
 public:
  IndexMerge(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
             const rocksdb::ReadOptions& ro,
             const std::vector<std::string>& models, bool newest_first)
      : newest_first_(newest_first) {
    if (models.size() > kMaxOwnIterators)
      shared_.reset(db->NewIterator(ro, cf));
    ranges_.reserve(models.size());
    for (const std::string& m : models) {
      ranges_.push_back(
          shared_ ? std::make_unique<ModelRangeIterator>(shared_.get(), m)
                  : std::make_unique<ModelRangeIterator>(db, cf, ro, m));
    }
  }

  // The next record into *r (r->model stays valid while the merge lives);
  // false at the end or on an error (status()).
  bool Next(IndexRecord* r) {
    if (!started_) {
      started_ = true;
      for (size_t i = 0; i < ranges_.size(); ++i) {
        if (!Advance(i, /*first=*/true)) return false;
      }
    } else if (last_ < ranges_.size() && !Advance(last_, /*first=*/false)) {
      return false;
    }
    if (heap_.empty()) return false;
    std::pop_heap(heap_.begin(), heap_.end(), Later{this});
    const Head top = heap_.back();
    heap_.pop_back();
    last_ = top.range;
    *r = top.record;
    r->model = ranges_[top.range]->model();
    return true;
  }

  const rocksdb::Status& status() const { return status_; }

 private:
  struct Head {
    IndexRecord record;  // record.model not used: see ranges_[range]
    size_t range;
  };
  // Heap order: the next record to report on top.
  struct Later {
    const IndexMerge* m;
    bool operator()(const Head& a, const Head& b) const {
      if (a.record.created_ms != b.record.created_ms) {
        return m->newest_first_ ? a.record.created_ms < b.record.created_ms
                                : a.record.created_ms > b.record.created_ms;
      }
      if (a.record.digest != b.record.digest) {
        return b.record.digest < a.record.digest;
      }
      return m->ranges_[b.range]->model() < m->ranges_[a.range]->model();
    }
  };

  // Moves range i on; false on an error.
  bool Advance(size_t i, bool first) {
    IndexRecord rec;
    if (ranges_[i]->Next(first, newest_first_, &rec)) {
      rec.model = {};
      heap_.push_back(Head{rec, i});
      std::push_heap(heap_.begin(), heap_.end(), Later{this});
      return true;
    }
    status_ = (*ranges_[i])->status();
    return status_.ok();
  }

  const bool newest_first_;
  std::unique_ptr<rocksdb::Iterator> shared_;  // beyond kMaxOwnIterators
  std::vector<std::unique_ptr<ModelRangeIterator>> ranges_;
  std::vector<Head> heap_;
  bool started_ = false;
  size_t last_ = std::numeric_limits<size_t>::max();
  rocksdb::Status status_;
};

// No limit on the models of a merge.
constexpr size_t kAllModels = std::numeric_limits<size_t>::max();

}  // namespace

Status RocksCache::BuildModelTimeIndex() {
  // The time index is ordered by (created, model, digest), so one model's
  // records come in (created, digest) order: the order of its per-model
  // keys. Each model's records stream into a table file of its own (no
  // sorting, no memtables), and the files, whose key ranges do not overlap,
  // are ingested together at the end: all or nothing. A kill before the
  // format marker is written leaves version 1, and the next open builds the
  // index again, into an emptied family: what a previous attempt left may
  // be stale (an older llmcache may have purged or flushed since). At 10M
  // entries a build through write batches took 95 s, most of it compacting
  // the overlapping memtable flushes of four models.
  {
    rocksdb::Status s = db_->DropColumnFamily(model_time_cf_);
    if (!s.ok()) return WriteFailed(s, "emptying the per-model index", false);
    db_->DestroyColumnFamilyHandle(model_time_cf_);
    model_time_cf_ = nullptr;
    s = db_->CreateColumnFamily(TimeIndexOptions(),
                                std::string(kModelTimeColumnFamily),
                                &model_time_cf_);
    if (!s.ok()) return WriteFailed(s, "emptying the per-model index", false);
  }
  const fs::path dir = fs::path(path_) / "convert.bymodel";
  RemoveTree(dir.string());
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return UnavailableError("creating " + dir.string() + ": " + ec.message());
  }
  // Beyond this many models (each file open at once), the records of the
  // others go through write batches without the WAL, flushed at the end.
  constexpr size_t kMaxFiles = 256;
  size_t open_files = 0;
  rocksdb::WriteOptions unlogged;
  unlogged.disableWAL = true;
  rocksdb::WriteBatch batch;
  struct Writer {
    std::unique_ptr<rocksdb::SstFileWriter> sst;  // null: batched
    std::string file;
    bool live = false;
    uint64_t records = 0;
  };
  std::map<std::string, Writer, std::less<>> writers;
  const rocksdb::Options opts = [&] {
    rocksdb::Options o = db_->GetOptions(model_time_cf_);
    o.bottommost_compression = rocksdb::kDisableCompressionOption;
    return o;
  }();
  auto cleanup = [&] {
    writers.clear();
    RemoveTree(dir.string());
  };
  auto failed = [&](const rocksdb::Status& s) {
    cleanup();
    return WriteFailed(s, "building the per-model index", false);
  };
  // The writer of a model; a flushed model's records (its family dropped,
  // nothing in the overflow family: see above) get none and are skipped.
  auto writer_for = [&](std::string_view model) -> Result<Writer*> {
    auto it = writers.find(model);
    if (it != writers.end()) return &it->second;
    Writer w;
    {
      std::shared_lock<std::shared_mutex> lock(families_mu_);
      w.live = families_.contains(model);
    }
    if (!w.live) {
      LLMCACHE_ASSIGN_OR_RETURN(w.live, HasOverflowEntries(model));
    }
    if (w.live && open_files < kMaxFiles) {
      ++open_files;
      w.file = (dir / (std::to_string(writers.size()) + ".sst")).string();
      w.sst = std::make_unique<rocksdb::SstFileWriter>(
          rocksdb::EnvOptions(opts), opts, model_time_cf_);
      rocksdb::Status s = w.sst->Open(w.file);
      if (!s.ok()) return WriteFailed(s, "building the per-model index", false);
    }
    return &writers.emplace(std::string(model), std::move(w)).first->second;
  };

  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), time_cf_));
  std::string key;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    IndexRecord r;
    if (!ParseIndexKey(ToView(it->key()), &r)) continue;
    Result<Writer*> w = writer_for(r.model);
    if (!w.ok()) {
      cleanup();
      return w.status();
    }
    if (!(*w)->live || !TimeKeyToModelTimeKey(ToView(it->key()), &key)) {
      continue;
    }
    rocksdb::Status s;
    if ((*w)->sst) {
      s = (*w)->sst->Put(key, it->value());
    } else {
      s = batch.Put(model_time_cf_, key, it->value());
      if (s.ok() && batch.Count() >= 65536) {
        s = db_->Write(unlogged, &batch);
        batch.Clear();
      }
    }
    if (!s.ok()) return failed(s);
    ++(*w)->records;
  }
  if (!it->status().ok()) {
    Status st = FromRocks(it->status(), path_, "walking the time index");
    cleanup();
    return st;
  }
  it.reset();
  rocksdb::Status s = db_->Write(unlogged, &batch);
  if (s.ok()) s = db_->Flush(rocksdb::FlushOptions(), model_time_cf_);
  if (!s.ok()) return failed(s);
  std::vector<std::string> files;
  for (auto& [model, w] : writers) {
    if (!w.sst || w.records == 0) continue;
    s = w.sst->Finish();
    if (!s.ok()) return failed(s);
    files.push_back(w.file);
  }
  if (!files.empty()) {
    rocksdb::IngestExternalFileOptions ingest;
    ingest.move_files = true;  // linked: same file system
    s = db_->IngestExternalFile(model_time_cf_, files, ingest);
    if (!s.ok()) return failed(s);
  }
  // Every model with records gets an entry counter (a zero delta where it
  // has one): walks over every model find the models by their counters
  // (IndexedModels), and an older llmcache kept the overflow models' counters
  // in memory until its maintenance thread wrote them.
  rocksdb::WriteBatch counters;
  for (const auto& [model, w] : writers) {
    if (w.live && w.records > 0) {
      counters.Merge(meta_cf_, ModelStatKey(ModelCounter::kEntries, model),
                     Le64(0));
    }
  }
  s = db_->Write(WriteOpts(), &counters);
  if (!s.ok()) return failed(s);
  cleanup();
  return Status();
}

rocksdb::ReadOptions RocksCache::ListingReadOptions(
    std::unique_ptr<rocksdb::ManagedSnapshot>* snapshot) {
  rocksdb::ReadOptions ro;
  // A read-only instance (recovery's fallback) does not change either.
  if (!secondary_ && !read_only_) {
    *snapshot = std::make_unique<rocksdb::ManagedSnapshot>(db_.get());
    ro.snapshot = (*snapshot)->snapshot();
  }
  return ro;
}

Result<RocksCache::Indexed> RocksCache::ReadIndexedEntry(
    const rocksdb::ReadOptions& ro, int64_t created_ms, std::string_view model,
    const Digest& d, Entry* out, size_t* stored_bytes, Status* corrupt) {
  std::shared_ptr<Family> f = FamilyFor(model);
  if (!f) return Indexed::kGone;
  rocksdb::PinnableSlice v;
  rocksdb::Status s = db_->Get(ro, f->handle, EntryKey(*f, model, d), &v);
  if (s.IsNotFound()) return Indexed::kGone;
  if (!s.ok()) return FromRocks(s, path_, "reading an indexed entry");
  // Read through a handle a concurrent flush dropped: the entry is gone.
  if (f->dropped.load(std::memory_order_acquire)) return Indexed::kGone;
  int64_t created = 0, expires = 0;
  const bool peeked = PeekEntryTimes(ToView(v), &created, &expires);
  if (peeked && created != created_ms) return Indexed::kGone;  // replaced
  if (out == nullptr) return peeked ? Indexed::kLive : Indexed::kGone;
  // A value whose times cannot be read does not decode either: reported as
  // corrupt, as ForEachEntry reports it.
  Status decoded = DecodeEntry(ToView(v), out);
  if (!decoded.ok()) {
    if (corrupt != nullptr) *corrupt = std::move(decoded);
    return Indexed::kCorrupt;
  }
  if (stored_bytes != nullptr) *stored_bytes = v.size();
  return Indexed::kLive;
}

Status RocksCache::ForEachEntryByAge(
    const std::optional<std::string>& model, bool newest_first,
    const std::function<bool(const EntryView&)>& fn,
    const std::function<void(std::string_view, const Status&)>& on_corrupt) {
  DbLock db_lock(this);
  LLMCACHE_RETURN_IF_ERROR(db_lock.status());
  std::optional<std::string> base;
  if (model) base = std::string(BaseModel(*model));
  std::unique_ptr<rocksdb::ManagedSnapshot> snapshot;
  const rocksdb::ReadOptions ro = ListingReadOptions(&snapshot);
  std::unique_ptr<rocksdb::Iterator> it;
  if (!model_time_ready_ && time_cf_ != nullptr) {
    it.reset(db_->NewIterator(ro, time_cf_));
  }

  struct Pending {
    Digest digest;
    std::string model;
  };
  bool stopped = false;
  Entry entry;
  // Reads the entry of one record and hands it to `fn`.
  auto report = [&](int64_t created, const Pending& p) -> Status {
    size_t bytes = 0;
    Status why;
    LLMCACHE_ASSIGN_OR_RETURN(
        Indexed state,
        ReadIndexedEntry(ro, created, p.model, p.digest, &entry, &bytes, &why));
    if (state == Indexed::kGone) return Status();
    if (state == Indexed::kCorrupt) {
      const std::string name = DigestToHex(p.digest);
      if (!on_corrupt) return why.WithContext("entry " + name);
      on_corrupt(name, why);
      return Status();
    }
    if (!fn(EntryView{p.digest, p.model, entry, bytes})) stopped = true;
    return Status();
  };

  // Where the records come from: with the per-model index, the range of the
  // one model, or the ranges of every model merged, each already in listing
  // order, so that a listing reads what it prints; else (a version-1 view)
  // the time index, whose records of one millisecond are ordered by model
  // first: collected, sorted by digest, then read.
  if (model_time_ready_) {
    std::vector<std::string> models;
    if (base) {
      models.push_back(*base);
    } else {
      LLMCACHE_ASSIGN_OR_RETURN(models, IndexedModels(ro, kAllModels));
    }
    IndexMerge merge(db_.get(), model_time_cf_, ro, models, newest_first);
    Pending p;
    IndexRecord rec;
    while (!stopped && merge.Next(&rec)) {
      p.digest = rec.digest;
      p.model.assign(rec.model);
      LLMCACHE_RETURN_IF_ERROR(report(rec.created_ms, p));
    }
    return FromRocks(merge.status(), path_, "walking the per-model index");
  }
  if (!it) {
    return DataLossError("database " + path_ +
                         " has neither of its creation-time indexes");
  }

  std::vector<Pending> group;
  int64_t group_ms = 0;
  auto report_group = [&]() -> Status {
    std::sort(group.begin(), group.end(),
              [](const Pending& a, const Pending& b) {
                if (a.digest != b.digest) return a.digest < b.digest;
                return a.model < b.model;
              });
    for (const Pending& p : group) {
      LLMCACHE_RETURN_IF_ERROR(report(group_ms, p));
      if (stopped) break;
    }
    group.clear();
    return Status();
  };
  if (newest_first) {
    it->SeekToLast();
  } else {
    it->SeekToFirst();
  }
  IndexRecord r;
  for (; it->Valid(); newest_first ? it->Prev() : it->Next()) {
    if (!ParseIndexKey(ToView(it->key()), &r)) continue;
    if (base && r.model != *base) continue;
    if (!group.empty() && r.created_ms != group_ms) {
      LLMCACHE_RETURN_IF_ERROR(report_group());
      if (stopped) return Status();
    }
    group_ms = r.created_ms;
    group.push_back(Pending{r.digest, std::string(r.model)});
  }
  LLMCACHE_RETURN_IF_ERROR(
      FromRocks(it->status(), path_, "walking the time index"));
  return report_group();
}

Result<std::vector<std::string>> RocksCache::IndexedModels(
    const rocksdb::ReadOptions& ro, size_t limit) {
  // Every model with entries has an entry counter (written in the same
  // batch or ingestion as its entries, deleted with its flush), and every
  // model with a family of its own is known: one key per model, never one
  // per record. (Seeking from model to model in the per-model index would
  // step over every record a flush deleted until compaction drops them.)
  std::set<std::string, std::less<>> models;
  {
    std::shared_lock<std::shared_mutex> lock(families_mu_);
    for (const auto& [model, f] : families_) {
      if (models.size() >= limit) break;
      models.insert(model);
    }
  }
  const std::string prefix = ModelStatKey(ModelCounter::kEntries, "");
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_cf_));
  for (it->Seek(prefix); it->Valid() && models.size() < limit; it->Next()) {
    std::string_view k = ToView(it->key());
    if (!k.starts_with(prefix)) break;
    models.emplace(k.substr(prefix.size()));
  }
  LLMCACHE_RETURN_IF_ERROR(
      FromRocks(it->status(), path_, "listing the models"));
  return std::vector<std::string>(models.begin(), models.end());
}

Result<std::map<std::string, AgeRange, std::less<>>> RocksCache::AgeRanges(
    const std::vector<std::string>& models) {
  DbLock db_lock(this);
  LLMCACHE_RETURN_IF_ERROR(db_lock.status());
  std::set<std::string, std::less<>> pending;
  for (const std::string& m : models) pending.emplace(BaseModel(m));
  std::map<std::string, AgeRange, std::less<>> ranges;
  std::unique_ptr<rocksdb::ManagedSnapshot> snapshot;
  const rocksdb::ReadOptions ro = ListingReadOptions(&snapshot);

  if (model_time_ready_) {
    // Per model: the first live record from each end of its range.
    for (const std::string& m : pending) {
      ModelRangeIterator range(db_.get(), model_time_cf_, ro, m);
      std::optional<int64_t> ends[2];  // oldest, newest
      for (int newest = 0; newest < 2; ++newest) {
        range.SeekToEnd(newest == 1);
        for (; range->Valid(); newest ? range->Prev() : range->Next()) {
          IndexRecord r;
          if (!ParseModelIndexKey(ToView(range->key()), &r)) continue;
          LLMCACHE_ASSIGN_OR_RETURN(
              Indexed state,
              ReadIndexedEntry(ro, r.created_ms, r.model, r.digest, nullptr,
                               nullptr, nullptr));
          if (state != Indexed::kLive) continue;
          ends[newest] = r.created_ms;
          break;
        }
        LLMCACHE_RETURN_IF_ERROR(
            FromRocks(range->status(), path_, "walking the per-model index"));
        if (!ends[0]) break;  // no live entry: none from the other end
      }
      if (ends[0] && ends[1]) ranges.emplace(m, AgeRange{*ends[0], *ends[1]});
    }
    return ranges;
  }
  if (time_cf_ == nullptr) {
    return DataLossError("database " + path_ +
                         " has neither of its creation-time indexes");
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, time_cf_));

  // From one end of the index until every pending model's first live
  // record was met; `found` records it.
  auto walk = [&](bool from_oldest,
                  const std::function<void(std::string_view, int64_t)>& found)
      -> Status {
    if (from_oldest) {
      it->SeekToFirst();
    } else {
      it->SeekToLast();
    }
    for (; it->Valid() && !pending.empty();
         from_oldest ? it->Next() : it->Prev()) {
      IndexRecord r;
      if (!ParseIndexKey(ToView(it->key()), &r)) continue;
      auto p = pending.find(r.model);
      if (p == pending.end()) continue;
      LLMCACHE_ASSIGN_OR_RETURN(
          Indexed state, ReadIndexedEntry(ro, r.created_ms, r.model, r.digest,
                                          nullptr, nullptr, nullptr));
      if (state != Indexed::kLive) continue;
      found(r.model, r.created_ms);
      pending.erase(p);
    }
    return FromRocks(it->status(), path_, "walking the time index");
  };

  LLMCACHE_RETURN_IF_ERROR(walk(true, [&](std::string_view m, int64_t c) {
    ranges.emplace(std::string(m), AgeRange{c, c});
  }));
  // Only the models met have a newest entry to find (under the snapshot,
  // or in an inspection view, the index cannot have changed since).
  pending.clear();
  for (const auto& [m, range] : ranges) pending.insert(m);
  LLMCACHE_RETURN_IF_ERROR(walk(false, [&](std::string_view m, int64_t c) {
    auto r = ranges.find(m);
    if (r != ranges.end()) r->second.newest_ms = c;
  }));
  return ranges;
}

Status RocksCache::WalkTimeIndex(
    const std::function<bool(int64_t, std::string_view, const Digest&, int64_t,
                             std::string_view)>& fn) {
  // No snapshot: the caller deletes what it walked, in chunks, as it goes.
  const rocksdb::ReadOptions ro;
  LLMCACHE_ASSIGN_OR_RETURN(std::vector<std::string> models,
                            IndexedModels(ro, kAllModels));
  IndexMerge merge(db_.get(), model_time_cf_, ro, models,
                   /*newest_first=*/false);
  IndexRecord r;
  std::string key;
  while (merge.Next(&r)) {
    if (!r.has_expiry) continue;  // not an index value: never written
    key = ModelTimeIndexKey(r.model, r.created_ms, r.digest);
    if (!fn(r.created_ms, r.model, r.digest, r.expires_ms, key)) break;
  }
  return FromRocks(merge.status(), path_, "walking the per-model index");
}

}  // namespace llmcache
