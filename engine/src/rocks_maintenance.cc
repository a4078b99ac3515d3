// RocksCache: background maintenance and statistics. Counter deltas are
// merged into the meta family (WriteStatsDelta) and read back with the
// unwritten deltas (GetStats); the disk budget evicts oldest entries first;
// periodic compaction is nudged on idle databases; the maintenance thread
// runs all of it every CacheOptions::maintenance_interval_ms.

#include <rocksdb/db.h>
#include <rocksdb/sst_file_reader.h>
#include <rocksdb/table_properties.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <set>
#include <system_error>
#include <vector>

#include "cache_internal.h"
#include "format.h"
#include "rocks_cache.h"
#include "rocks_schema.h"
#include "rocks_status.h"

namespace llmcache {
namespace {

int64_t SteadyMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Status RocksCache::LoadPersistedStats(CacheStats* stats) {
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), meta_cf_));
  StatsDelta d;
  for (std::string_view prefix : {kModelStatPrefix, kStatPrefix}) {
    for (it->Seek(prefix); it->Valid(); it->Next()) {
      std::string_view k = ToView(it->key());
      if (!k.starts_with(prefix)) break;
      if (it->value().size() != 8) continue;
      const int64_t v =
          static_cast<int64_t>(ReadLittleEndian64(it->value().data()));
      if (k.starts_with(kBypassStatPrefix)) {
        k.remove_prefix(kBypassStatPrefix.size());
        if (auto r = BypassReasonFromName(k)) {
          d.bypasses[static_cast<size_t>(*r)] += v;
        }
      } else if (k.starts_with(kStatPrefix)) {
        k.remove_prefix(kStatPrefix.size());
        for (int c = 0; c < static_cast<int>(Counter::kCount); ++c) {
          if (CounterName(static_cast<Counter>(c)) == k) d.global[c] += v;
        }
      } else {
        k.remove_prefix(kModelStatPrefix.size());
        const size_t slash = k.find('/');
        if (slash == std::string_view::npos) continue;
        const std::string_view field = k.substr(0, slash);
        const std::string model(k.substr(slash + 1));
        for (int c = 0; c < static_cast<int>(ModelCounter::kCount); ++c) {
          if (ModelCounterName(static_cast<ModelCounter>(c)) == field) {
            d.models[model][c] += v;
          }
        }
      }
    }
    // Checked per prefix: the next Seek would clear a read error.
    LLMCACHE_RETURN_IF_ERROR(FromRocks(it->status(), path_, "reading stats"));
  }
  internal::AddDelta(d, stats);
  return Status();
}

Status RocksCache::WriteStatsDelta() {
  if (secondary_) return Status();
  DbLock db_lock(this);
  std::shared_lock<FenceMutex> fence(write_fence_);
  // Degraded (or closed): the deltas wait in memory for the recovery.
  if (!db_ || degraded_.load(std::memory_order_acquire)) return Status();
  std::lock_guard<std::mutex> lock(stats_write_mu_);
  StatsDelta d = stats_.Drain();
  if (d.empty()) return Status();
  rocksdb::WriteBatch batch;
  for (int c = 0; c < static_cast<int>(Counter::kCount); ++c) {
    if (d.global[c] == 0) continue;
    batch.Merge(meta_cf_,
                std::string(kStatPrefix) +
                    std::string(CounterName(static_cast<Counter>(c))),
                Le64(d.global[c]));
  }
  for (size_t r = 0; r < d.bypasses.size(); ++r) {
    if (d.bypasses[r] == 0) continue;
    batch.Merge(meta_cf_,
                std::string(kBypassStatPrefix) +
                    std::string(BypassReasonName(static_cast<BypassReason>(r))),
                Le64(d.bypasses[r]));
  }
  for (const auto& [model, values] : d.models) {
    for (int c = 0; c < static_cast<int>(ModelCounter::kCount); ++c) {
      if (values[c] == 0) continue;
      batch.Merge(meta_cf_, ModelStatKey(static_cast<ModelCounter>(c), model),
                  Le64(values[c]));
    }
  }
  rocksdb::Status s = db_->Write(WriteOpts(), &batch);
  if (!s.ok()) {
    // Put the counts back for the next attempt.
    for (int c = 0; c < static_cast<int>(Counter::kCount); ++c) {
      stats_.Add(static_cast<Counter>(c), d.global[c]);
    }
    for (size_t r = 0; r < d.bypasses.size(); ++r) {
      for (int64_t i = 0; i < d.bypasses[r]; ++i) {
        stats_.AddBypass(static_cast<BypassReason>(r));
      }
    }
    for (const auto& [model, values] : d.models) {
      ModelCounters& m = stats_.ForModel(model);
      for (int c = 0; c < static_cast<int>(ModelCounter::kCount); ++c) {
        m.Add(static_cast<ModelCounter>(c), values[c]);
      }
    }
    return WriteFailed(s, "writing statistics", true);
  }
  return Status();
}

Result<uint64_t> RocksCache::DiskBytes() {
  uint64_t sst = 0;
  for (rocksdb::ColumnFamilyHandle* h : AllHandles()) {
    uint64_t v = 0;
    if (db_->GetIntProperty(h, "rocksdb.total-sst-files-size", &v)) sst += v;
  }
  uint64_t wal = 0;
  rocksdb::VectorLogPtr files;
  if (!secondary_ && db_->GetSortedWalFiles(files).ok()) {
    for (const auto& f : files) wal += f->SizeFileBytes();
  } else if (secondary_) {
    // An inspection has no log of its own; the owner's logs (up to 256 MiB
    // between its flushes) take the disk all the same.
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(path_, ec)) {
      if (e.path().extension() != ".log") continue;
      const uintmax_t n = e.file_size(ec);
      if (!ec) wal += n;
    }
  }
  return sst + wal;
}

Result<bool> RocksCache::HasUncompressedEntryFiles() {
  if (options_.compression == StoreCompression::kNone) return false;
  for (const auto& f : AllFamilies()) {
    if (f->dropped.load()) continue;
    rocksdb::TablePropertiesCollection tables;
    rocksdb::Status s = db_->GetPropertiesOfAllTables(f->handle, &tables);
    if (!s.ok()) {
      if (f->dropped.load()) continue;  // dropped meanwhile
      return FromRocks(s, path_, "reading table properties");
    }
    for (const auto& [file, props] : tables) {
      if (props != nullptr && props->compression_name == "NoCompression") {
        return true;
      }
    }
  }
  return false;
}

Status RocksCache::EnforceDiskBudget() {
  if (options_.max_disk_bytes == 0 || secondary_) return Status();
  if (degraded_.load(std::memory_order_acquire)) return Status();  // later
  LLMCACHE_ASSIGN_OR_RETURN(uint64_t usage, DiskBytes());
  if (usage <= options_.max_disk_bytes) return Status();
  // The write-ahead log holds what the memtables hold, uncompressed, and a
  // flush frees it: counted as entries, it made the budget evict 97% of a
  // store that fit once flushed. Flushed first, the usage is table files.
  {
    // As Compact: the families held (a concurrent flush of a model may drop
    // one), and one at a time, skipping dropped ones (a failure shows in the
    // usage).
    std::vector<std::shared_ptr<Family>> families;
    {
      std::shared_lock<FenceMutex> fence(write_fence_);
      families = AllFamilies();
    }
    rocksdb::FlushOptions fo;
    fo.allow_write_stall = true;
    for (rocksdb::ColumnFamilyHandle* h :
         {meta_cf_, time_cf_, model_time_cf_}) {
      if (h != nullptr) (void)db_->Flush(fo, h);  // the log holds theirs too
    }
    for (const auto& f : families) {
      if (!f->dropped.load()) (void)db_->Flush(fo, f->handle);
    }
    LLMCACHE_ASSIGN_OR_RETURN(usage, DiskBytes());
    if (usage <= options_.max_disk_bytes) return Status();
  }
  // Bulk-loaded files are not compressed until a compaction rewrites them
  // (rocks_ingest.cc): about 2.5x what the same entries take compressed.
  // Compressed first, the store may fit; judged as loaded, entries that fit
  // would be evicted.
  LLMCACHE_ASSIGN_OR_RETURN(const bool loaded, HasUncompressedEntryFiles());
  if (loaded) {
    LLMCACHE_RETURN_IF_ERROR(Compact());
    LLMCACHE_ASSIGN_OR_RETURN(usage, DiskBytes());
  }
  const uint64_t target = options_.max_disk_bytes / 10 * 9;
  for (int round = 0; round < 4 && usage > options_.max_disk_bytes; ++round) {
    // Entry bytes on disk are compressed: scale what to free by the ratio of
    // disk bytes to logical bytes.
    CacheStats stats;
    {
      std::lock_guard<std::mutex> lock(stats_write_mu_);
      LLMCACHE_RETURN_IF_ERROR(LoadPersistedStats(&stats));
      internal::AddDelta(stats_.Peek(), &stats);
      internal::FinishStats(&stats);
    }
    double ratio = 1.0;
    if (stats.bytes > 0) {
      ratio = std::max(
          0.05, static_cast<double>(usage) / static_cast<double>(stats.bytes));
    }
    const uint64_t to_free =
        static_cast<uint64_t>(static_cast<double>(usage - target) / ratio);
    uint64_t freed = 0;
    std::vector<Doomed> doomed;
    Status inner;
    LLMCACHE_RETURN_IF_ERROR(WalkTimeIndex(
        [&](int64_t created, std::string_view model, const Digest& d, int64_t,
            std::string_view index_key) {
          Result<std::optional<Doomed>> r =
              ResolveIndexed(created, model, d, index_key);
          if (!r.ok()) {
            inner = r.status();
            return false;
          }
          if (*r) {
            freed += (*r)->bytes;
            doomed.push_back(std::move(**r));
          }
          return freed < to_free;
        }));
    LLMCACHE_RETURN_IF_ERROR(inner);
    if (doomed.empty()) break;
    LLMCACHE_RETURN_IF_ERROR(
        DeleteInChunks(doomed, Counter::kEvictions).status());
    LLMCACHE_RETURN_IF_ERROR(Compact());
    LLMCACHE_ASSIGN_OR_RETURN(usage, DiskBytes());
  }
  return Status();
}

void RocksCache::NudgePeriodicCompaction() {
  // periodic_compaction_seconds does not fire on an idle database in RocksDB
  // 7.8; a no-op SetOptions makes it re-evaluate which files are due.
  const int64_t now = SteadyMillis();
  const int64_t every_ms = std::max<int64_t>(
      250, static_cast<int64_t>(options_.periodic_compaction_seconds) * 250);
  if (now - last_nudge_steady_ms_ < every_ms) return;
  // SetOptions writes an OPTIONS file: not while degraded.
  if (degraded_.load(std::memory_order_acquire)) return;
  last_nudge_steady_ms_ = now;
  const std::string value =
      std::to_string(options_.periodic_compaction_seconds);
  std::vector<rocksdb::ColumnFamilyHandle*> handles = AllHandles();
  std::erase(handles, meta_cf_);  // nothing expires there
  for (rocksdb::ColumnFamilyHandle* h : handles) {
    (void)db_->SetOptions(h, {{"periodic_compaction_seconds", value}});
  }
}

Status RocksCache::RunMaintenance() {
  if (secondary_) return Status();
  std::lock_guard<std::mutex> lock(maintenance_run_mu_);
  DbLock db_lock(this);
  LLMCACHE_RETURN_IF_ERROR(db_lock.status());
  Status s = WriteStatsDelta();
  Status budget = EnforceDiskBudget();
  if (s.ok()) s = budget;
  {
    std::shared_lock<FenceMutex> fence(write_fence_);
    NudgePeriodicCompaction();
  }
  return s;
}

void RocksCache::MaintenanceLoop() {
  std::unique_lock<std::mutex> lock(maintenance_mu_);
  while (!stopping_) {
    maintenance_cv_.wait_for(
        lock, std::chrono::milliseconds(options_.maintenance_interval_ms),
        [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    Status s = RunMaintenance();
    if (!s.ok()) stats_.Add(Counter::kStoreErrors, 1);
    lock.lock();
  }
}

namespace {

// Whether the file ends in the magic number of a block-based table (the
// last 8 bytes of its footer, little-endian).
bool EndsLikeATable(const std::filesystem::path& path) {
  constexpr uint64_t kBlockBasedTableMagic = 0x88e241b785f4cff7ull;
  std::ifstream in(path, std::ios::binary);
  if (!in.seekg(-8, std::ios::end)) return false;
  char tail[8];
  if (!in.read(tail, sizeof(tail))) return false;
  return ReadLittleEndian64(tail) == kBlockBasedTableMagic;
}

}  // namespace

Result<std::vector<Cache::FileProblem>> RocksCache::VerifyFiles() {
  DbLock db_lock(this);
  LLMCACHE_RETURN_IF_ERROR(db_lock.open_status());  // the view's gaps too
  // An inspection sees the files of its last catch-up: the owner may have
  // compacted (and deleted) some since, which are skipped below. (No catch-up
  // here: with one, verify died of SIGSEGV after an owner was killed during
  // a model flush, crash-loop seed 1775862061; without, it passes.)
  std::vector<rocksdb::LiveFileMetaData> files;
  db_->GetLiveFilesMetaData(&files);
  std::vector<FileProblem> out;
  rocksdb::Options opts;
  opts.env = db_opts_.env != nullptr ? db_opts_.env : rocksdb::Env::Default();
  for (const rocksdb::LiveFileMetaData& f : files) {
    const std::string file = f.db_path + f.name;
    rocksdb::SstFileReader reader(opts);
    rocksdb::Status s = reader.Open(file);
    if (s.ok()) s = reader.VerifyChecksum();
    std::error_code ec;
    if (s.ok() || !std::filesystem::exists(file, ec)) continue;  // or gone
    std::string holds, model;
    if (f.column_family_name == kMetaColumnFamily) {
      holds = "statistics and settings";
    } else if (f.column_family_name == kTimeColumnFamily ||
               f.column_family_name == kModelTimeColumnFamily) {
      holds = "the creation-time index";
    } else if (f.column_family_name == kOverflowColumnFamily) {
      holds = "entries of the models without a family of their own";
    } else if (Result<std::string> m =
                   ColumnFamilyNameToModel(f.column_family_name);
               m.ok()) {
      holds = "entries of model " + *m;
      model = *m;
    } else {
      holds = "column family " + f.column_family_name;
    }
    out.push_back({file, std::move(holds), s.ToString(), std::move(model)});
  }
  std::vector<FileProblem> unviewed = UnviewedDamagedFiles(/*whole=*/true);
  out.insert(out.end(), unviewed.begin(), unviewed.end());
  return out;
}

std::vector<Cache::FileProblem> RocksCache::UnviewedDamagedFiles(bool whole) {
  std::vector<rocksdb::LiveFileMetaData> files;
  db_->GetLiveFilesMetaData(&files);
  std::vector<FileProblem> out;
  rocksdb::Options opts;
  opts.env = db_opts_.env != nullptr ? db_opts_.env : rocksdb::Env::Default();
  // RocksDB leaves a table file it cannot open (a damaged properties block)
  // out of an inspection's view without an error. Files not in the view
  // that have settled (a minute without writes: not an output the owner is
  // still writing, nor one it just deleted) must open (and, if `whole`,
  // pass the check of every block).
  std::set<std::string> live;
  for (const rocksdb::LiveFileMetaData& f : files) live.insert(f.name);
  std::error_code ec;
  const auto settled =
      std::filesystem::file_time_type::clock::now() - std::chrono::minutes(1);
  for (std::filesystem::directory_iterator it(path_, ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::filesystem::directory_entry& e = *it;
    const std::string name = "/" + e.path().filename().string();
    std::error_code ec2;
    if (e.path().extension() != ".sst" || live.count(name) != 0 ||
        std::filesystem::last_write_time(e.path(), ec2) > settled || ec2) {
      continue;
    }
    rocksdb::SstFileReader reader(opts);
    rocksdb::Status s = reader.Open(e.path().string());
    if (s.ok() && whole) s = reader.VerifyChecksum();
    // A file that does not end in a table's magic number is an output its
    // writer never finished (killed), which the owner's next open deletes:
    // not damage.
    if (s.ok() || !EndsLikeATable(e.path())) continue;
    out.push_back({e.path().string(),
                   "data outside the database's view (RocksDB leaves out a "
                   "file it cannot open)",
                   s.ToString(), ""});
  }
  return out;
}

Status RocksCache::Compact(const CompactOptions& options) {
  DbLock db_lock(this);
  rocksdb::FlushOptions fo;
  std::vector<std::shared_ptr<Family>> families;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  {
    std::shared_lock<FenceMutex> fence(write_fence_);
    LLMCACHE_RETURN_IF_ERROR(WriteAllowed());
    families = AllFamilies();
    for (rocksdb::ColumnFamilyHandle* h : {time_cf_, model_time_cf_}) {
      if (h != nullptr) handles.push_back(h);
    }
    handles.push_back(meta_cf_);
  }
  // The first `indexes` handles are not entry families.
  const size_t indexes = handles.size();
  for (const auto& f : families) handles.push_back(f->handle);
  rocksdb::CompactRangeOptions cro;
  cro.bottommost_level_compaction =
      rocksdb::BottommostLevelCompaction::kForceOptimized;
  // Cancellable (RocksDB's CompactRangeOptions::canceled): RocksDB reads
  // the flag between keys, and before a job starts. Not exclusive: an
  // exclusive manual compaction first waits for the running automatic ones,
  // deaf to the flag. (RocksDB 7.8 does not look at it while the job waits
  // for one that works on its files, nor while it writes a file out.)
  cro.canceled = options.cancel;
  cro.exclusive_manual_compaction = options.cancel == nullptr;
  auto cancelled = [&] {
    return options.cancel != nullptr &&
           options.cancel->load(std::memory_order_relaxed);
  };
  bool stopped = false;
  for (size_t i = 0; i < handles.size(); ++i) {
    const bool dropped = i >= indexes && families[i - indexes]->dropped.load();
    if (dropped) continue;
    if (cancelled()) {
      stopped = true;
      break;
    }
    rocksdb::Status s = db_->Flush(fo, handles[i]);
    if (s.ok()) s = db_->CompactRange(cro, handles[i], nullptr, nullptr);
    if (s.IsManualCompactionPaused() && cancelled()) {
      stopped = true;
      break;
    }
    if (!s.ok() && !(i >= indexes && families[i - indexes]->dropped.load())) {
      return WriteFailed(s, "compacting", false);
    }
  }
  if (stopped) {
    return CancelledError("compaction of " + path_ +
                          " stopped before its end: what it compacted stays "
                          "compacted, the rest as it was");
  }
  return Status();
}

Result<CacheStats> RocksCache::GetStats() {
  CacheStats stats;
  stats.persistent = true;
  DbLock db_lock(this);
  LLMCACHE_RETURN_IF_ERROR(db_lock.status());
  {
    std::lock_guard<std::mutex> lock(stats_write_mu_);
    LLMCACHE_RETURN_IF_ERROR(LoadPersistedStats(&stats));
    if (!secondary_) internal::AddDelta(stats_.Peek(), &stats);
  }
  internal::ModelRows rows(&stats);
  {
    std::shared_lock<std::shared_mutex> lock(families_mu_);
    for (const auto& [model, f] : families_) {
      rows.Get(model).own_column_family = true;
    }
  }
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), meta_cf_));
    for (it->Seek(kResolvedPrefix); it->Valid(); it->Next()) {
      std::string_view k = ToView(it->key());
      if (!k.starts_with(kResolvedPrefix)) break;
      k.remove_prefix(kResolvedPrefix.size());
      if (ModelStats* m = rows.Find(k)) {
        m->last_resolved_model = it->value().ToString();
      }
    }
    LLMCACHE_RETURN_IF_ERROR(
        FromRocks(it->status(), path_, "reading the resolved models"));
  }
  internal::FinishStats(&stats);
  LLMCACHE_ASSIGN_OR_RETURN(stats.disk_bytes, DiskBytes());
  // The entry families' files alone, beside stats.bytes: the compression
  // ratio an operator sees (disk_bytes adds the WAL and the other families).
  for (const auto& f : AllFamilies()) {
    uint64_t v = 0;
    if (!f->dropped.load() &&
        db_->GetIntProperty(f->handle, "rocksdb.live-sst-files-size", &v)) {
      stats.stored_bytes += v;
    }
  }
  if (tier_) {
    stats.memory_tier_entries = tier_->size();
    stats.memory_tier_bytes = tier_->bytes();
  }
  return stats;
}

}  // namespace llmcache
