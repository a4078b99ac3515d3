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
// can be loading, and this process knows its live loaders).

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "cache_internal.h"
#include "format.h"
#include "llmcache/cpus.h"
#include "rocks_cache.h"
#include "rocks_ingest_memory.h"
#include "rocks_ingest_time.h"
#include "rocks_private_fs.h"
#include "rocks_schema.h"
#include "rocks_status.h"

namespace llmcache {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kLoadDirPrefix = "bulk-load.";

// The directories (paths) of this process's live loaders (their names are
// unique in the process: they end in a process-wide count). Any other loader
// directory in a database this process holds the lock of is a leftover, also
// one that bears this process's id (in containers, processes often all run
// as pid 1), or this one's name in another database.
class LiveLoadDirs {
 public:
  static LiveLoadDirs& Get() {
    static LiveLoadDirs* dirs = new LiveLoadDirs();  // never destroyed
    return *dirs;
  }
  void Add(const std::string& dir) {
    std::lock_guard<std::mutex> lock(mu_);
    dirs_.insert(dir);
  }
  void Remove(const std::string& dir) {
    std::lock_guard<std::mutex> lock(mu_);
    dirs_.erase(dir);
  }
  bool Contains(const std::string& dir) {
    std::lock_guard<std::mutex> lock(mu_);
    return dirs_.count(dir) != 0;
  }

 private:
  std::mutex mu_;
  std::unordered_set<std::string> dirs_;
};

// Keys per MultiGet call (bounds the values pinned at once).
constexpr size_t kMultiGetChunk = 1024;

}  // namespace

class RocksCache::Loader final : public BulkLoader {
 public:
  // `dir`: the loader's directory (in LiveLoadDirs).
  Loader(RocksCache* cache, const BulkLoadOptions& options, std::string dir)
      : cache_(cache),
        max_bytes_(
            std::clamp<size_t>(options.max_buffer_bytes, 1, size_t{1} << 40)),
        dir_(std::move(dir)),
        pool_(2 * max_bytes_ / kBlockSize + 4, kBlocksReady,
              max_bytes_ / kBlockSize + kBlocksReady),
        current_(std::make_unique<Batch>(&pool_)) {}

  ~Loader() override {
    StopPreparing();
    (void)Wait();
    RemoveTree(dir_);
    LiveLoadDirs::Get().Remove(dir_);
  }

  // Nothing escapes them: an exception (bad_alloc, no thread to be had for
  // the writer) fails the load with kResourceExhausted, since it may have
  // left a batch half handed over; stored() says what is stored.
  Status Add(const RequestKey& key, std::string_view body,
             const InsertOptions& options) override {
    try {
      return AddUnguarded(key, body, options);
    } catch (const std::exception& e) {
      return FailWith(e);
    }
  }
  Result<BulkLoadStats> Finish() override {
    try {
      return FinishUnguarded();
    } catch (const std::exception& e) {
      if (worker_.joinable()) worker_.join();  // as FinishUnguarded
      return FailWith(e);
    }
  }
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
    std::unordered_map<std::string, size_t, StringViewHash, std::equal_to<>>
        index;
    size_t bytes = 0;
    uint64_t added = 0;

    ModelItems& ForModel(std::string_view base_model) {
      if (models.size() <= 8) {  // a look at each beats hashing the name
        for (ModelItems& mi : models) {
          if (mi.base_model == base_model) return mi;
        }
      }
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
    uint64_t unchanged = 0;
    uint64_t bytes = 0;
    uint64_t files = 0;
    uint64_t reads = 0;
  };
  // What the load knows of a column family it wrote to (Family::id).
  struct FamilyState {
    // The family held nothing when the load first wrote to it, and its
    // write count has been the load's own since (`writes`): what it holds
    // is what the load wrote, and `written` says what that may be.
    bool own_only = false;
    uint64_t writes = 0;
    DigestFilter written;
  };

  Status AddUnguarded(const RequestKey& key, std::string_view body,
                      const InsertOptions& options);
  Result<BulkLoadStats> FinishUnguarded();
  Status FailWith(const std::exception& e) {
    failed_ = ResourceExhaustedError(std::string("bulk load: ") + e.what());
    return failed_;
  }
  // Waits for the batch being written, then hands the current one to a new
  // worker.
  Status StartWrite();
  // Waits for the worker; its status (and the loader fails with it).
  Status Wait();
  // Writes and ingests `batch` (the worker).
  Status Ingest(Batch& batch, uint64_t number, Written* written);
  // Has the column family of a model the load has not seen before made on
  // the preparer thread, while the batch fills: creating one writes and
  // syncs the MANIFEST and an options file (6-40 ms each on the README's
  // VM), time the writer of the first batch would otherwise spend. Ingest
  // finds the family made, or makes it (and reports any error).
  void Prepare(std::string_view base_model);
  void PrepareFamilies();
  // Stops the preparer thread and waits for it.
  void StopPreparing();
  // The load's state of `family`, about to be written by the worker: counts
  // the write, and whether anything else wrote to it.
  FamilyState& StateOf(const Family& family);
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
  // The worker's (one batch at a time).
  std::unordered_map<uint64_t, FamilyState> family_states_;
  // Prepare(): models seen (the caller's), models to make families of.
  std::unordered_set<std::string, StringViewHash, std::equal_to<>> seen_models_;
  std::mutex prepare_mu_;
  std::condition_variable prepare_wanted_;
  std::deque<std::string> to_prepare_;
  bool prepare_stop_ = false;
  std::thread preparer_;
  BulkLoadStats stats_;
  std::atomic<uint64_t> stored_{0};
};

Result<std::unique_ptr<BulkLoader>> RocksCache::NewBulkLoader(
    const BulkLoadOptions& options) {
  LLMCACHE_RETURN_IF_ERROR(MutationAllowed());
  static std::atomic<uint64_t> loader_count{0};
  try {
    // This process holds the database lock: a loader directory that is not
    // one of its live loaders' is a leftover of a load that died.
    // (POSIX calls, not std::filesystem: see RemoveTree.)
    for (const std::string& dir : EntriesWithPrefix(path_, kLoadDirPrefix)) {
      if (!LiveLoadDirs::Get().Contains(dir)) RemoveTree(dir);
    }
    const std::string dir = path_ + "/" + std::string(kLoadDirPrefix) +
                            std::to_string(getpid()) + "." +
                            std::to_string(loader_count++);
    // Live before it exists: another thread's loader, starting, must not
    // take it for a leftover.
    LiveLoadDirs::Get().Add(dir);
    try {
      if (Status made = MakePrivateDirectory(dir); !made.ok()) {
        LiveLoadDirs::Get().Remove(dir);
        return made;
      }
      return std::unique_ptr<BulkLoader>(new Loader(this, options, dir));
    } catch (const std::bad_alloc&) {
      LiveLoadDirs::Get().Remove(dir);
      RemoveTree(dir);
      throw;
    }
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory starting a bulk load");
  }
}

Status RocksCache::Loader::AddUnguarded(const RequestKey& key,
                                        std::string_view body,
                                        const InsertOptions& options) {
  if (finished_) return FailedPreconditionError("bulk load is finished");
  LLMCACHE_RETURN_IF_ERROR(failed_);
  Result<EntryMeta> made =
      internal::MakeEntryMeta(key, options, cache_->options_.default_ttl_ms,
                              cache_->clock_->NowMillis());
  if (!made.ok()) return made.status();
  const EntryMeta& meta = *made;
  // The encoded entry is its header, then the body: the body goes from
  // the caller's buffer to the batch's in one copy.
  scratch_.clear();
  LLMCACHE_RETURN_IF_ERROR(EncodeEntry(meta, {}, &scratch_));
  const Item item{key.digest, meta.created_ms, meta.expires_ms,
                  current_->arena.Concat(scratch_, body)};
  if (last_model_ == nullptr || last_model_->base_model != key.base_model) {
    const size_t models = current_->models.size();
    last_model_ = &current_->ForModel(key.base_model);
    if (current_->models.size() != models) Prepare(key.base_model);
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

void RocksCache::Loader::Prepare(std::string_view base_model) {
  if (seen_models_.contains(base_model)) return;
  seen_models_.emplace(base_model);
  {
    std::lock_guard<std::mutex> lock(prepare_mu_);
    to_prepare_.emplace_back(base_model);
  }
  prepare_wanted_.notify_one();
  if (!preparer_.joinable()) {
    try {
      preparer_ = std::thread([this] { PrepareFamilies(); });
    } catch (const std::exception&) {
      // No thread to be had: Ingest makes the families.
    }
  }
}

void RocksCache::Loader::StopPreparing() {
  {
    std::lock_guard<std::mutex> lock(prepare_mu_);
    prepare_stop_ = true;
  }
  prepare_wanted_.notify_one();
  if (preparer_.joinable()) preparer_.join();
}

void RocksCache::Loader::PrepareFamilies() {
  std::unique_lock<std::mutex> lock(prepare_mu_);
  while (true) {
    prepare_wanted_.wait(
        lock, [this] { return prepare_stop_ || !to_prepare_.empty(); });
    if (prepare_stop_) return;
    const std::string model = std::move(to_prepare_.front());
    to_prepare_.pop_front();
    lock.unlock();
    try {  // as Ingest takes them; errors are Ingest's to report
      RocksCache& c = *cache_;
      DbLock db_lock(cache_);
      std::shared_lock<FenceMutex> fence(c.write_fence_);
      if (db_lock.status().ok() && c.WriteAllowed().ok()) {
        (void)c.FamilyForInsert(model);
      }
    } catch (const std::exception&) {
      // bad_alloc: nothing escapes a thread
    }
    lock.lock();
  }
}

Result<BulkLoadStats> RocksCache::Loader::FinishUnguarded() {
  if (finished_) return FailedPreconditionError("bulk load is finished");
  finished_ = true;
  StopPreparing();  // every model is seen; the cache is the caller's again
  // A failed load too waits for the batch being written: once Finish
  // returns, stored() is final.
  if (failed_.ok()) LLMCACHE_RETURN_IF_ERROR(StartWrite());
  LLMCACHE_RETURN_IF_ERROR(Wait());
  return stats_;
}

Status RocksCache::Loader::Wait() {
  if (!worker_.joinable()) return failed_;
  worker_.join();
  stats_.replaced += worker_written_.replaced;
  stats_.unchanged += worker_written_.unchanged;
  stats_.bytes += worker_written_.bytes;
  stats_.files += worker_written_.files;
  stats_.reads += worker_written_.reads;
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
  // The writer never waits for blocks (an overflow family's keys take some
  // from the batch's arena); the next batch may wait for these.
  batch->arena.set_may_wait(false);
  pool_.Lend(batch->arena.blocks());
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

RocksCache::Loader::FamilyState& RocksCache::Loader::StateOf(
    const Family& family) {
  auto [it, first] = family_states_.try_emplace(family.id);
  FamilyState& state = it->second;
  uint64_t writes = family.writes.load(std::memory_order_acquire);
  if (first) {
    // Read after the count. Every write counted so far must have ended for
    // what is read below to hold it (Insert counts before it writes); a
    // write counted after `writes` was read makes the claim below fail.
    // Where a family's entries are is read in the order they move (the
    // active memtable, the immutable ones, table files), each look taking
    // the DB mutex on its own: an entry flushed between two looks is seen
    // by the later one.
    uint64_t active = 1, immutable = 1;
    state.own_only =
        family.writes_ended.load(std::memory_order_acquire) == writes &&
        cache_->db_->GetIntProperty(
            family.handle, "rocksdb.num-entries-active-mem-table", &active) &&
        active == 0 &&
        cache_->db_->GetIntProperty(
            family.handle, "rocksdb.num-entries-imm-mem-tables", &immutable) &&
        immutable == 0;
    if (state.own_only) {
      rocksdb::ColumnFamilyMetaData files;
      cache_->db_->GetColumnFamilyMetaData(family.handle, &files);
      state.own_only = files.file_count == 0;
    }
  } else if (writes != state.writes) {
    state.own_only = false;
  }
  // This batch's write, counted before it is made (as Insert counts).
  if (state.own_only && !family.writes.compare_exchange_strong(
                            writes, writes + 1, std::memory_order_acq_rel)) {
    state.own_only = false;  // another write came in between
  }
  if (!state.own_only) {
    state.written = DigestFilter();  // of no more use: its memory goes
    writes = family.writes.fetch_add(1, std::memory_order_acq_rel);
  }
  state.writes = writes + 1;
  return state;
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
    size_t model;  // index in batch.models
    // The key's first line in the batch (`item` unless it repeats): what an
    // Insert of each line in turn compares with the stored version first.
    const Item* first;
    bool stored = false;        // byte for byte the stored version: not written
    bool first_stored = false;  // so is `first` (the same as `stored` if
                                // first == item)
    bool had_prev = false;      // a stored version that decodes
    int64_t prev_created = 0;
    size_t prev_size = 0;
  };
  struct Target {
    std::shared_ptr<Family> family;
    std::vector<Record> records;
    FamilyState* state = nullptr;
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
    // (what a sequence of inserts leaves). Sorted as (first 8 bytes, index)
    // pairs: a fraction of the time of moving the items themselves.
    struct SortKey {
      uint64_t prefix;  // the digest's first 8 bytes, big-endian
      size_t index;     // in mi.items
    };
    std::vector<SortKey> order(mi.items.size());
    for (size_t i = 0; i < mi.items.size(); ++i) {
      uint64_t prefix = 0;  // big-endian: orders as memcmp does
      for (int b = 0; b < 8; ++b) prefix = prefix << 8 | mi.items[i].digest[b];
      order[i] = SortKey{prefix, i};
    }
    std::sort(order.begin(), order.end(),
              [&mi](const SortKey& a, const SortKey& b) {
                if (a.prefix != b.prefix) return a.prefix < b.prefix;
                const int cmp =
                    std::memcmp(mi.items[a.index].digest.data(),
                                mi.items[b.index].digest.data(), kDigestSize);
                return cmp != 0 ? cmp < 0 : a.index < b.index;
              });
    t.records.reserve(t.records.size() + order.size());
    const Item* first = nullptr;  // of the current key's run
    for (size_t i = 0; i < order.size(); ++i) {
      const Item& item = mi.items[order[i].index];
      if (i == 0 || mi.items[order[i - 1].index].digest != item.digest) {
        first = &item;
      }
      if (i + 1 < order.size() &&
          mi.items[order[i + 1].index].digest == item.digest) {
        // Replaced by the key's next line, as an Insert of that line would
        // replace it: unchanged if the bytes are the same.
        ++written->replaced;
        if (SameStoredEntry(item.value, mi.items[order[i + 1].index].value)) {
          ++written->unchanged;
        }
        continue;
      }
      std::string_view key(reinterpret_cast<const char*>(item.digest.data()),
                           kDigestSize);
      if (t.family->overflow) {
        key =
            batch.arena.Copy(c.EntryKey(*t.family, mi.base_model, item.digest));
      }
      t.records.push_back(Record{key, &item, m, first});
    }
  }

  // Per model: entry and byte deltas.
  std::vector<int64_t> entry_delta(batch.models.size(), 0);
  std::vector<int64_t> byte_delta(batch.models.size(), 0);
  // One per entry written, and the retired ones (rocks_ingest_time.h).
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
  WriterClaims claims(&c.count_out_claims_);  // until the ingestion returned
  const int64_t now_ms = c.clock_->NowMillis();
  rocksdb::IngestExternalFileOptions ingest;
  ingest.move_files = true;  // linked: same file system

  // The writes StateOf counts end when this returns, whichever way
  // (Family::writes_ended). After `targets`: gone before the families.
  struct EndedWrites {
    std::vector<const Family*> families;
    ~EndedWrites() {
      for (const Family* f : families) {
        f->writes_ended.fetch_add(1, std::memory_order_acq_rel);
      }
    }
  } ended;
  ended.families.reserve(targets.size());
  {
    size_t records = 0;  // one time record each, and a few retired ones
    for (const Target& t : targets) records += t.records.size();
    time_records.reserve(records);
  }
  for (Target& t : targets) {
    if (t.family->overflow) {
      std::sort(t.records.begin(), t.records.end(),
                [](const Record& a, const Record& b) { return a.key < b.key; });
    }
    t.state = &StateOf(*t.family);
    ended.families.push_back(t.family.get());  // no allocation: reserved
    // The stored versions: of every key, or of those the load may have
    // written itself.
    std::vector<Record*> to_read;
    for (Record& r : t.records) {
      if (!t.state->own_only || t.state->written.MayContain(r.item->digest)) {
        to_read.push_back(&r);
      }
    }
    written->reads += to_read.size();
    std::vector<rocksdb::Slice> keys(kMultiGetChunk);
    std::vector<rocksdb::PinnableSlice> values(kMultiGetChunk);
    std::vector<rocksdb::Status> statuses(kMultiGetChunk);
    for (size_t from = 0; from < to_read.size(); from += kMultiGetChunk) {
      const size_t n = std::min(kMultiGetChunk, to_read.size() - from);
      for (size_t i = 0; i < n; ++i) {
        keys[i] = rocksdb::Slice(to_read[from + i]->key.data(),
                                 to_read[from + i]->key.size());
        values[i].Reset();
      }
      // As Insert: a version that a TTL filter may drop is claimed from the
      // read on (count_out_claims.h).
      std::lock_guard<std::mutex> claims_lock(claims.claims().mu());
      c.db_->MultiGet(rocksdb::ReadOptions(), t.family->handle, n, keys.data(),
                      values.data(), statuses.data(), /*sorted_input=*/true);
      for (size_t i = 0; i < n; ++i) {
        Record& r = *to_read[from + i];
        if (statuses[i].ok()) {
          int64_t prev_expires = 0;
          r.had_prev =
              PeekEntryTimes(ToView(values[i]), &r.prev_created, &prev_expires);
          r.prev_size = r.had_prev ? values[i].size() : 0;
          // As Insert: the same bytes are not written again (two identical
          // versions would each be counted out when they expire).
          r.stored =
              r.had_prev && SameStoredEntry(ToView(values[i]), r.item->value);
          r.first_stored =
              r.first == r.item
                  ? r.stored
                  : r.had_prev &&
                        SameStoredEntry(ToView(values[i]), r.first->value);
          if (r.had_prev && !r.stored &&
              CountOutClaims::Claims(prev_expires, now_ms)) {
            claims.Claim(CountOutClaims::Key(t.family->handle->GetID(), r.key,
                                             r.prev_created, prev_expires));
          }
        } else if (!statuses[i].IsNotFound()) {
          c.stats_.Add(Counter::kStoreErrors, 1);
          return FromRocks(statuses[i], c.path_, "reading before a bulk load");
        }
      }
    }
    for (size_t i = 0; i < kMultiGetChunk; ++i) values[i].Reset();
    for (const Record& r : t.records) {
      // As Insert of the key's first line counts (its later lines were
      // counted against the line before); a value that does not decode is
      // not an entry.
      if (r.had_prev) {
        ++written->replaced;
        if (r.first_stored) ++written->unchanged;
      }
      if (r.stored) continue;  // nothing to write
      if (!r.had_prev) {
        ++entry_delta[r.model];
      }
      byte_delta[r.model] += static_cast<int64_t>(r.item->value.size()) -
                             static_cast<int64_t>(r.prev_size);
      const auto model = static_cast<uint32_t>(r.model);
      time_records.push_back(
          TimeRecord{model, static_cast<uint64_t>(r.item->created_ms),
                     &r.item->digest, r.item->expires_ms, false});
      if (r.had_prev && r.prev_created != r.item->created_ms) {
        time_records.push_back(TimeRecord{model,
                                          static_cast<uint64_t>(r.prev_created),
                                          &r.item->digest, 0, true});
      }
    }
    std::erase_if(t.records, [](const Record& r) { return r.stored; });
  }
  // A family whose every record is stored already gets no file.
  std::erase_if(targets, [](const Target& t) { return t.records.empty(); });
  uint64_t entries_written = 0;  // what Insert would have counted
  for (const Target& t : targets) entries_written += t.records.size();

  // The families' files and the time index's, written side by side: one
  // writer per file, on up to two threads per core.
  const size_t time_job = time_records.empty() ? SIZE_MAX : targets.size();
  const size_t jobs = targets.size() + (time_records.empty() ? 0 : 1);
  std::vector<rocksdb::Status> job_status(jobs);
  std::atomic<size_t> next_job{0};
  auto write_time_index = [&](const std::string& file) {
    rocksdb::ColumnFamilyHandle* cf = c.model_time_cf_;
    const rocksdb::Options opts = WriterOptions(cf);
    rocksdb::SstFileWriter writer(rocksdb::EnvOptions(opts), opts, cf,
                                  /*invalidate_page_cache=*/false);
    rocksdb::Status s = writer.Open(file);
    if (s.ok()) {
      std::vector<std::string_view> models;
      models.reserve(batch.models.size());
      for (const ModelItems& mi : batch.models) models.push_back(mi.base_model);
      s = WriteTimeRecords(models, &time_records, &writer);
    }
    if (s.ok()) s = writer.Finish();
    return s;
  };
  // The batch's arena holds the values (and an overflow family's keys) the
  // families' files copy: once every one of those files has all its
  // entries, its blocks go back to the pool, while the files sync and the
  // batch is ingested, for the batch being filled meanwhile (which would
  // make fresh ones otherwise).
  std::atomic<size_t> files_filling{targets.size()};
  auto filled = [&] {
    if (files_filling.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      batch.arena.Release();
    }
  };
  auto write_jobs = [&] {
    for (size_t j; (j = next_job.fetch_add(1)) < jobs;) {
      try {  // bad_alloc: nothing escapes a thread
        if (j == time_job) {
          job_status[j] = write_time_index(files[j]);
          continue;
        }
        const Target& t = targets[j];
        const rocksdb::Options opts = WriterOptions(t.family->handle);
        rocksdb::SstFileWriter writer(rocksdb::EnvOptions(opts), opts,
                                      t.family->handle,
                                      /*invalidate_page_cache=*/false);
        rocksdb::Status s = writer.Open(files[j]);
        const size_t n = t.records.size();
        for (size_t i = 0; s.ok() && i < n; ++i) {
          // The values are read in key order, so from all over the batch:
          // each is asked for a few records ahead (its item a few more), or
          // the copy into the table file waits on each of their cache
          // lines (~7% less time in the table-file jobs).
          if (i + kItemsAhead < n) {
            __builtin_prefetch(t.records[i + kItemsAhead].item);
          }
          if (i + kValuesAhead < n) {
            const std::string_view v = t.records[i + kValuesAhead].item->value;
            PrefetchLines(v.data(), std::min(v.size(), kPrefetchBytes));
          }
          const Record& r = t.records[i];
          s = writer.Put(
              rocksdb::Slice(r.key.data(), r.key.size()),
              rocksdb::Slice(r.item->value.data(), r.item->value.size()));
        }
        filled();  // the writer holds copies now
        if (s.ok()) s = writer.Finish();
        job_status[j] = s;
      } catch (const std::exception& e) {
        job_status[j] = rocksdb::Status::MemoryLimit(e.what());
      }
    }
  };
  for (size_t j = 0; j < jobs; ++j) (void)next_file();
  for (const Target& t : targets) {
    for (const Record& r : t.records) written->bytes += r.item->value.size();
  }
  {
    // This thread writes too; helpers up to two threads per core, at most
    // one per file beyond the first: each file ends with a wait for its
    // sync (~40% of a 16 MiB file's time here), which the others' writing
    // fills. On 2 cores, 4 threads against 2: 294.2k/s against 273.9k/s,
    // medians of ten alternated runs of the whole import.
    const size_t cores = UsableCpus();
    const size_t helpers = jobs > 1 ? std::min(jobs, 2 * cores) - 1 : 0;
    std::vector<std::thread> threads;
    threads.reserve(helpers);
    for (size_t h = 0; h < helpers; ++h) {
      try {
        threads.emplace_back(write_jobs);
      } catch (const std::exception&) {
        break;  // no thread to be had: this one writes the rest
      }
    }
    write_jobs();
    for (std::thread& th : threads) th.join();
  }
  for (size_t j = 0; j < jobs; ++j) {
    if (!job_status[j].ok()) {
      return fail(job_status[j], j == time_job
                                     ? "writing a bulk-load time index file"
                                     : "writing a bulk-load file");
    }
    rocksdb::IngestExternalFileArg arg;
    arg.column_family =
        j == time_job ? c.model_time_cf_ : targets[j].family->handle;
    arg.external_files = {files[j]};
    arg.options = ingest;
    args.push_back(std::move(arg));
  }

  // The meta family: counter deltas (merge operands, like Insert's) and the
  // last resolved model of the models where it changed.
  std::vector<std::pair<std::string, std::pair<bool, std::string>>> meta;
  std::vector<std::pair<std::string, std::string>> resolved_changes;
  // What was written (as Insert counts: not the entries already stored as
  // they are, nor a key's earlier versions in the batch), in the same
  // ingestion: a process killed after it does not lose the count.
  if (entries_written != 0) {
    meta.push_back(
        {std::string(kStatPrefix) + std::string(CounterName(Counter::kInserts)),
         {true, Le64(static_cast<int64_t>(entries_written))}});
  }
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

  // The digests go into the filters before the ingestion: one that fails
  // leaves only digests that were not written (read for nothing later),
  // and nothing after a successful ingestion may fail (the memory tier must
  // drop what it replaced).
  for (const Target& t : targets) {
    if (!t.state->own_only) continue;
    for (const Record& r : t.records) t.state->written.Add(r.item->digest);
  }
  if (!args.empty()) {
    rocksdb::Status s = c.db_->IngestExternalFiles(args);
    if (!s.ok()) return fail(s, "ingesting a bulk load");
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
  stored_.fetch_add(batch.added, std::memory_order_acq_rel);
  try {
    for (const std::string& f : files) {  // moved: normally gone already
      std::error_code ec;
      fs::remove(f, ec);
    }
    std::lock_guard<std::mutex> lock(c.resolved_mu_);
    for (auto& [model, resolved] : resolved_changes) {
      c.resolved_[model] = std::move(resolved);
    }
  } catch (const std::bad_alloc&) {
    // Out of memory: a file left behind goes with the load's directory;
    // the resolved models are copies of what the metadata file just
    // stored (`models` shows the previous ones until the next open).
  }
  return Status();
}

}  // namespace llmcache
