// Bulk loading (Cache::NewBulkLoader): entries buffered in memory, sorted,
// written as table files with SstFileWriter and ingested, instead of one
// write batch (and one read of the previous version) per entry.
//
// Each batch becomes one table file per column family it touches, plus one
// of the per-model time index (records of the new entries, deletions of the
// records of the entries they replace) and one of the meta family (the entry
// and byte counter deltas as merge operands, the last resolved models), all
// ingested by one IngestExternalFiles call: RocksDB records them in the
// MANIFEST atomically, so the counters stay exact after a crash, as an
// Insert's batch keeps them. Ingested files sit above everything already
// stored (a global sequence number), so a loaded entry replaces a stored
// one; the stored versions of the batch's keys are read first (MultiGet, in
// key order) for the counters and the time-index records to retire.
//
// The batch is written by a worker thread while the caller fills the next
// one. The files go to a directory of the loader's own in the database
// directory ("bulk-load.<pid>.<n>", the same file system, so that ingestion
// links them instead of copying); leftovers of a process that died mid-load
// are removed by the next loader (the database lock says no other process
// can be loading).

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cache_internal.h"
#include "format.h"
#include "rocks_cache.h"
#include "rocks_private_fs.h"
#include "rocks_schema.h"
#include "rocks_status.h"

namespace llmcache {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kLoadDirPrefix = "bulk-load.";
// Keys per MultiGet call (bounds the values pinned at once).
constexpr size_t kMultiGetChunk = 1024;
// 2 MiB, aligned: one transparent huge page each where the kernel offers
// them (madvise), so that filling a batch does not fault in 4 KiB at a time.
constexpr size_t kBlockSize = size_t{2} << 20;

struct FreeBlock {
  void operator()(char* p) const { std::free(p); }
};
using Block = std::unique_ptr<char[], FreeBlock>;

Block NewBlock() {
  char* p = static_cast<char*>(std::aligned_alloc(kBlockSize, kBlockSize));
  if (p == nullptr) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  (void)madvise(p, kBlockSize, MADV_HUGEPAGE);  // a hint; fine if refused
#endif
  return Block(p);
}

// Memory blocks batches take their bytes from, given back when a batch is
// written: later batches reuse them instead of faulting in fresh pages and
// calling malloc per entry (a large part of a load's time in profiles).
class BlockPool {
 public:
  explicit BlockPool(size_t max_kept) : max_kept_(max_kept) {}
  Block Get() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        Block b = std::move(free_.back());
        free_.pop_back();
        return b;
      }
    }
    return NewBlock();
  }
  void Put(std::vector<Block>& blocks) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& b : blocks) {
      if (free_.size() < max_kept_) free_.push_back(std::move(b));
    }
    blocks.clear();
  }

 private:
  const size_t max_kept_;
  std::mutex mu_;
  std::vector<Block> free_;
};

// A batch's bytes (encoded entries, keys): copies that never move, so views
// of them stay valid until the arena goes.
class Arena {
 public:
  explicit Arena(BlockPool* pool) : pool_(pool) {}
  ~Arena() { pool_->Put(blocks_); }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  std::string_view Copy(std::string_view s) {
    char* to = nullptr;
    if (s.size() > kBlockSize / 4) {
      oversized_.push_back(std::make_unique_for_overwrite<char[]>(s.size()));
      to = oversized_.back().get();
    } else {
      if (left_ < s.size()) {
        blocks_.push_back(pool_->Get());
        next_ = blocks_.back().get();
        left_ = kBlockSize;
      }
      to = next_;
      next_ += s.size();
      left_ -= s.size();
    }
    if (!s.empty()) std::memcpy(to, s.data(), s.size());
    return std::string_view(to, s.size());
  }

 private:
  BlockPool* const pool_;
  std::vector<Block> blocks_;
  std::vector<std::unique_ptr<char[]>> oversized_;
  char* next_ = nullptr;
  size_t left_ = 0;
};

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

class RocksCache::Loader final : public BulkLoader {
 public:
  Loader(RocksCache* cache, const BulkLoadOptions& options, std::string dir)
      : cache_(cache),
        max_bytes_(std::max<size_t>(options.max_buffer_bytes, 1)),
        dir_(std::move(dir)),
        pool_(2 * max_bytes_ / kBlockSize + 4),
        current_(std::make_unique<Batch>(&pool_)) {}

  ~Loader() override {
    (void)Wait();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  Status Add(const RequestKey& key, std::string_view body,
             const InsertOptions& options) override;
  Result<BulkLoadStats> Finish() override;
  uint64_t stored() const override {
    return stored_.load(std::memory_order_acquire);
  }

 private:
  struct Item {
    Digest digest;
    int64_t created_ms;
    int64_t expires_ms;
    std::string_view value;  // the encoded entry, in the batch's arena
  };
  // One base model's entries, in the order they were added.
  struct ModelItems {
    std::string base_model;
    std::vector<Item> items;
    std::string resolved;  // the last non-empty resolved model added
  };
  struct Batch {
    explicit Batch(BlockPool* pool) : arena(pool) {}
    Arena arena;
    std::vector<ModelItems> models;  // in order of first appearance
    std::unordered_map<std::string, size_t, StringHash, std::equal_to<>> index;
    size_t bytes = 0;
    uint64_t added = 0;

    ModelItems& ForModel(std::string_view base_model) {
      auto it = index.find(base_model);
      if (it != index.end()) return models[it->second];
      index.emplace(std::string(base_model), models.size());
      models.push_back(ModelItems{std::string(base_model), {}, {}});
      return models.back();
    }
  };
  // What the worker reports of a batch.
  struct Written {
    uint64_t replaced = 0;
    uint64_t bytes = 0;
    uint64_t files = 0;
  };

  // Waits for the batch being written, then hands the current one to a new
  // worker.
  Status StartWrite();
  // Waits for the worker; its status (and the loader fails with it).
  Status Wait();
  // Writes and ingests `batch` (the worker).
  Status Ingest(Batch& batch, uint64_t number, Written* written);
  // Options of a table file for column family `cf`: the family's own
  // (table format, filters), but not compressed, whatever the family's
  // compression. Compression is deferred to the compaction that rewrites
  // the files with the family's own: the periodic compaction
  // (CacheOptions::periodic_compaction_seconds) or Compact() (`llmcache
  // compact`, `llmcache import --compact`). Until then the files take
  // about the entries' raw size. Training a dictionary and compressing with
  // ZSTD took ~45% of an import's CPU (200k 1 KiB entries: 5.1 s, 39k/s);
  // LZ4 still took 20% (LZ4_compress_fast_continue; RocksDB 7.8 calls it
  // with acceleration 1 whatever the level): 155.6k/s with LZ4 files,
  // 196-222k/s without, on 2 cores.
  rocksdb::Options WriterOptions(rocksdb::ColumnFamilyHandle* cf) const {
    rocksdb::Options opts = cache_->db_->GetOptions(cf);
    opts.compression = rocksdb::kNoCompression;
    opts.bottommost_compression = rocksdb::kDisableCompressionOption;
    opts.compression_opts = rocksdb::CompressionOptions();
    return opts;
  }

  RocksCache* const cache_;
  const size_t max_bytes_;
  const std::string dir_;
  BlockPool pool_;  // before the batches: they give their blocks back
  std::unique_ptr<Batch> current_;
  std::string scratch_;               // an entry being encoded
  ModelItems* last_model_ = nullptr;  // in current_: the previous Add's
  std::thread worker_;
  Status worker_status_;  // the worker's; read after joining it
  Written worker_written_;
  Status failed_;
  bool finished_ = false;
  uint64_t batch_number_ = 0;
  BulkLoadStats stats_;
  std::atomic<uint64_t> stored_{0};
};

Result<std::unique_ptr<BulkLoader>> RocksCache::NewBulkLoader(
    const BulkLoadOptions& options) {
  LLMCACHE_RETURN_IF_ERROR(MutationAllowed());
  // Directories of loaders of other processes are leftovers: this process
  // holds the database lock. This process's own belong to live loaders.
  static std::atomic<uint64_t> loader_count{0};
  const std::string own_prefix =
      std::string(kLoadDirPrefix) + std::to_string(getpid()) + ".";
  std::error_code ec;
  for (fs::directory_iterator it(path_, ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.starts_with(kLoadDirPrefix) && !name.starts_with(own_prefix)) {
      std::error_code rm;
      fs::remove_all(it->path(), rm);
    }
  }
  const std::string dir =
      (fs::path(path_) / (own_prefix + std::to_string(loader_count++)))
          .string();
  LLMCACHE_RETURN_IF_ERROR(MakePrivateDirectory(dir));
  return std::unique_ptr<BulkLoader>(new Loader(this, options, dir));
}

Status RocksCache::Loader::Add(const RequestKey& key, std::string_view body,
                               const InsertOptions& options) {
  if (finished_) return FailedPreconditionError("bulk load is finished");
  LLMCACHE_RETURN_IF_ERROR(failed_);
  if (options.ttl_ms && *options.ttl_ms < 0) {
    return InvalidArgumentError("ttl_ms must be >= 0");
  }
  const EntryMeta meta =
      internal::MakeEntryMeta(key, options, cache_->options_.default_ttl_ms,
                              cache_->clock_->NowMillis());
  scratch_.clear();
  LLMCACHE_RETURN_IF_ERROR(EncodeEntry(meta, body, &scratch_));
  const Item item{key.digest, meta.created_ms, meta.expires_ms,
                  current_->arena.Copy(scratch_)};
  if (last_model_ == nullptr || last_model_->base_model != key.base_model) {
    last_model_ = &current_->ForModel(key.base_model);
  }
  if (!options.resolved_model.empty()) {
    last_model_->resolved.assign(options.resolved_model);
  }
  current_->bytes += item.value.size() + sizeof(Item);
  last_model_->items.push_back(item);
  ++current_->added;
  ++stats_.added;
  if (current_->bytes >= max_bytes_) return StartWrite();
  return Status();
}

Result<BulkLoadStats> RocksCache::Loader::Finish() {
  if (finished_) return FailedPreconditionError("bulk load is finished");
  LLMCACHE_RETURN_IF_ERROR(failed_);
  finished_ = true;
  LLMCACHE_RETURN_IF_ERROR(StartWrite());
  LLMCACHE_RETURN_IF_ERROR(Wait());
  return stats_;
}

Status RocksCache::Loader::Wait() {
  if (!worker_.joinable()) return failed_;
  worker_.join();
  stats_.replaced += worker_written_.replaced;
  stats_.bytes += worker_written_.bytes;
  stats_.files += worker_written_.files;
  worker_written_ = Written();
  if (!worker_status_.ok() && failed_.ok()) failed_ = worker_status_;
  return failed_;
}

Status RocksCache::Loader::StartWrite() {
  LLMCACHE_RETURN_IF_ERROR(Wait());
  if (current_->added == 0) return Status();
  std::unique_ptr<Batch> batch = std::move(current_);
  current_ = std::make_unique<Batch>(&pool_);
  last_model_ = nullptr;
  const uint64_t number = batch_number_++;
  ++stats_.batches;
  worker_ = std::thread([this, number, b = std::move(batch)]() mutable {
    try {
      worker_status_ = Ingest(*b, number, &worker_written_);
    } catch (const std::exception& e) {  // bad_alloc: nothing escapes a thread
      worker_status_ =
          ResourceExhaustedError(std::string("bulk load: ") + e.what());
    }
    b.reset();  // freed here, not on the caller's thread
  });
  return Status();
}

Status RocksCache::Loader::Ingest(Batch& batch, uint64_t number,
                                  Written* written) {
  RocksCache& c = *cache_;
  DbLock db_lock(cache_);
  std::shared_lock<FenceMutex> fence(c.write_fence_);
  // As Insert: checked under the fence (recovery drains it first).
  LLMCACHE_RETURN_IF_ERROR(c.WriteAllowed());

  // One record per key to write, per column family.
  struct Record {
    std::string_view key;  // the item's digest, or in the arena
    const Item* item;
    size_t model;         // index in batch.models
    bool stored = false;  // byte for byte the stored version: not written
  };
  struct Target {
    std::shared_ptr<Family> family;
    std::vector<Record> records;
  };
  std::vector<Target> targets;
  std::unordered_map<const Family*, size_t> target_of;
  // Families in order of first appearance: the models an Insert of each
  // entry in turn would give a family of their own get one.
  for (size_t m = 0; m < batch.models.size(); ++m) {
    ModelItems& mi = batch.models[m];
    Result<std::shared_ptr<Family>> family = c.FamilyForInsert(mi.base_model);
    if (!family.ok()) return family.status();
    auto [at, inserted] = target_of.emplace(family->get(), targets.size());
    if (inserted) targets.push_back(Target{*family, {}});
    Target& t = targets[at->second];
    // By key, the latest addition of a key last; only that one is written
    // (what a sequence of inserts leaves).
    std::stable_sort(
        mi.items.begin(), mi.items.end(), [](const Item& a, const Item& b) {
          return std::memcmp(a.digest.data(), b.digest.data(), kDigestSize) < 0;
        });
    for (size_t i = 0; i < mi.items.size(); ++i) {
      if (i + 1 < mi.items.size() &&
          mi.items[i + 1].digest == mi.items[i].digest) {
        ++written->replaced;
        continue;
      }
      const Item& item = mi.items[i];
      std::string_view key(reinterpret_cast<const char*>(item.digest.data()),
                           kDigestSize);
      if (t.family->overflow) {
        key =
            batch.arena.Copy(c.EntryKey(*t.family, mi.base_model, item.digest));
      }
      t.records.push_back(Record{key, &item, m});
    }
  }

  // Per model: entry and byte deltas.
  std::vector<int64_t> entry_delta(batch.models.size(), 0);
  std::vector<int64_t> byte_delta(batch.models.size(), 0);
  struct TimeRecord {
    std::string_view key;  // in the arena
    int64_t expires_ms;
    bool erase;
  };
  std::vector<TimeRecord> time_records;
  std::vector<rocksdb::IngestExternalFileArg> args;
  std::vector<std::string> files;
  auto next_file = [&] {
    files.push_back((fs::path(dir_) / (std::to_string(number) + "-" +
                                       std::to_string(files.size()) + ".sst"))
                        .string());
    return files.back();
  };
  auto fail = [&](const rocksdb::Status& s, std::string_view what) {
    for (const std::string& f : files) {
      std::error_code ec;
      fs::remove(f, ec);
    }
    return c.WriteFailed(s, what, false);
  };
  rocksdb::IngestExternalFileOptions ingest;
  ingest.move_files = true;  // linked: same file system

  for (Target& t : targets) {
    if (t.family->overflow) {
      std::sort(t.records.begin(), t.records.end(),
                [](const Record& a, const Record& b) { return a.key < b.key; });
    }
    // The stored versions.
    std::vector<rocksdb::Slice> keys(kMultiGetChunk);
    std::vector<rocksdb::PinnableSlice> values(kMultiGetChunk);
    std::vector<rocksdb::Status> statuses(kMultiGetChunk);
    for (size_t from = 0; from < t.records.size(); from += kMultiGetChunk) {
      const size_t n = std::min(kMultiGetChunk, t.records.size() - from);
      for (size_t i = 0; i < n; ++i) {
        keys[i] = rocksdb::Slice(t.records[from + i].key.data(),
                                 t.records[from + i].key.size());
        values[i].Reset();
      }
      c.db_->MultiGet(rocksdb::ReadOptions(), t.family->handle, n, keys.data(),
                      values.data(), statuses.data(), /*sorted_input=*/true);
      for (size_t i = 0; i < n; ++i) {
        const Record& r = t.records[from + i];
        const std::string& model = batch.models[r.model].base_model;
        int64_t prev_created = 0, prev_expires = 0;
        bool had_prev = false;
        if (statuses[i].ok()) {
          had_prev =
              PeekEntryTimes(ToView(values[i]), &prev_created, &prev_expires);
        } else if (!statuses[i].IsNotFound()) {
          c.stats_.Add(Counter::kStoreErrors, 1);
          return FromRocks(statuses[i], c.path_, "reading before a bulk load");
        }
        // As Insert: the same bytes are not written again (two identical
        // versions would each be counted out when they expire).
        if (had_prev && ToView(values[i]) == r.item->value) {
          t.records[from + i].stored = true;
          ++written->replaced;
          continue;
        }
        // As Insert counts: a value that does not decode is not an entry.
        if (had_prev) {
          ++written->replaced;
        } else {
          ++entry_delta[r.model];
        }
        byte_delta[r.model] +=
            static_cast<int64_t>(r.item->value.size()) -
            static_cast<int64_t>(had_prev ? values[i].size() : 0);
        time_records.push_back(
            TimeRecord{batch.arena.Copy(ModelTimeIndexKey(
                           model, r.item->created_ms, r.item->digest)),
                       r.item->expires_ms, false});
        if (had_prev && prev_created != r.item->created_ms) {
          time_records.push_back(
              TimeRecord{batch.arena.Copy(ModelTimeIndexKey(model, prev_created,
                                                            r.item->digest)),
                         0, true});
        }
      }
    }
    for (size_t i = 0; i < kMultiGetChunk; ++i) values[i].Reset();
    std::erase_if(t.records, [](const Record& r) { return r.stored; });
  }
  // A family whose every record is stored already gets no file.
  std::erase_if(targets, [](const Target& t) { return t.records.empty(); });

  // The families' files, written side by side (compression is most of the
  // work): one writer per family, on up to as many threads as cores.
  std::vector<rocksdb::Status> target_status(targets.size());
  std::atomic<size_t> next_target{0};
  auto write_targets = [&] {
    for (size_t ti; (ti = next_target.fetch_add(1)) < targets.size();) {
      try {  // bad_alloc: nothing escapes a thread
        const Target& t = targets[ti];
        const rocksdb::Options opts = WriterOptions(t.family->handle);
        rocksdb::SstFileWriter writer(rocksdb::EnvOptions(opts), opts,
                                      t.family->handle,
                                      /*invalidate_page_cache=*/false);
        rocksdb::Status s = writer.Open(files[ti]);
        for (size_t i = 0; s.ok() && i < t.records.size(); ++i) {
          const Record& r = t.records[i];
          s = writer.Put(
              rocksdb::Slice(r.key.data(), r.key.size()),
              rocksdb::Slice(r.item->value.data(), r.item->value.size()));
        }
        if (s.ok()) s = writer.Finish();
        target_status[ti] = s;
      } catch (const std::exception& e) {
        target_status[ti] = rocksdb::Status::MemoryLimit(e.what());
      }
    }
  };
  for (size_t ti = 0; ti < targets.size(); ++ti) {
    (void)next_file();
    for (const Record& r : targets[ti].records) {
      written->bytes += r.item->value.size();
    }
  }
  {
    // This thread writes too; helpers for the other cores, at most one per
    // file beyond the first.
    const size_t cores = std::max(1u, std::thread::hardware_concurrency());
    const size_t helpers =
        targets.size() > 1 ? std::min(targets.size(), cores) - 1 : 0;
    std::vector<std::thread> threads;
    threads.reserve(helpers);
    for (size_t h = 0; h < helpers; ++h) {
      try {
        threads.emplace_back(write_targets);
      } catch (const std::system_error&) {
        break;  // no thread to be had: this one writes the rest
      }
    }
    write_targets();
    for (std::thread& th : threads) th.join();
  }
  for (size_t ti = 0; ti < targets.size(); ++ti) {
    if (!target_status[ti].ok()) {
      return fail(target_status[ti], "writing a bulk-load file");
    }
    rocksdb::IngestExternalFileArg arg;
    arg.column_family = targets[ti].family->handle;
    arg.external_files = {files[ti]};
    arg.options = ingest;
    args.push_back(std::move(arg));
  }

  // The per-model time index: new records and retired ones, in key order.
  // A key is never both (a record is retired only when its time differs).
  std::sort(
      time_records.begin(), time_records.end(),
      [](const TimeRecord& a, const TimeRecord& b) { return a.key < b.key; });
  // The meta family: counter deltas (merge operands, like Insert's) and the
  // last resolved model of the models where it changed.
  std::vector<std::pair<std::string, std::pair<bool, std::string>>> meta;
  std::vector<std::pair<std::string, std::string>> resolved_changes;
  for (size_t m = 0; m < batch.models.size(); ++m) {
    const ModelItems& mi = batch.models[m];
    if (entry_delta[m] != 0) {
      meta.push_back({ModelStatKey(ModelCounter::kEntries, mi.base_model),
                      {true, Le64(entry_delta[m])}});
    }
    if (byte_delta[m] != 0) {
      meta.push_back({ModelStatKey(ModelCounter::kBytes, mi.base_model),
                      {true, Le64(byte_delta[m])}});
    }
    if (!mi.resolved.empty()) {
      std::lock_guard<std::mutex> lock(c.resolved_mu_);
      auto it = c.resolved_.find(mi.base_model);
      if (it == c.resolved_.end() || it->second != mi.resolved) {
        meta.push_back({std::string(kResolvedPrefix) + mi.base_model,
                        {false, mi.resolved}});
        resolved_changes.emplace_back(mi.base_model, mi.resolved);
      }
    }
  }
  std::sort(meta.begin(), meta.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });

  auto write_file = [&](rocksdb::ColumnFamilyHandle* cf,
                        auto&& add_all) -> rocksdb::Status {
    const rocksdb::Options opts = WriterOptions(cf);
    rocksdb::SstFileWriter writer(rocksdb::EnvOptions(opts), opts, cf,
                                  /*invalidate_page_cache=*/false);
    const std::string file = next_file();
    rocksdb::Status s = writer.Open(file);
    if (s.ok()) s = add_all(writer);
    if (s.ok()) s = writer.Finish();
    if (!s.ok()) return s;
    rocksdb::IngestExternalFileArg arg;
    arg.column_family = cf;
    arg.external_files = {file};
    arg.options = ingest;
    args.push_back(std::move(arg));
    return s;
  };
  if (!time_records.empty()) {
    rocksdb::Status s =
        write_file(c.model_time_cf_, [&](rocksdb::SstFileWriter& w) {
          rocksdb::Status st;
          for (size_t i = 0; st.ok() && i < time_records.size(); ++i) {
            const TimeRecord& r = time_records[i];
            const rocksdb::Slice key(r.key.data(), r.key.size());
            st = r.erase ? w.Delete(key) : w.Put(key, Le64(r.expires_ms));
          }
          return st;
        });
    if (!s.ok()) return fail(s, "writing a bulk-load time index file");
  }
  if (!meta.empty()) {
    rocksdb::Status s = write_file(c.meta_cf_, [&](rocksdb::SstFileWriter& w) {
      rocksdb::Status st;
      for (size_t i = 0; st.ok() && i < meta.size(); ++i) {
        const auto& [key, op] = meta[i];
        st = op.first ? w.Merge(key, op.second) : w.Put(key, op.second);
      }
      return st;
    });
    if (!s.ok()) return fail(s, "writing a bulk-load metadata file");
  }

  if (!args.empty()) {
    rocksdb::Status s = c.db_->IngestExternalFiles(args);
    if (!s.ok()) return fail(s, "ingesting a bulk load");
  }
  for (const std::string& f : files) {  // moved: normally gone already
    std::error_code ec;
    fs::remove(f, ec);
  }
  written->files += args.size();

  // As DeleteEntriesLocked: lookups that read the old versions do not put
  // them in the memory tier, and the copies there go.
  c.epoch_.fetch_add(1, std::memory_order_acq_rel);
  if (c.tier_) {
    for (const ModelItems& mi : batch.models) {
      for (const Item& item : mi.items) c.tier_->Erase(item.digest);
    }
  }
  c.stats_.Add(Counter::kInserts, static_cast<int64_t>(batch.added));
  {
    std::lock_guard<std::mutex> lock(c.resolved_mu_);
    for (auto& [model, resolved] : resolved_changes) {
      c.resolved_[model] = std::move(resolved);
    }
  }
  stored_.fetch_add(batch.added, std::memory_order_acq_rel);
  return Status();
}

}  // namespace llmcache
