// RocksCache: opening, repairing, inspecting and closing the persistent
// cache. See rocks_cache.h for the concurrency design, format.h for what is
// stored where, and for the rest of the class:
//   rocks_schema.cc       column-family options, TTL compaction filter,
//                         counters' merge operator;
//   rocks_entries.cc      lookup, insert, find, iteration (and test hooks);
//   rocks_purge.cc        flushes and purges (time-index walks);
//   rocks_maintenance.cc  statistics persistence, disk budget, compaction,
//                         the maintenance thread;
//   rocks_health.cc       write errors, degraded state, recovery;
//   rocks_private_fs.cc   database files private to their owner;
//   rocks_status.cc       RocksDB status -> llmcache Status.

#include "rocks_cache.h"

#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/table.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "format.h"
#include "llmcache/cpus.h"
#include "rocks_info_log.h"
#include "rocks_private_fs.h"
#include "rocks_schema.h"
#include "rocks_status.h"

namespace llmcache {

namespace fs = std::filesystem;

namespace {

// The caches whose db_mu_ this thread holds (DbLock), innermost last.
constexpr int kMaxHeldDbLocks = 8;
thread_local const void* held_db_locks[kMaxHeldDbLocks];
thread_local int held_db_lock_count = 0;

bool HoldsDbLock(const void* cache) {
  for (int i = 0; i < held_db_lock_count; ++i) {
    if (held_db_locks[i] == cache) return true;
  }
  return false;
}

// The column families every database has, made with it (CreateDb) and
// re-made by a writer's open if missing (OpenDb); the metadata family second.
std::array<std::string_view, 4> RequiredFamilies() {
  return {rocksdb::kDefaultColumnFamilyName, kMetaColumnFamily,
          kModelTimeColumnFamily, kOverflowColumnFamily};
}

}  // namespace

RocksCache::DbLock::DbLock(const RocksCache* cache, bool exclusive)
    : cache_(cache) {
  if (HoldsDbLock(cache_) || held_db_lock_count >= kMaxHeldDbLocks) {
    // Nested (or absurdly deep: then unlocked, which only ever happens with
    // eight caches nested in one thread).
    return;
  }
  if (exclusive) {
    cache_->db_mu_.lock();
    exclusive_ = true;
  } else {
    cache_->db_mu_.lock_shared();
    shared_ = true;
  }
  held_db_locks[held_db_lock_count++] = cache_;
}

RocksCache::DbLock::~DbLock() {
  if (!shared_ && !exclusive_) return;
  --held_db_lock_count;
  if (exclusive_) {
    cache_->db_mu_.unlock();
  } else {
    cache_->db_mu_.unlock_shared();
  }
}

Status RocksCache::DbLock::status() const {
  if (cache_->db_ && !cache_->unviewed_.empty()) {
    return DataLossError(cache_->unviewed_);
  }
  return open_status();
}

Status RocksCache::DbLock::open_status() const {
  if (cache_->db_) return Status();
  return UnavailableError("database " + cache_->path_ +
                          " is not open: recovery is reopening it");
}

RocksCache::RocksCache(const std::string& path, bool secondary)
    : path_(path), secondary_(secondary) {}

RocksCache::~RocksCache() {
  {
    std::lock_guard<std::mutex> lock(health_mu_);
    recovery_stop_ = true;
  }
  health_cv_.notify_all();
  if (recovery_thread_.joinable()) recovery_thread_.join();
  {
    std::lock_guard<std::mutex> lock(maintenance_mu_);
    stopping_ = true;
  }
  maintenance_cv_.notify_all();
  if (maintenance_thread_.joinable()) maintenance_thread_.join();
  if (db_ && !secondary_ && !read_only_ && !degraded_.load()) {
    // Best effort: a failure loses one interval (and so does closing a
    // degraded store, which must not write).
    (void)WriteStatsDelta();
    // Every memtable goes to table files, so that no write-ahead log is
    // left to replay: each opening of an inspection view (every `llmcache
    // ls`, `models`, `stats`) replays it again. After a purge of 200k
    // entries the log held 55 MB of deletions and each of those commands
    // took 0.3 s instead of 0.05 s; the log may grow to max_total_wal_size.
    // Without the TTL filter (closing_), for this flush and the compactions
    // it may trigger: what they dropped would be counted after the
    // statistics were written, and an expired entry is listed until a
    // compaction drops it, whoever closed the store.
    closing_.store(true, std::memory_order_release);
    rocksdb::FlushOptions fo;
    fo.allow_write_stall = true;
    (void)db_->Flush(fo, AllHandles());
    // A compaction that began before closing_ filters with counting: one
    // that installed its output after the statistics were written counted
    // out in memory only (an outside probe found 170000 entries counted
    // against 160000 stored). Stop the background work and write what the
    // jobs that did install counted since: usually nothing, and then
    // nothing is written. A running job stops at its next look at the
    // shutdown flag, installing nothing; one past its last look (finishing
    // its output files) still installs, but RocksDB no longer tells the
    // listeners, and what it dropped stays counted in.
    rocksdb::CancelAllBackgroundWork(db_.get(), /*wait=*/true);
    (void)WriteStatsDelta();
  }
  CloseDb();
  if (remove_secondary_dir_) RemoveTree(secondary_dir_);
}

Status RocksCache::HoldLock() {
  if (held_lock_ != nullptr) return Status();
  rocksdb::IOStatus s = fs_->LockFile(path_ + "/LOCK", rocksdb::IOOptions(),
                                      &held_lock_, nullptr);
  if (s.ok()) return Status();
  held_lock_ = nullptr;
  return FromRocks(s, path_, "opening");
}

void RocksCache::CloseDb(bool keep_lock) {
  if (shared_) shared_->live_db.store(nullptr, std::memory_order_release);
  if (held_lock_ != nullptr && !keep_lock) {
    (void)fs_->UnlockFile(held_lock_, rocksdb::IOOptions(), nullptr);
    held_lock_ = nullptr;
  }
  {
    std::unique_lock<std::shared_mutex> lock(families_mu_);
    families_.clear();
    overflow_models_.clear();
    overflow_.reset();
  }
  if (!db_) return;
  for (rocksdb::ColumnFamilyHandle* h : {meta_cf_, time_cf_, model_time_cf_}) {
    if (h != nullptr) db_->DestroyColumnFamilyHandle(h);
  }
  meta_cf_ = time_cf_ = model_time_cf_ = nullptr;
  model_time_ready_ = false;
  default_cf_ = nullptr;  // owned by the DB
  (void)db_->Close();
  db_.reset();
  count_out_claims_.ReleaseAllFilterClaims();  // no job of it runs now
}

Status RocksCache::MutationAllowed() const {
  if (secondary_) {
    return FailedPreconditionError(
        "database " + path_ +
        " is open for inspection only; mutate it through the process that "
        "owns it");
  }
  return Status();
}

Result<std::unique_ptr<Cache>> RocksCache::Open(const CacheOptions& options) {
  std::unique_ptr<RocksCache> cache(new RocksCache(options.path, false));
  LLMCACHE_RETURN_IF_ERROR(cache->OpenPrimary(options));
  return std::unique_ptr<Cache>(std::move(cache));
}

Result<std::unique_ptr<Cache>> RocksCache::OpenSecondary(
    const InspectOptions& options) {
  std::unique_ptr<RocksCache> cache(new RocksCache(options.path, true));
  cache->clock_ = options.clock ? options.clock : Clock::System();
  cache->options_.path = options.path;
  cache->options_.maintenance_interval_ms = 0;
  cache->secondary_dir_ = options.secondary_path;
  cache->accept_damaged_view_ = options.accept_damaged_view;
  if (cache->secondary_dir_.empty()) {
    std::error_code ec;
    fs::path tmp = fs::temp_directory_path(ec);
    if (ec) tmp = "/tmp";
    std::string templ = (tmp / "llmcache-inspect-XXXXXX").string();
    if (mkdtemp(templ.data()) == nullptr) {
      return UnavailableError(
          "cannot create a temporary directory for "
          "inspecting " +
          options.path + ": " + std::strerror(errno));
    }
    cache->secondary_dir_ = templ;
    cache->remove_secondary_dir_ = true;
  }
  LLMCACHE_RETURN_IF_ERROR(cache->OpenAsSecondary());
  return std::unique_ptr<Cache>(std::move(cache));
}

Status RocksCache::OpenPrimary(const CacheOptions& options) {
  options_ = options;
  clock_ = options.clock ? options.clock : Clock::System();
  if (options.recovery_initial_backoff_ms <= 0 ||
      options.recovery_max_backoff_ms < options.recovery_initial_backoff_ms) {
    return InvalidArgumentError(
        "recovery backoff: need 0 < recovery_initial_backoff_ms <= "
        "recovery_max_backoff_ms");
  }

  // The directory first, so that errors name the real cause. It is private
  // (0700 less the umask), and so is every file in it (rocks_private_fs.h).
  std::error_code ec;
  const bool exists = fs::exists(fs::path(path_) / "CURRENT", ec);
  if (!exists) {
    // Never a new database over a damaged one (RocksDB would delete its
    // files as obsolete) or among files of something else.
    Status dir = CheckDirectoryForNewDatabase(path_);
    if (dir.code() == StatusCode::kDataLoss) return dir;
    if (!options.create_if_missing) {
      return NotFoundError("no llmcache database at " + path_ +
                           " (and create_if_missing is off)");
    }
    LLMCACHE_RETURN_IF_ERROR(dir);
  }
  LLMCACHE_RETURN_IF_ERROR(MakePrivateDirectory(path_));
  if (access(path_.c_str(), W_OK) != 0) {
    return PermissionDeniedError("database directory " + path_ +
                                 " is not writable: " + std::strerror(errno));
  }

  shared_ = std::make_shared<Shared>();
  rocksdb::LRUCacheOptions lru;
  lru.capacity = options.block_cache_bytes;
  lru.num_shard_bits = -1;  // RocksDB's choice: shards of at least 512 KiB
  // Up to half the cache for index and filter partitions.
  lru.high_pri_pool_ratio = 0.5;
  shared_->block_cache = rocksdb::NewLRUCache(lru);
  // Memtables have their own budget (write_buffer_bytes): charged to the
  // block cache they could take all of it under a burst of inserts and push
  // out every index and filter partition.
  shared_->write_buffers = std::make_shared<rocksdb::WriteBufferManager>(
      options.write_buffer_bytes, nullptr);

  fs_ = NewPrivateFileSystem(options.file_system);
  env_ = rocksdb::NewCompositeEnv(fs_);
  db_opts_ = rocksdb::DBOptions();
  db_opts_.env = env_.get();
  db_opts_.create_if_missing = options.create_if_missing;
  db_opts_.create_missing_column_families = true;
  db_opts_.write_buffer_manager = shared_->write_buffers;
  db_opts_.max_total_wal_size = 256u << 20;
  if (options.max_disk_bytes != 0) {
    // Under a disk budget the log is part of it: at most a quarter (it is
    // freed by flushes), and no space reserved ahead of what is written
    // (fallocate), which the budget could not see.
    db_opts_.max_total_wal_size =
        std::clamp<uint64_t>(options.max_disk_bytes / 4, 1u << 20, 256u << 20);
    db_opts_.allow_fallocate = false;
  }
  db_opts_.max_background_jobs = 2;
  // RocksDB opens the table files at open with this many threads per column
  // family, started even when a family has no file: 16 by default, which
  // made every open start ~16 threads per family. One per usable CPU.
  db_opts_.max_file_opening_threads =
      static_cast<int>(std::clamp<size_t>(UsableCpus(), 1, 16));
  // RocksDB's info log: ours, so that a full disk or a command refused by
  // the database lock never ends or disturbs the owner (rocks_info_log.h).
  db_opts_.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  db_opts_.info_log = NewInfoLog(path_, db_opts_.info_log_level);
  // LOG.old.<time> files of older versions beyond this many are removed.
  db_opts_.keep_log_file_num = 3;
  // Errors: ours to recover from (rocks_health.cc), not RocksDB's.
  db_opts_.listeners.push_back(NewErrorListener());
  db_opts_.listeners.push_back(NewCountOutListener());
  db_opts_.max_bgerror_resume_count = 0;

  if (exists) {
    std::vector<std::string> names;
    rocksdb::Status ls =
        rocksdb::DB::ListColumnFamilies(db_opts_, path_, &names);
    if (!ls.ok()) return FromRocks(ls, path_, "listing column families");
    const bool has_meta =
        std::find(names.begin(), names.end(), std::string(kMetaColumnFamily)) !=
        names.end();
    if (!has_meta && names.size() > 1) {
      return FailedPreconditionError(path_ +
                                     " holds a RocksDB database that is not an "
                                     "llmcache database");
    }
  }
  if (!exists) LLMCACHE_RETURN_IF_ERROR(CreateDb());
  if (Status opened = OpenDb(/*read_only=*/false); !opened.ok()) {
    // A full disk: an open writes a new MANIFEST, so a service restarted
    // on a full disk could not start, where one running when it filled goes
    // on. It starts as that one goes on: lookups from a read-only instance,
    // writes refused, degraded, and the recovery thread opens it for
    // writing once there is room.
    if (!exists || opened.code() != StatusCode::kResourceExhausted) {
      return opened;
    }
    // Still this process's: the lock first (another process that took it
    // since the failed open owns the database now).
    LLMCACHE_RETURN_IF_ERROR(HoldLock());
    if (!OpenDb(/*read_only=*/true).ok()) {
      CloseDb();
      return opened;
    }
    read_only_ = true;
    Degrade("opening the database for writing: " + opened.ToString(),
            Damage::kFatal);
  }
  // A creation killed after it moved CURRENT into place left its staging
  // directory; the database lock is ours, so no creation is using it.
  RemoveTree(path_ + "/" + std::string(kCreatingDirectory));

  if (options.memory_tier_bytes > 0) {
    tier_ = std::make_unique<MemoryTier>(options.memory_tier_bytes);
  }
  if (options.maintenance_interval_ms > 0) {
    maintenance_thread_ = std::thread([this] { MaintenanceLoop(); });
  }
  recovery_thread_ = std::thread([this] { RecoveryLoop(); });
  return Status();
}

// RocksDB makes a new database's column families one at a time, each its own
// MANIFEST record, and the format marker comes after them: a process killed
// meanwhile used to leave a database that an inspection could not read. So
// the database is made in a staging directory inside path_ (the same file
// system), with every column family and the marker, and its files are then
// moved up, CURRENT last: a kill leaves either no database (no CURRENT, and
// the staging directory; the next open makes it again, and RocksDB deletes
// the files nothing refers to) or a complete one. path_'s lock is held
// throughout, so a second process starting at the same moment reports it
// locked, as it would once the database is open.
Status RocksCache::CreateDb() {
  rocksdb::FileSystem& fs = *fs_;
  const rocksdb::IOOptions io;
  const std::string staging = path_ + "/" + std::string(kCreatingDirectory);
  const std::string lock_file = path_ + "/LOCK";
  rocksdb::FileLock* lock = nullptr;
  rocksdb::IOStatus ios = fs.LockFile(lock_file, io, &lock, nullptr);
  if (!ios.ok()) return FromRocks(ios, path_, "opening");
  // Released however this ends (an allocation may throw). The staging
  // directory goes once CURRENT is in place; a creation that failed leaves
  // it, as a killed one does, so that the files it moved up are not taken
  // for a damaged database's (CheckDirectoryForNewDatabase).
  struct Unlock {
    rocksdb::FileSystem& fs;
    rocksdb::FileLock* lock;
    const std::string& staging;
    bool created = false;
    ~Unlock() {
      if (created) RemoveTree(staging);
      (void)fs.UnlockFile(lock, rocksdb::IOOptions(), nullptr);
    }
  } unlock{fs, lock, staging};
  return [&]() -> Status {
    // Another process may have created it before the lock was ours.
    if (fs.FileExists(path_ + "/CURRENT", io, nullptr).ok()) {
      unlock.created = true;
      return Status();
    }
    // A creation that was killed (or failed): the files it moved up go
    // first, then its staging directory, so that no kill in between leaves
    // them without the directory that marks them as a creation's
    // (CheckDirectoryForNewDatabase). It moves up no table files.
    if (fs.FileExists(staging, io, nullptr).ok()) {
      std::vector<std::string> moved;
      (void)fs.GetChildren(path_, io, &moved, nullptr);
      for (const std::string& f : moved) {
        if (f.starts_with("MANIFEST-") || f.starts_with("OPTIONS-") ||
            f == "IDENTITY" || f.ends_with(".log") || f.ends_with(".dbtmp")) {
          (void)fs.DeleteFile(path_ + "/" + f, io, nullptr);
        }
      }
    }
    RemoveTree(staging);
    {
      rocksdb::DBOptions dbo = db_opts_;
      dbo.create_if_missing = true;
      dbo.create_missing_column_families = true;
      dbo.listeners.clear();  // not this cache's yet
      std::vector<rocksdb::ColumnFamilyDescriptor> descs;
      for (std::string_view name : RequiredFamilies()) {
        descs.emplace_back(std::string(name), rocksdb::ColumnFamilyOptions());
      }
      std::vector<rocksdb::ColumnFamilyHandle*> handles;
      rocksdb::DB* raw = nullptr;
      rocksdb::Status s =
          rocksdb::DB::Open(dbo, staging, descs, &handles, &raw);
      if (!s.ok()) return FromRocks(s, path_, "creating");
      std::unique_ptr<rocksdb::DB> db(raw);
      rocksdb::WriteOptions synced;
      synced.sync = true;
      s = db->Put(synced, handles[1] /* metadata */, kFormatKey,
                  std::to_string(kDatabaseFormatVersion));
      for (rocksdb::ColumnFamilyHandle* h : handles) {
        db->DestroyColumnFamilyHandle(h);
      }
      if (s.ok()) s = db->Close();
      if (!s.ok()) return FromRocks(s, path_, "creating");
    }
    std::vector<std::string> files;
    ios = fs.GetChildren(staging, io, &files, nullptr);
    if (!ios.ok()) return FromRocks(ios, path_, "creating");
    auto move_up = [&](const std::string& name) {
      return fs.RenameFile(staging + "/" + name, path_ + "/" + name, io,
                           nullptr);
    };
    std::unique_ptr<rocksdb::FSDirectory> dir;
    ios = fs.NewDirectory(path_, io, &dir, nullptr);
    for (const std::string& f : files) {
      if (!ios.ok()) break;
      if (f == "." || f == ".." || f == "CURRENT" || f == "LOCK") continue;
      ios = move_up(f);
    }
    if (ios.ok()) ios = dir->FsyncWithDirOptions(io, nullptr, {});
    if (ios.ok()) ios = move_up("CURRENT");  // the database exists from here
    if (ios.ok()) ios = dir->FsyncWithDirOptions(io, nullptr, {});
    if (!ios.ok()) return FromRocks(ios, path_, "creating");
    unlock.created = true;
    return Status();
  }();
}

Status RocksCache::OpenDb(bool read_only) {
  std::vector<std::string> names;
  std::error_code ec;
  if (fs::exists(fs::path(path_) / "CURRENT", ec)) {
    rocksdb::Status ls =
        rocksdb::DB::ListColumnFamilies(db_opts_, path_, &names);
    if (!ls.ok()) return FromRocks(ls, path_, "listing column families");
  }
  // Whether the per-model index existed before this open (a writer creates
  // it below when it is missing).
  const bool had_model_time =
      std::find(names.begin(), names.end(),
                std::string(kModelTimeColumnFamily)) != names.end();
  if (!read_only) {
    for (std::string_view required : RequiredFamilies()) {
      if (std::find(names.begin(), names.end(), std::string(required)) ==
          names.end()) {
        names.emplace_back(required);
      }
    }
  }

  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const std::string& name : names) {
    rocksdb::ColumnFamilyOptions cf;
    if (name == kMetaColumnFamily) {
      cf.merge_operator = shared_->add_operator;
      cf.write_buffer_size = 1u << 20;
      rocksdb::BlockBasedTableOptions meta_table;
      meta_table.block_cache = shared_->block_cache;  // not a private 8 MiB
      cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(meta_table));
    } else if (name == kTimeColumnFamily || name == kModelTimeColumnFamily) {
      cf = TimeIndexOptions();
    } else if (name == kOverflowColumnFamily) {
      cf = ModelFamilyOptions("", true);
    } else if (name.starts_with(kModelColumnFamilyPrefix)) {
      Result<std::string> model = ColumnFamilyNameToModel(name);
      cf = ModelFamilyOptions(model.ok() ? *model : name, false);
    }
    descs.emplace_back(name, cf);
  }

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s =
      read_only
          ? rocksdb::DB::OpenForReadOnly(db_opts_, path_, descs, &handles, &raw)
          : rocksdb::DB::Open(db_opts_, path_, descs, &handles, &raw);
  if (!s.ok()) {
    return FromRocks(s, path_, read_only ? "opening read-only" : "opening");
  }
  db_.reset(raw);
  read_only_ = read_only;

  std::vector<std::pair<std::string, rocksdb::ColumnFamilyHandle*>> models;
  for (size_t i = 0; i < handles.size(); ++i) {
    const std::string& name = descs[i].name;
    if (name == rocksdb::kDefaultColumnFamilyName) {
      db_->DestroyColumnFamilyHandle(handles[i]);  // the DB keeps its own
      default_cf_ = db_->DefaultColumnFamily();
    } else if (name == kMetaColumnFamily) {
      meta_cf_ = handles[i];
    } else if (name == kTimeColumnFamily) {
      time_cf_ = handles[i];
    } else if (name == kModelTimeColumnFamily) {
      model_time_cf_ = handles[i];
    } else if (name == kOverflowColumnFamily) {
      overflow_ = std::make_shared<Family>(db_.get(), handles[i], "", true);
    } else {
      models.emplace_back(name, handles[i]);
    }
  }
  auto fail = [this](Status st) {
    CloseDb(/*keep_lock=*/true);  // a reopen keeps the database (Reopen)
    return st;
  };
  if (meta_cf_ == nullptr || !overflow_) {
    return fail(
        DataLossError("database " + path_ + " lacks a required column family"));
  }

  std::vector<std::pair<std::string, std::string>> mappings;  // name, model
  {
    std::unique_lock<std::shared_mutex> lock(families_mu_);
    for (auto& [name, handle] : models) {
      Result<std::string> model = ColumnFamilyNameToModel(name);
      if (!model.ok()) {
        db_->DestroyColumnFamilyHandle(handle);  // not ours; leave it alone
        continue;
      }
      families_[*model] =
          std::make_shared<Family>(db_.get(), handle, *model, false);
      mappings.emplace_back(name, *model);
    }
  }
  // The compaction filter may read from here on (a primary only: an
  // inspection view never compacts).
  shared_->live_db.store(db_.get(), std::memory_order_release);
  // Keep the mapping in the metadata family (repairs it if missing).
  for (const auto& [name, model] : mappings) {
    if (read_only) break;
    const std::string meta_key = std::string(kCfMetaPrefix) + name;
    std::string mapped;
    if (db_->Get(rocksdb::ReadOptions(), meta_cf_, meta_key, &mapped).ok() &&
        mapped == model) {
      continue;
    }
    s = db_->Put(WriteOpts(), meta_cf_, meta_key, model);
    if (!s.ok()) return fail(WriteFailed(s, "recording a column family", true));
  }
  // A mapping without its column family: a flush that a kill or a failed
  // write interrupted after the drop.
  if (!read_only) {
    if (Status st = FinishInterruptedFlushes(); !st.ok()) return fail(st);
  }

  // Format marker.
  std::string format;
  s = db_->Get(rocksdb::ReadOptions(), meta_cf_, kFormatKey, &format);
  long version = 0;
  if (s.IsNotFound() && !read_only) {
    // A new database: its per-model index is complete (empty) from the
    // start. (A version-1 database always has the marker: it is written
    // when the database is created.)
    s = db_->Put(WriteOpts(), meta_cf_, kFormatKey,
                 std::to_string(kDatabaseFormatVersion));
    if (!s.ok()) {
      return fail(WriteFailed(s, "writing the format marker", true));
    }
    version = kDatabaseFormatVersion;
  } else if (s.IsNotFound()) {
    // Read-only, no marker: a creation that was killed (CreateDb makes a
    // database whole, but an llmcache before it made one in place and wrote
    // the marker last, before anything was stored), so empty, its per-model
    // index complete. Version 0 says so below.
  } else if (!s.ok()) {
    return fail(FromRocks(s, path_, "reading the format marker"));
  } else {
    const long v = std::strtol(format.c_str(), nullptr, 10);
    if (v <= 0) {
      return fail(DataLossError("database " + path_ +
                                " has an unreadable format marker '" + format +
                                "'"));
    }
    if (v > static_cast<long>(kDatabaseFormatVersion)) {
      return fail(FailedPreconditionError(
          "database " + path_ + " was written by a newer llmcache (format " +
          format + "; this build reads up to " +
          std::to_string(kDatabaseFormatVersion) + ")"));
    }
    version = v;
  }
  if (version > 0 && version < static_cast<long>(kNoTimeIndexFormatVersion) &&
      !read_only) {
    // The format markers of a conversion are synced writes (below).
    rocksdb::WriteOptions synced = WriteOpts();
    synced.sync = true;
    // Version 1 has no per-model index; a version-2 database whose per-model
    // index was lost (created empty above) has it no more. Either is built
    // from the time index.
    if (version < static_cast<long>(kModelTimeIndexFormatVersion) ||
        !had_model_time) {
      if (time_cf_ == nullptr && version == 1) {
        return fail(DataLossError("database " + path_ +
                                  " of format 1 lacks its time index"));
      }
      if (time_cf_ != nullptr) {
        if (version > 1) {
          // Marked version 1 first: a kill during the build leaves a
          // version-1 database, built again by the next open, not a
          // version-2 one whose (emptied) per-model index looks complete.
          s = db_->Put(synced, meta_cf_, kFormatKey, "1");
          if (!s.ok()) {
            return fail(WriteFailed(s, "writing the format marker", true));
          }
        }
        if (Status st = BuildModelTimeIndex(); !st.ok()) return fail(st);
      }
    }
    // The marker, synced, before the time index goes: a kill or a power
    // loss after it leaves version 3 beside the time index, which the next
    // open drops below, and which an older llmcache refuses. (Dropped
    // first, the drop, durable in the MANIFEST at once, could outlive an
    // unsynced marker.)
    s = db_->Put(synced, meta_cf_, kFormatKey,
                 std::to_string(kNoTimeIndexFormatVersion));
    if (!s.ok()) {
      return fail(WriteFailed(s, "writing the format marker", true));
    }
    version = kNoTimeIndexFormatVersion;
  }
  if (version >= static_cast<long>(kNoTimeIndexFormatVersion) && !read_only &&
      time_cf_ != nullptr) {
    // The time index of formats 1 and 2 (also the empty one an older
    // llmcache creates before it refuses version 3).
    s = db_->DropColumnFamily(time_cf_);
    if (!s.ok()) return fail(WriteFailed(s, "dropping the time index", true));
    db_->DestroyColumnFamilyHandle(time_cf_);
    time_cf_ = nullptr;
  }
  model_time_ready_ =
      model_time_cf_ != nullptr &&
      (version == 0 ||
       version >= static_cast<long>(kModelTimeIndexFormatVersion));
  if (!model_time_ready_ && time_cf_ == nullptr && version > 0) {
    return fail(DataLossError("database " + path_ +
                              " has neither of its creation-time indexes"));
  }

  // Last resolved model per model.
  {
    std::lock_guard<std::mutex> lock(resolved_mu_);
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), meta_cf_));
    for (it->Seek(kResolvedPrefix); it->Valid(); it->Next()) {
      std::string_view k = ToView(it->key());
      if (!k.starts_with(kResolvedPrefix)) break;
      k.remove_prefix(kResolvedPrefix.size());
      resolved_[std::string(k)] = it->value().ToString();
    }
    if (!it->status().ok()) {
      Status st = FromRocks(it->status(), path_, "reading metadata");
      it.reset();
      return fail(st);
    }
  }
  return Status();
}

namespace {

Status NotCompletelyCreated(const std::string& path) {
  return UnavailableError(
      "database " + path +
      " is not completely created (its creating process stopped early): any "
      "llmcache command that writes to it, or the service, completes it");
}

}  // namespace

Status RocksCache::OpenAsSecondary() {
  shared_ = std::make_shared<Shared>();
  shared_->block_cache = rocksdb::NewLRUCache(16u << 20);
  if (!env_) {
    // The secondary's own files (its info log) are private too.
    fs_ = NewPrivateFileSystem(nullptr);
    env_ = rocksdb::NewCompositeEnv(fs_);
  }
  rocksdb::DBOptions db_opts;
  db_opts.env = env_.get();
  db_opts.max_open_files = -1;  // required beside a live primary
  db_opts.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  // The secondary's directory holds only its info log; made here, as RocksDB
  // does not when it is given a logger.
  LLMCACHE_RETURN_IF_ERROR(MakePrivateDirectory(secondary_dir_));
  db_opts.info_log = NewInfoLog(secondary_dir_, db_opts.info_log_level);
  db_opts.keep_log_file_num = 1;

  std::error_code ec;
  if (!fs::exists(fs::path(path_) / "CURRENT", ec)) {
    Status dir = CheckDirectoryForNewDatabase(path_);
    if (dir.code() == StatusCode::kDataLoss) return dir;
    return NotFoundError("no llmcache database at " + path_);
  }
  std::vector<std::string> names;
  rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_opts, path_, &names);
  if (!s.ok()) return FromRocks(s, path_, "listing column families");
  if (names.size() == 1 && names[0] == rocksdb::kDefaultColumnFamilyName) {
    // An older llmcache's creation, killed before it made any column family
    // of its own (see OpenDb).
    return NotCompletelyCreated(path_);
  }
  if (std::find(names.begin(), names.end(), std::string(kMetaColumnFamily)) ==
      names.end()) {
    return FailedPreconditionError(path_ + " is not an llmcache database");
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const std::string& name : names) {
    rocksdb::ColumnFamilyOptions cf;
    if (name == kMetaColumnFamily) {
      cf.merge_operator = shared_->add_operator;
    } else if (name == kOverflowColumnFamily ||
               name.starts_with(kModelColumnFamilyPrefix) ||
               name == kTimeColumnFamily || name == kModelTimeColumnFamily) {
      cf = ModelFamilyOptions("", name == kOverflowColumnFamily);
      cf.compaction_filter_factory.reset();  // a secondary never compacts
    }
    descs.emplace_back(name, cf);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::OpenAsSecondary(db_opts, path_, secondary_dir_, descs,
                                   &handles, &raw);
  if (!s.ok()) return FromRocks(s, path_, "opening for inspection");
  db_.reset(raw);
  for (size_t i = 0; i < handles.size(); ++i) {
    const std::string& name = descs[i].name;
    if (name == kMetaColumnFamily) {
      meta_cf_ = handles[i];
    } else if (name == kTimeColumnFamily) {
      time_cf_ = handles[i];
    } else if (name == kModelTimeColumnFamily) {
      model_time_cf_ = handles[i];
    } else if (name == kOverflowColumnFamily) {
      overflow_ = std::make_shared<Family>(db_.get(), handles[i], "", true);
    } else if (Result<std::string> model = ColumnFamilyNameToModel(name);
               model.ok()) {
      families_[*model] =
          std::make_shared<Family>(db_.get(), handles[i], *model, false);
    } else {
      db_->DestroyColumnFamilyHandle(handles[i]);  // default or not ours
    }
  }
  default_cf_ = db_->DefaultColumnFamily();
  std::string format;
  s = db_->Get(rocksdb::ReadOptions(), meta_cf_, kFormatKey, &format);
  if (!s.ok() && !s.IsNotFound()) {
    CloseDb();
    return FromRocks(s, path_, "reading the format marker");
  }
  const long version = s.ok() ? std::strtol(format.c_str(), nullptr, 10) : 0;
  if (version > static_cast<long>(kDatabaseFormatVersion)) {
    CloseDb();
    return FailedPreconditionError("database " + path_ +
                                   " was written by a newer llmcache (format " +
                                   format + ")");
  }
  if (version == 0 && (overflow_ == nullptr || model_time_cf_ == nullptr)) {
    // No marker: a creation that was killed (see OpenDb), here before it
    // made every column family.
    CloseDb();
    return NotCompletelyCreated(path_);
  }
  // A table file RocksDB cannot open (a damaged properties block) is left
  // out of this view without an error: every read would then miss what it
  // holds. Refuse such a view (VerifyFiles still runs, to name the file).
  std::vector<FileProblem> unviewed =
      accept_damaged_view_ ? std::vector<FileProblem>()
                           : UnviewedDamagedFiles(/*whole=*/false);
  unviewed_.clear();
  if (!unviewed.empty()) {
    unviewed_ = "corrupt database " + path_ + ": table file " +
                unviewed[0].file + " cannot be opened (" + unviewed[0].problem +
                "), so what it holds is missing from every read; llmcache "
                "verify lists the damaged files";
  }
  // The owner writes version 2 only once the per-model index is complete.
  // Without a marker (version 0, see OpenDb) nothing is stored yet.
  model_time_ready_ =
      model_time_cf_ != nullptr &&
      (version == 0 ||
       version >= static_cast<long>(kModelTimeIndexFormatVersion));
  return Status();
}

Status RocksCache::CatchUp() {
  if (!secondary_) return Status();
  DbLock lock(this, /*exclusive=*/true);
  // Reopened, not caught up in place: column families created or dropped
  // by the owner become visible only to a reopened secondary, and
  // TryCatchUpWithPrimary died of SIGSEGV after an owner was killed during
  // a model flush (verify did, in the crash loop). A reopen costs the open
  // of an inspection (tens of milliseconds at 10M entries).
  CloseDb();
  LLMCACHE_RETURN_IF_ERROR(OpenAsSecondary());
  if (!unviewed_.empty()) return DataLossError(unviewed_);
  return Status();
}

// Provider prompt-cache and drift counts: per-model deltas like a hit's,
// written by the next maintenance round (an inspection view counts nothing).
void RocksCache::RecordProviderStats(std::string_view model,
                                     const ProviderStatsDelta& delta) {
  if (!secondary_) AddProviderStats(stats_, BaseModel(model), delta);
}

}  // namespace llmcache
