// RocksCache implementation. See rocks_cache.h for the concurrency design and
// llmcache/format.h for what is stored where.

#include "rocks_cache.h"

#include <rocksdb/cache.h>
#include <rocksdb/compaction_filter.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/options_util.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "cache_internal.h"
#include "llmcache/format.h"

namespace llmcache {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kFormatKey = "format";
constexpr std::string_view kCfMetaPrefix = "cf/";
constexpr std::string_view kResolvedPrefix = "resolved/";
constexpr std::string_view kStatPrefix = "stat/";
constexpr std::string_view kBypassStatPrefix = "stat/bypass/";
constexpr std::string_view kModelStatPrefix = "mstat/";
constexpr size_t kPurgeChunk = 4096;

int64_t SteadyMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string Le64(int64_t v) {
  std::string s;
  AppendLittleEndian64(static_cast<uint64_t>(v), &s);
  return s;
}

bool StartsWith(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

std::string_view ToView(const rocksdb::Slice& s) {
  return std::string_view(s.data(), s.size());
}

std::string ModelStatKey(ModelCounter c, std::string_view model) {
  std::string k(kModelStatPrefix);
  k += ModelCounterName(c);
  k += '/';
  k += model;
  return k;
}

std::string TimeKey(int64_t created_ms, std::string_view base_model,
                    const Digest& d) {
  std::string k;
  AppendBigEndian64(static_cast<uint64_t>(created_ms), &k);
  AppendModelPrefix(base_model, &k);
  k.append(reinterpret_cast<const char*>(d.data()), d.size());
  return k;
}

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
  const char* Name() const override { return "llmcache.Add64"; }
};

}  // namespace

Status FromRocks(const rocksdb::Status& s, std::string_view path,
                 std::string_view what) {
  if (s.ok()) return Status();
  std::string msg = std::string(what) + " (database " + std::string(path) +
                    "): " + s.ToString();
  const std::string text = s.ToString();
  auto has = [&](const char* needle) {
    return text.find(needle) != std::string::npos;
  };
  if (s.IsIOError() && has("lock") &&
      (has("Resource temporarily unavailable") || has("No locks available") ||
       has("already held"))) {
    return FailedPreconditionError(
        "database " + std::string(path) + " is locked by another process (" +
        text +
        "); stop the process that owns it, or open it read-only for "
        "inspection");
  }
  if (has("Permission denied") || has("Read-only file system")) {
    return PermissionDeniedError(msg);
  }
  if (has("No space left")) return ResourceExhaustedError(msg);
  if (s.IsCorruption()) return DataLossError("corrupt database: " + msg);
  if (s.IsNotFound()) return NotFoundError(msg);
  if (s.IsInvalidArgument()) {
    if (has("does not exist")) return NotFoundError(msg);
    return InvalidArgumentError(msg);
  }
  if (s.IsNotSupported()) return UnimplementedError(msg);
  if (s.IsIOError() || s.IsBusy() || s.IsTryAgain() || s.IsTimedOut() ||
      s.IsIncomplete() || s.IsShutdownInProgress()) {
    return UnavailableError(msg);
  }
  return InternalError(msg);
}

// A column family that holds entries: one model's own, or the overflow one.
struct RocksCache::Family {
  Family(rocksdb::DB* d, rocksdb::ColumnFamilyHandle* h, std::string model,
         bool is_overflow)
      : db(d), handle(h), base_model(std::move(model)), overflow(is_overflow) {}
  ~Family() {
    if (db != nullptr && handle != nullptr) {
      db->DestroyColumnFamilyHandle(handle);
    }
  }
  rocksdb::DB* const db;
  rocksdb::ColumnFamilyHandle* const handle;
  const std::string base_model;  // empty for the overflow family
  const bool overflow;
  std::atomic<bool> dropped{false};
};

// Drops expired entries (and expired time-index records) during flushes and
// compactions, and counts what it drops against the model's statistics.
class RocksCache::TtlFilterFactory final
    : public rocksdb::CompactionFilterFactory {
 public:
  enum class Kind { kModel, kOverflow, kIndex };
  TtlFilterFactory(const Clock* clock, StatsCollector* stats, Kind kind,
                   std::string model)
      : clock_(clock), stats_(stats), kind_(kind), model_(std::move(model)) {}

  bool ShouldFilterTableFileCreation(
      rocksdb::TableFileCreationReason reason) const override {
    return reason == rocksdb::TableFileCreationReason::kCompaction ||
           reason == rocksdb::TableFileCreationReason::kFlush;
  }

  std::unique_ptr<rocksdb::CompactionFilter> CreateCompactionFilter(
      const rocksdb::CompactionFilter::Context&) override {
    return std::make_unique<TtlFilter>(this, clock_->NowMillis());
  }

  const char* Name() const override { return "llmcache.TtlFilterFactory"; }

 private:
  class TtlFilter final : public rocksdb::CompactionFilter {
   public:
    TtlFilter(const TtlFilterFactory* f, int64_t now) : f_(f), now_(now) {}
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
          ModelCounters& m = f_->stats_->ForModel(model);
          m.Add(ModelCounter::kEntries, -1);
          m.Add(ModelCounter::kBytes, -static_cast<int64_t>(value.size()));
        }
        return true;
      } catch (...) {
        return false;  // never throw into RocksDB
      }
    }
    const char* Name() const override { return "llmcache.TtlFilter"; }

   private:
    const TtlFilterFactory* const f_;
    const int64_t now_;
  };

  const Clock* const clock_;
  StatsCollector* const stats_;  // null in inspection mode
  const Kind kind_;
  const std::string model_;
};

// Resources shared by every column family.
struct RocksCache::Shared {
  std::shared_ptr<rocksdb::Cache> block_cache;
  std::shared_ptr<rocksdb::WriteBufferManager> write_buffers;
  std::shared_ptr<rocksdb::MergeOperator> add_operator =
      std::make_shared<AddOperator>();
  std::shared_ptr<const rocksdb::FilterPolicy> bloom{
      rocksdb::NewBloomFilterPolicy(10)};
};

RocksCache::RocksCache(const std::string& path, bool secondary)
    : path_(path), secondary_(secondary) {}

RocksCache::~RocksCache() {
  {
    std::lock_guard<std::mutex> lock(maintenance_mu_);
    stopping_ = true;
  }
  maintenance_cv_.notify_all();
  if (maintenance_thread_.joinable()) maintenance_thread_.join();
  if (db_ && !secondary_) {
    (void)WriteStatsDelta();  // best effort: a failure loses one interval
  }
  CloseDb();
  if (remove_secondary_dir_) {
    std::error_code ec;
    fs::remove_all(secondary_dir_, ec);
  }
}

void RocksCache::CloseDb() {
  {
    std::unique_lock<std::shared_mutex> lock(families_mu_);
    families_.clear();
    overflow_.reset();
  }
  if (!db_) return;
  for (rocksdb::ColumnFamilyHandle* h : {meta_cf_, time_cf_}) {
    if (h != nullptr) db_->DestroyColumnFamilyHandle(h);
  }
  meta_cf_ = time_cf_ = nullptr;
  default_cf_ = nullptr;  // owned by the DB
  (void)db_->Close();
  db_.reset();
}

rocksdb::ColumnFamilyOptions RocksCache::ModelFamilyOptions(
    std::string_view model, bool overflow) const {
  rocksdb::ColumnFamilyOptions cf;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = shared_->block_cache;
  t.filter_policy = shared_->bloom;
  t.whole_key_filtering = true;
  t.cache_index_and_filter_blocks = true;
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  t.format_version = 5;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  cf.write_buffer_size =
      std::clamp<size_t>(options_.write_buffer_bytes / 4, 1u << 20, 32u << 20);
  cf.compression = rocksdb::kLZ4Compression;
  cf.bottommost_compression = rocksdb::kZSTD;
  cf.level_compaction_dynamic_level_bytes = true;
  cf.periodic_compaction_seconds = options_.periodic_compaction_seconds;
  cf.compaction_filter_factory = std::make_shared<TtlFilterFactory>(
      clock_, secondary_ ? nullptr : const_cast<StatsCollector*>(&stats_),
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

  // The directory first, so that errors name the real cause.
  std::error_code ec;
  const bool exists = fs::exists(fs::path(path_) / "CURRENT", ec);
  if (!exists) {
    if (!options.create_if_missing) {
      return NotFoundError("no llmcache database at " + path_ +
                           " (and create_if_missing is off)");
    }
    fs::create_directories(path_, ec);
    if (ec) {
      const std::string msg =
          "cannot create database directory " + path_ + ": " + ec.message();
      if (ec == std::errc::permission_denied ||
          ec == std::errc::read_only_file_system) {
        return PermissionDeniedError(msg);
      }
      return UnavailableError(msg);
    }
  }
  if (access(path_.c_str(), W_OK) != 0) {
    return PermissionDeniedError("database directory " + path_ +
                                 " is not writable: " + std::strerror(errno));
  }

  shared_ = std::make_shared<Shared>();
  shared_->block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  shared_->write_buffers = std::make_shared<rocksdb::WriteBufferManager>(
      options.write_buffer_bytes, shared_->block_cache);

  rocksdb::DBOptions db_opts;
  db_opts.create_if_missing = options.create_if_missing;
  db_opts.create_missing_column_families = true;
  db_opts.write_buffer_manager = shared_->write_buffers;
  db_opts.max_total_wal_size = 256u << 20;
  db_opts.max_background_jobs = 2;
  db_opts.keep_log_file_num = 3;
  db_opts.max_log_file_size = 4u << 20;
  db_opts.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;

  std::vector<std::string> names;
  if (exists) {
    rocksdb::Status ls =
        rocksdb::DB::ListColumnFamilies(db_opts, path_, &names);
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
  for (std::string_view required :
       {std::string_view(rocksdb::kDefaultColumnFamilyName), kMetaColumnFamily,
        kTimeColumnFamily, kOverflowColumnFamily}) {
    if (std::find(names.begin(), names.end(), std::string(required)) ==
        names.end()) {
      names.emplace_back(required);
    }
  }

  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const std::string& name : names) {
    rocksdb::ColumnFamilyOptions cf;
    if (name == kMetaColumnFamily) {
      cf.merge_operator = shared_->add_operator;
      cf.write_buffer_size = 1u << 20;
    } else if (name == kTimeColumnFamily) {
      cf = ModelFamilyOptions("", false);
      cf.compaction_filter_factory = std::make_shared<TtlFilterFactory>(
          clock_, nullptr, TtlFilterFactory::Kind::kIndex, "");
    } else if (name == kOverflowColumnFamily) {
      cf = ModelFamilyOptions("", true);
    } else if (StartsWith(name, kModelColumnFamilyPrefix)) {
      Result<std::string> model = ColumnFamilyNameToModel(name);
      cf = ModelFamilyOptions(model.ok() ? *model : name, false);
    }
    descs.emplace_back(name, cf);
  }

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_opts, path_, descs, &handles, &raw);
  if (!s.ok()) return FromRocks(s, path_, "opening");
  db_.reset(raw);

  std::vector<std::pair<std::string, rocksdb::ColumnFamilyHandle*>> models;
  for (size_t i = 0; i < handles.size(); ++i) {
    const std::string& name = descs[i].name;
    if (name == rocksdb::kDefaultColumnFamilyName) {
      default_cf_ = handles[i];
      db_->DestroyColumnFamilyHandle(handles[i]);  // the DB keeps its own
      default_cf_ = db_->DefaultColumnFamily();
    } else if (name == kMetaColumnFamily) {
      meta_cf_ = handles[i];
    } else if (name == kTimeColumnFamily) {
      time_cf_ = handles[i];
    } else if (name == kOverflowColumnFamily) {
      overflow_ = std::make_shared<Family>(db_.get(), handles[i], "", true);
    } else {
      models.emplace_back(name, handles[i]);
    }
  }

  for (auto& [name, handle] : models) {
    Result<std::string> model = ColumnFamilyNameToModel(name);
    if (!model.ok()) {
      db_->DestroyColumnFamilyHandle(handle);  // not ours; leave it alone
      continue;
    }
    // Keep the mapping in the metadata family (repairs it if missing).
    std::string mapped;
    const std::string meta_key = std::string(kCfMetaPrefix) + name;
    if (!db_->Get(rocksdb::ReadOptions(), meta_cf_, meta_key, &mapped).ok() ||
        mapped != *model) {
      (void)db_->Put(WriteOpts(), meta_cf_, meta_key, *model);
    }
    families_[*model] =
        std::make_shared<Family>(db_.get(), handle, *model, false);
  }

  // Format marker.
  std::string format;
  s = db_->Get(rocksdb::ReadOptions(), meta_cf_, kFormatKey, &format);
  if (s.IsNotFound()) {
    s = db_->Put(WriteOpts(), meta_cf_, kFormatKey,
                 std::to_string(kDatabaseFormatVersion));
    if (!s.ok()) return FromRocks(s, path_, "writing the format marker");
  } else if (!s.ok()) {
    return FromRocks(s, path_, "reading the format marker");
  } else {
    const long v = std::strtol(format.c_str(), nullptr, 10);
    if (v <= 0) {
      return DataLossError("database " + path_ +
                           " has an unreadable format marker '" + format + "'");
    }
    if (v > static_cast<long>(kDatabaseFormatVersion)) {
      return FailedPreconditionError(
          "database " + path_ + " was written by a newer llmcache (format " +
          format + "; this build reads up to " +
          std::to_string(kDatabaseFormatVersion) + ")");
    }
  }

  // Last resolved model per model.
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), meta_cf_));
    for (it->Seek(kResolvedPrefix); it->Valid(); it->Next()) {
      std::string_view k = ToView(it->key());
      if (!StartsWith(k, kResolvedPrefix)) break;
      k.remove_prefix(kResolvedPrefix.size());
      resolved_[std::string(k)] = it->value().ToString();
    }
    if (!it->status().ok()) {
      return FromRocks(it->status(), path_, "reading metadata");
    }
  }

  if (options.memory_tier_bytes > 0) {
    tier_ = std::make_unique<MemoryTier>(options.memory_tier_bytes);
  }
  if (options.maintenance_interval_ms > 0) {
    maintenance_thread_ = std::thread([this] { MaintenanceLoop(); });
  }
  return Status();
}

Status RocksCache::OpenAsSecondary() {
  shared_ = std::make_shared<Shared>();
  shared_->block_cache = rocksdb::NewLRUCache(16u << 20);
  rocksdb::DBOptions db_opts;
  db_opts.max_open_files = -1;  // required beside a live primary
  db_opts.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  db_opts.keep_log_file_num = 1;

  std::error_code ec;
  if (!fs::exists(fs::path(path_) / "CURRENT", ec)) {
    return NotFoundError("no llmcache database at " + path_);
  }
  std::vector<std::string> names;
  rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_opts, path_, &names);
  if (!s.ok()) return FromRocks(s, path_, "listing column families");
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
               StartsWith(name, kModelColumnFamilyPrefix) ||
               name == kTimeColumnFamily) {
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
  known_cf_names_ = names;
  for (size_t i = 0; i < handles.size(); ++i) {
    const std::string& name = descs[i].name;
    if (name == kMetaColumnFamily) {
      meta_cf_ = handles[i];
    } else if (name == kTimeColumnFamily) {
      time_cf_ = handles[i];
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
  if (s.ok() && std::strtol(format.c_str(), nullptr, 10) >
                    static_cast<long>(kDatabaseFormatVersion)) {
    return FailedPreconditionError("database " + path_ +
                                   " was written by a newer llmcache (format " +
                                   format + ")");
  }
  return Status();
}

Status RocksCache::CatchUp() {
  if (!secondary_) return Status();
  std::unique_lock<FenceMutex> fence(write_fence_);
  std::vector<std::string> names;
  rocksdb::DBOptions probe;
  rocksdb::Status s = rocksdb::DB::ListColumnFamilies(probe, path_, &names);
  if (!s.ok()) return FromRocks(s, path_, "listing column families");
  std::vector<std::string> a = names, b = known_cf_names_;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  if (a != b) {
    // Column families created or dropped by the owner become visible only
    // to a reopened secondary.
    CloseDb();
    return OpenAsSecondary();
  }
  return FromRocks(db_->TryCatchUpWithPrimary(), path_,
                   "catching up with the owner");
}

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
  const std::string name = ModelToColumnFamilyName(base_model);
  rocksdb::ColumnFamilyHandle* handle = nullptr;
  rocksdb::Status s = db_->CreateColumnFamily(
      ModelFamilyOptions(base_model, false), name, &handle);
  if (!s.ok()) {
    return FromRocks(
        s, path_, "creating the column family of " + std::string(base_model));
  }
  s = db_->Put(WriteOpts(), meta_cf_, std::string(kCfMetaPrefix) + name,
               std::string(base_model));
  auto family = std::make_shared<Family>(db_.get(), handle,
                                         std::string(base_model), false);
  families_[std::string(base_model)] = family;
  if (!s.ok()) return FromRocks(s, path_, "recording a column family");
  return family;
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
  std::shared_lock<FenceMutex> inspect_lock(write_fence_, std::defer_lock);
  if (secondary_) inspect_lock.lock();  // CatchUp may reopen the database

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
  LLMCACHE_RETURN_IF_ERROR(MutationAllowed());
  if (options.ttl_ms && *options.ttl_ms < 0) {
    return InvalidArgumentError("ttl_ms must be >= 0");
  }
  auto entry = std::make_shared<Entry>();
  entry->meta = internal::MakeEntryMeta(key, options, options_.default_ttl_ms,
                                        clock_->NowMillis());
  std::string value;
  LLMCACHE_RETURN_IF_ERROR(EncodeEntry(entry->meta, body, &value));
  entry->body.assign(body);

  std::shared_lock<FenceMutex> fence(write_fence_);
  Result<std::shared_ptr<Family>> family = FamilyForInsert(key.base_model);
  if (!family.ok()) {
    stats_.Add(Counter::kStoreErrors, 1);
    return family.status();
  }
  const Family& f = **family;
  const std::string k = EntryKey(f, key.base_model, key.digest);

  // The previous version, if any: for exact entry counts and to retire its
  // time-index record.
  rocksdb::PinnableSlice prev;
  int64_t prev_created = 0, prev_expires = 0;
  bool had_prev = false;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), f.handle, k, &prev);
  if (s.ok()) {
    had_prev = PeekEntryTimes(ToView(prev), &prev_created, &prev_expires);
  } else if (!s.IsNotFound()) {
    stats_.Add(Counter::kStoreErrors, 1);
    return FromRocks(s, path_, "reading before insert");
  }

  rocksdb::WriteBatch batch;
  batch.Put(f.handle, k, value);
  const std::string time_key =
      TimeKey(entry->meta.created_ms, key.base_model, key.digest);
  batch.Put(time_cf_, time_key, Le64(entry->meta.expires_ms));
  if (had_prev && prev_created != entry->meta.created_ms) {
    batch.Delete(time_cf_, TimeKey(prev_created, key.base_model, key.digest));
  }
  // Entry counts travel in the same batch as the entry: exact after a crash.
  if (!had_prev) {
    batch.Merge(meta_cf_, ModelStatKey(ModelCounter::kEntries, key.base_model),
                Le64(1));
  }
  batch.Merge(meta_cf_, ModelStatKey(ModelCounter::kBytes, key.base_model),
              Le64(static_cast<int64_t>(value.size()) -
                   static_cast<int64_t>(had_prev ? prev.size() : 0)));
  s = db_->Write(WriteOpts(), &batch);
  if (!s.ok()) {
    stats_.Add(Counter::kStoreErrors, 1);
    return FromRocks(s, path_, "writing an entry");
  }
  stats_.Add(Counter::kInserts, 1);
  if (tier_) {
    if (had_prev) epoch_.fetch_add(1, std::memory_order_acq_rel);
    tier_->Put(key.digest, std::move(entry));
  }
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
  (void)db_->Put(WriteOpts(), meta_cf_,
                 std::string(kResolvedPrefix) + std::string(base_model),
                 std::string(resolved));
}

void RocksCache::RecordBypass(BypassReason reason) {
  if (!secondary_) stats_.AddBypass(reason);
}

Result<uint64_t> RocksCache::FlushModel(std::string_view model) {
  LLMCACHE_RETURN_IF_ERROR(MutationAllowed());
  const std::string base(BaseModel(model));
  std::string begin, end;
  AppendModelPrefix(base, &begin);
  end = begin + std::string(kDigestSize + 1, '\xff');
  std::shared_ptr<Family> family;
  uint64_t known = 0;
  {
    std::unique_lock<FenceMutex> fence(write_fence_);
    {
      std::unique_lock<std::shared_mutex> lock(families_mu_);
      auto it = families_.find(base);
      if (it != families_.end()) {
        family = it->second;
        families_.erase(it);
      }
    }
    rocksdb::WriteBatch batch;
    if (family) {
      rocksdb::Status s = db_->DropColumnFamily(family->handle);
      if (!s.ok()) {
        std::unique_lock<std::shared_mutex> lock(families_mu_);
        families_[base] = family;
        return FromRocks(s, path_, "dropping the column family of " + base);
      }
      family->dropped.store(true, std::memory_order_release);
      batch.Delete(meta_cf_,
                   std::string(kCfMetaPrefix) + ModelToColumnFamilyName(base));
    }
    // Entries the model may have in the overflow family.
    batch.DeleteRange(overflow_->handle, begin, end);

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
      if (!s.ok()) return FromRocks(s, path_, "flushing " + base);
    }
    epoch_.fetch_add(1, std::memory_order_acq_rel);
    if (tier_) {
      tier_->EraseIf([&](const Digest&, const Entry& e) {
        return BaseModel(e.meta.model) == base;
      });
    }
    stats_.Add(Counter::kFlushes, 1);
  }
  // Give the overflow range's space back (outside the fence: slow).
  rocksdb::Slice b(begin), e(end);
  rocksdb::CompactRangeOptions cro;
  (void)db_->CompactRange(cro, overflow_->handle, &b, &e);
  return known;
}

Status RocksCache::FlushAll() {
  LLMCACHE_RETURN_IF_ERROR(MutationAllowed());
  std::unique_lock<FenceMutex> fence(write_fence_);
  std::vector<std::shared_ptr<Family>> dropped;
  {
    std::unique_lock<std::shared_mutex> lock(families_mu_);
    for (auto& [model, f] : families_) dropped.push_back(f);
    dropped.push_back(overflow_);
    families_.clear();
  }
  for (const std::shared_ptr<Family>& f : dropped) {
    rocksdb::Status s = db_->DropColumnFamily(f->handle);
    if (!s.ok()) return FromRocks(s, path_, "dropping column families");
    f->dropped.store(true, std::memory_order_release);
  }
  // A fresh overflow family and a fresh time index.
  rocksdb::ColumnFamilyHandle* handle = nullptr;
  rocksdb::Status s =
      db_->CreateColumnFamily(ModelFamilyOptions("", true),
                              std::string(kOverflowColumnFamily), &handle);
  if (!s.ok()) return FromRocks(s, path_, "recreating the overflow family");
  {
    std::unique_lock<std::shared_mutex> lock(families_mu_);
    overflow_ = std::make_shared<Family>(db_.get(), handle, "", true);
  }
  rocksdb::ColumnFamilyOptions time_opts = ModelFamilyOptions("", false);
  time_opts.compaction_filter_factory = std::make_shared<TtlFilterFactory>(
      clock_, nullptr, TtlFilterFactory::Kind::kIndex, "");
  s = db_->DropColumnFamily(time_cf_);
  if (!s.ok()) return FromRocks(s, path_, "dropping the time index");
  db_->DestroyColumnFamilyHandle(time_cf_);
  time_cf_ = nullptr;
  s = db_->CreateColumnFamily(time_opts, std::string(kTimeColumnFamily),
                              &time_cf_);
  if (!s.ok()) return FromRocks(s, path_, "recreating the time index");

  // Metadata: mappings and entry counters go.
  {
    std::lock_guard<std::mutex> stats_lock(stats_write_mu_);
    rocksdb::WriteBatch batch;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), meta_cf_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::string_view k = ToView(it->key());
      if (StartsWith(k, kCfMetaPrefix) ||
          StartsWith(k, std::string(kModelStatPrefix) + "entries/") ||
          StartsWith(k, std::string(kModelStatPrefix) + "bytes/")) {
        batch.Delete(meta_cf_, it->key());
      }
    }
    stats_.ResetAllEntryCounts();
    s = db_->Write(WriteOpts(), &batch);
    if (!s.ok()) return FromRocks(s, path_, "clearing metadata");
  }
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  if (tier_) tier_->Clear();
  stats_.Add(Counter::kFlushes, 1);
  return Status();
}

Status RocksCache::DeleteEntriesLocked(const std::vector<Doomed>& doomed) {
  if (doomed.empty()) return Status();
  rocksdb::WriteBatch batch;
  for (const Doomed& d : doomed) {
    if (d.family && !d.family->dropped.load()) {
      batch.Delete(d.family->handle, d.key);
    }
    if (!d.time_key.empty()) batch.Delete(time_cf_, d.time_key);
    if (d.bytes == 0) continue;  // an index record only
    batch.Merge(meta_cf_, ModelStatKey(ModelCounter::kEntries, d.base_model),
                Le64(-1));
    batch.Merge(meta_cf_, ModelStatKey(ModelCounter::kBytes, d.base_model),
                Le64(-static_cast<int64_t>(d.bytes)));
  }
  rocksdb::Status s = db_->Write(WriteOpts(), &batch);
  if (!s.ok()) return FromRocks(s, path_, "deleting entries");
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  if (tier_) {
    for (const Doomed& d : doomed) tier_->Erase(d.digest);
  }
  return Status();
}

Result<bool> RocksCache::PurgeKey(const Digest& digest) {
  LLMCACHE_RETURN_IF_ERROR(MutationAllowed());
  std::vector<Doomed> doomed;
  for (const std::shared_ptr<Family>& f : AllFamilies()) {
    auto consider = [&](const std::string& key, std::string_view model,
                        std::string_view value) {
      int64_t created = 0, expires = 0;
      Doomed d{f, key, "", digest, std::string(model), value.size()};
      if (PeekEntryTimes(value, &created, &expires)) {
        d.time_key = TimeKey(created, model, digest);
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
  if (doomed.empty()) return false;
  std::unique_lock<FenceMutex> fence(write_fence_);
  LLMCACHE_RETURN_IF_ERROR(DeleteEntriesLocked(doomed));
  stats_.Add(Counter::kPurged, static_cast<int64_t>(doomed.size()));
  return true;
}

Result<uint64_t> RocksCache::PurgeNamespace(std::string_view ns) {
  LLMCACHE_RETURN_IF_ERROR(MutationAllowed());
  std::vector<Doomed> doomed;
  uint64_t removed = 0;
  auto flush = [&]() -> Status {
    std::unique_lock<FenceMutex> fence(write_fence_);
    LLMCACHE_RETURN_IF_ERROR(DeleteEntriesLocked(doomed));
    removed += doomed.size();
    stats_.Add(Counter::kPurged, static_cast<int64_t>(doomed.size()));
    doomed.clear();
    return Status();
  };
  Status s = ForEachEntry(
      std::nullopt,
      [&](const EntryView& v) {
        if (v.entry.meta.ns != ns) return true;
        std::shared_ptr<Family> f = FamilyFor(v.base_model);
        if (!f) return true;
        doomed.push_back(
            Doomed{f, EntryKey(*f, v.base_model, v.digest),
                   TimeKey(v.entry.meta.created_ms, v.base_model, v.digest),
                   v.digest, std::string(v.base_model), v.stored_bytes});
        return true;
      },
      [](std::string_view, const Status&) {});
  LLMCACHE_RETURN_IF_ERROR(s);
  for (size_t i = 0; i < doomed.size(); i += kPurgeChunk) {
    // Delete in chunks so that inserts are not fenced out for long.
    std::vector<Doomed> chunk(
        doomed.begin() + static_cast<std::ptrdiff_t>(i),
        doomed.begin() + static_cast<std::ptrdiff_t>(
                             std::min(doomed.size(), i + kPurgeChunk)));
    std::swap(chunk, doomed);
    LLMCACHE_RETURN_IF_ERROR(flush());
    std::swap(chunk, doomed);
  }
  return removed;
}

Status RocksCache::WalkTimeIndex(
    const std::function<bool(int64_t, std::string_view, const Digest&, int64_t,
                             std::string_view)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), time_cf_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view k = ToView(it->key());
    if (k.size() < 8 + 1 + kDigestSize || it->value().size() != 8) continue;
    const int64_t created = static_cast<int64_t>(ReadBigEndian64(k.data()));
    std::string_view rest = k.substr(8);
    std::string_view model;
    if (!ConsumeModelPrefix(&rest, &model) || rest.size() != kDigestSize) {
      continue;
    }
    Digest d;
    std::memcpy(d.data(), rest.data(), kDigestSize);
    const int64_t expires =
        static_cast<int64_t>(ReadLittleEndian64(it->value().data()));
    if (!fn(created, model, d, expires, k)) break;
  }
  return FromRocks(it->status(), path_, "walking the time index");
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
  return std::optional<Doomed>(doomed);
}

Result<uint64_t> RocksCache::PurgeIndexed(
    const std::function<bool(int64_t, int64_t, bool*)>& pred) {
  LLMCACHE_RETURN_IF_ERROR(MutationAllowed());
  uint64_t removed = 0;
  std::vector<Doomed> doomed;
  Status inner;
  auto flush = [&]() -> Status {
    std::unique_lock<FenceMutex> fence(write_fence_);
    LLMCACHE_RETURN_IF_ERROR(DeleteEntriesLocked(doomed));
    for (const Doomed& d : doomed) removed += d.bytes > 0 ? 1 : 0;
    doomed.clear();
    return Status();
  };
  Status s = WalkTimeIndex([&](int64_t created, std::string_view model,
                               const Digest& d, int64_t expires,
                               std::string_view index_key) {
    bool stop = false;
    if (!pred(created, expires, &stop)) return !stop;
    Result<std::optional<Doomed>> r =
        ResolveIndexed(created, model, d, index_key);
    if (!r.ok()) {
      inner = r.status();
      return false;
    }
    if (*r) doomed.push_back(std::move(**r));
    if (doomed.size() >= kPurgeChunk) {
      inner = flush();
      if (!inner.ok()) return false;
    }
    return true;
  });
  LLMCACHE_RETURN_IF_ERROR(s);
  LLMCACHE_RETURN_IF_ERROR(inner);
  LLMCACHE_RETURN_IF_ERROR(flush());
  stats_.Add(Counter::kPurged, static_cast<int64_t>(removed));
  return removed;
}

Result<uint64_t> RocksCache::PurgeExpired() {
  const int64_t now = clock_->NowMillis();
  return PurgeIndexed([now](int64_t, int64_t expires, bool*) {
    return expires != 0 && expires <= now;
  });
}

Result<uint64_t> RocksCache::PurgeOlderThan(int64_t age_ms) {
  const int64_t cutoff = clock_->NowMillis() - age_ms;
  return PurgeIndexed([cutoff](int64_t created, int64_t, bool* stop) {
    if (created >= cutoff) {
      *stop = true;  // the index is in creation order
      return false;
    }
    return true;
  });
}

Result<std::shared_ptr<const Entry>> RocksCache::Find(const Digest& digest) {
  std::shared_lock<FenceMutex> inspect_lock(write_fence_, std::defer_lock);
  if (secondary_) inspect_lock.lock();
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
  std::shared_lock<FenceMutex> inspect_lock(write_fence_, std::defer_lock);
  if (secondary_) inspect_lock.lock();
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

Status RocksCache::LoadPersistedStats(CacheStats* stats) {
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), meta_cf_));
  StatsDelta d;
  for (std::string_view prefix : {kModelStatPrefix, kStatPrefix}) {
    for (it->Seek(prefix); it->Valid(); it->Next()) {
      std::string_view k = ToView(it->key());
      if (!StartsWith(k, prefix)) break;
      if (it->value().size() != 8) continue;
      const int64_t v =
          static_cast<int64_t>(ReadLittleEndian64(it->value().data()));
      if (StartsWith(k, kBypassStatPrefix)) {
        k.remove_prefix(kBypassStatPrefix.size());
        if (auto r = BypassReasonFromName(k)) {
          d.bypasses[static_cast<size_t>(*r)] += v;
        }
      } else if (StartsWith(k, kStatPrefix)) {
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
  }
  LLMCACHE_RETURN_IF_ERROR(FromRocks(it->status(), path_, "reading stats"));
  internal::AddDelta(d, stats);
  return Status();
}

Status RocksCache::WriteStatsDelta() {
  if (secondary_) return Status();
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
    for (const auto& [model, values] : d.models) {
      ModelCounters& m = stats_.ForModel(model);
      for (int c = 0; c < static_cast<int>(ModelCounter::kCount); ++c) {
        m.Add(static_cast<ModelCounter>(c), values[c]);
      }
    }
    return FromRocks(s, path_, "writing statistics");
  }
  return Status();
}

Result<uint64_t> RocksCache::DiskBytes() {
  uint64_t sst = 0;
  std::vector<rocksdb::ColumnFamilyHandle*> handles = {meta_cf_, time_cf_};
  for (const auto& f : AllFamilies()) handles.push_back(f->handle);
  for (rocksdb::ColumnFamilyHandle* h : handles) {
    uint64_t v = 0;
    if (db_->GetIntProperty(h, "rocksdb.total-sst-files-size", &v)) sst += v;
  }
  uint64_t wal = 0;
  rocksdb::VectorLogPtr files;
  if (!secondary_ && db_->GetSortedWalFiles(files).ok()) {
    for (const auto& f : files) wal += f->SizeFileBytes();
  }
  return sst + wal;
}

Status RocksCache::EnforceDiskBudget() {
  if (options_.max_disk_bytes == 0 || secondary_) return Status();
  LLMCACHE_ASSIGN_OR_RETURN(uint64_t usage, DiskBytes());
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
    uint64_t freed = 0, evicted = 0;
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
            evicted += (*r)->bytes > 0 ? 1 : 0;
            doomed.push_back(std::move(**r));
          }
          return freed < to_free;
        }));
    LLMCACHE_RETURN_IF_ERROR(inner);
    if (doomed.empty()) break;
    {
      std::unique_lock<FenceMutex> fence(write_fence_);
      LLMCACHE_RETURN_IF_ERROR(DeleteEntriesLocked(doomed));
    }
    stats_.Add(Counter::kEvictions, static_cast<int64_t>(evicted));
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
  last_nudge_steady_ms_ = now;
  const std::string value =
      std::to_string(options_.periodic_compaction_seconds);
  std::vector<rocksdb::ColumnFamilyHandle*> handles = {time_cf_};
  auto families = AllFamilies();
  for (const auto& f : families) handles.push_back(f->handle);
  for (rocksdb::ColumnFamilyHandle* h : handles) {
    (void)db_->SetOptions(h, {{"periodic_compaction_seconds", value}});
  }
}

Status RocksCache::RunMaintenance() {
  if (secondary_) return Status();
  std::lock_guard<std::mutex> lock(maintenance_run_mu_);
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

Status RocksCache::Compact() {
  LLMCACHE_RETURN_IF_ERROR(MutationAllowed());
  rocksdb::FlushOptions fo;
  std::vector<std::shared_ptr<Family>> families;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  {
    std::shared_lock<FenceMutex> fence(write_fence_);
    families = AllFamilies();
    handles = {time_cf_, meta_cf_};
  }
  for (const auto& f : families) handles.push_back(f->handle);
  rocksdb::CompactRangeOptions cro;
  cro.bottommost_level_compaction =
      rocksdb::BottommostLevelCompaction::kForceOptimized;
  for (size_t i = 0; i < handles.size(); ++i) {
    if (i >= 2 && families[i - 2]->dropped.load()) continue;
    rocksdb::Status s = db_->Flush(fo, handles[i]);
    if (s.ok()) s = db_->CompactRange(cro, handles[i], nullptr, nullptr);
    if (!s.ok() && !(i >= 2 && families[i - 2]->dropped.load())) {
      return FromRocks(s, path_, "compacting");
    }
  }
  return Status();
}

Result<CacheStats> RocksCache::GetStats() {
  CacheStats stats;
  std::shared_lock<FenceMutex> inspect_lock(write_fence_, std::defer_lock);
  if (secondary_) inspect_lock.lock();
  {
    std::lock_guard<std::mutex> lock(stats_write_mu_);
    LLMCACHE_RETURN_IF_ERROR(LoadPersistedStats(&stats));
    if (!secondary_) internal::AddDelta(stats_.Peek(), &stats);
  }
  {
    std::shared_lock<std::shared_mutex> lock(families_mu_);
    for (const auto& [model, f] : families_) {
      internal::ModelEntry(&stats, model).own_column_family = true;
    }
  }
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), meta_cf_));
    for (it->Seek(kResolvedPrefix); it->Valid(); it->Next()) {
      std::string_view k = ToView(it->key());
      if (!StartsWith(k, kResolvedPrefix)) break;
      k.remove_prefix(kResolvedPrefix.size());
      for (ModelStats& m : stats.models) {
        if (m.model == k) m.last_resolved_model = it->value().ToString();
      }
    }
  }
  internal::FinishStats(&stats);
  LLMCACHE_ASSIGN_OR_RETURN(stats.disk_bytes, DiskBytes());
  if (tier_) {
    stats.memory_tier_entries = tier_->size();
    stats.memory_tier_bytes = tier_->bytes();
  }
  return stats;
}

Status RocksCache::FlushMemtablesForTest() {
  rocksdb::FlushOptions fo;
  std::vector<rocksdb::ColumnFamilyHandle*> handles = {meta_cf_, time_cf_};
  for (const auto& f : AllFamilies()) handles.push_back(f->handle);
  for (rocksdb::ColumnFamilyHandle* h : handles) {
    LLMCACHE_RETURN_IF_ERROR(FromRocks(db_->Flush(fo, h), path_, "flush"));
  }
  return Status();
}

Result<uint64_t> RocksCache::RawKeyCountForTest(std::string_view base_model) {
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
  std::shared_ptr<Family> f = FamilyFor(base_model);
  return FromRocks(db_->Put(WriteOpts(), f->handle, key, value), path_,
                   "raw put");
}

size_t RocksCache::ModelFamilyCountForTest() {
  std::shared_lock<std::shared_mutex> lock(families_mu_);
  return families_.size();
}

}  // namespace llmcache
