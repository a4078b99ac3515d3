// RocksCache: the persistent cache (RocksDB + memory tier).
//
// Internal header; tests include it to reach the test hooks. The class is
// implemented across rocks_*.cc, one concern per file (rocks_cache.cc lists
// them); format.h says what is stored where.
//
// Concurrency design:
//   - write_fence_ (a writer-preferring shared mutex): inserts hold it
//     shared; dropping a column family and deleting entries hold it
//     exclusively. No write can therefore go through a column-family handle
//     while it is being dropped (a write through a dropped handle would stop
//     all writes until reopen); every write also sets
//     ignore_missing_column_families as a second guard. In inspection mode
//     reads hold it shared and CatchUp exclusively, as CatchUp may reopen
//     the database.
//   - families_mu_ guards the model -> family map. A Family owns its handle;
//     the handle is destroyed when the last shared_ptr goes, so a lookup that
//     raced with a drop still reads through a valid handle, then sees
//     `dropped` and reports a miss.
//   - epoch_ is bumped by every invalidation before the memory tier is
//     cleaned; a lookup fills the tier only if the epoch did not move while
//     it read RocksDB, so a flushed entry never comes back from a late fill.
//   - db_mu_ (a FenceMutex, outermost lock) guards the DB instance itself:
//     every operation that touches db_ or a column-family handle holds it
//     shared (DbLock; re-entrant per thread), and only replacing the
//     instance holds it exclusively: CatchUp reopening an inspection view,
//     and recovery reopening a database RocksDB cannot resume.
//
// Store health (rocks_health.cc): a write that fails with an I/O error or
// corruption, or a background error RocksDB reports to ErrorListener,
// degrades the store. While degraded (degraded_, checked by every write path
// under db_mu_), writes are refused with kUnavailable before they reach
// RocksDB, whose write path must not be used again after a write error
// until the DB was resumed (Debian's RocksDB asserts on it); lookups go on.
// The recovery thread calls DB::Resume() with exponential backoff and, when
// RocksDB cannot resume (a fatal error, or a write-ahead log that failed and
// was not replaced by the resume), closes and reopens the DB (read-only
// while a read-write open fails, so lookups still work). RocksDB's own
// automatic recovery is switched off, so the two never race.

#ifndef LLMCACHE_ENGINE_ROCKS_CACHE_H_
#define LLMCACHE_ENGINE_ROCKS_CACHE_H_

#include <rocksdb/db.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cache_internal.h"
#include "count_out_claims.h"
#include "llmcache/cache.h"
#include "llmcache/clock.h"
#include "memory_tier.h"
#include "stats.h"

namespace llmcache {

// A shared mutex whose exclusive lockers are not starved by a stream of
// shared lockers (glibc's rwlock prefers readers: a flush could wait for as
// long as inserts keep coming). An exclusive locker closes a gate that new
// shared lockers pass through, then waits for the current ones to leave.
// Meets the Lockable and SharedLockable requirements.
// Shared lockers pass the gate only while an exclusive locker waits, so the
// shared path costs one atomic load and the shared_mutex.
class FenceMutex {
 public:
  void lock() {
    exclusive_waiting_.fetch_add(1, std::memory_order_seq_cst);
    gate_.lock();
    rw_.lock();
  }
  void unlock() {
    rw_.unlock();
    gate_.unlock();
    exclusive_waiting_.fetch_sub(1, std::memory_order_release);
  }
  void lock_shared() {
    if (exclusive_waiting_.load(std::memory_order_seq_cst) != 0) {
      gate_.lock();
      gate_.unlock();
    }
    rw_.lock_shared();
  }
  void unlock_shared() { rw_.unlock_shared(); }

 private:
  std::atomic<int> exclusive_waiting_{0};
  std::mutex gate_;
  std::shared_mutex rw_;
};

class RocksCache final : public Cache {
 public:
  static Result<std::unique_ptr<Cache>> Open(const CacheOptions& options);
  static Result<std::unique_ptr<Cache>> OpenSecondary(
      const InspectOptions& options);
  ~RocksCache() override;

  Result<LookupResult> Lookup(const RequestKey& key,
                              const LookupOptions& options) override;
  Status Insert(const RequestKey& key, std::string_view body,
                const InsertOptions& options) override;
  void RecordBypass(BypassReason reason) override;
  void RecordProviderStats(std::string_view model,
                           const ProviderStatsDelta& delta) override;
  Result<uint64_t> FlushModel(std::string_view model) override;
  Status FlushAll() override;
  uint64_t FlushCount(std::string_view model,
                      std::string_view ns) const override {
    return flush_counts_.Get(model, ns);
  }
  Result<uint64_t> PurgeKey(const Digest& digest) override;
  Result<uint64_t> PurgeNamespace(std::string_view ns) override;
  Result<uint64_t> PurgeExpired() override;
  Result<uint64_t> PurgeOlderThan(int64_t age_ms) override;
  Result<uint64_t> PurgeCreatedBefore(int64_t cutoff_ms) override;
  Result<std::shared_ptr<const Entry>> Find(const Digest& digest) override;
  Status ForEachEntry(
      const std::optional<std::string>& model,
      const std::function<bool(const EntryView&)>& fn,
      const std::function<void(std::string_view, const Status&)>& on_corrupt)
      override;
  // rocks_listing.cc: from the time index.
  Status ForEachEntryByAge(
      const std::optional<std::string>& model, bool newest_first,
      const std::function<bool(const EntryView&)>& fn,
      const std::function<void(std::string_view, const Status&)>& on_corrupt)
      override;
  Result<std::map<std::string, AgeRange, std::less<>>> AgeRanges(
      const std::vector<std::string>& models) override;
  Result<CacheStats> GetStats() override;
  Status CatchUp() override;
  using Cache::Compact;
  Status Compact(const CompactOptions& options) override;
  Result<std::vector<FileProblem>> VerifyFiles() override;
  Status RunMaintenance() override;
  bool persistent() const override { return true; }
  int64_t default_ttl_ms() const override { return options_.default_ttl_ms; }
  StoreHealth Health() const override;
  // rocks_ingest.cc.
  Result<std::unique_ptr<BulkLoader>> NewBulkLoader(
      const BulkLoadOptions& options) override;

  // ---- Test hooks ----
  // Flushes every memtable to SST files (only the metadata's: its merge
  // operands are merged, the other families stay in their memtables).
  Status FlushMemtablesForTest(bool metadata_only = false);
  // Number of raw keys in the model's family (or the overflow family's keys
  // of that model), expired ones included, as RocksDB iterates them.
  Result<uint64_t> RawKeyCountForTest(std::string_view base_model);
  // Writes `value` under `key` in the family holding `base_model`.
  Status PutRawForTest(std::string_view base_model, const std::string& key,
                       const std::string& value);
  // Number of model column families that exist.
  size_t ModelFamilyCountForTest();
  // Runs `hook` in every Insert between counting its write
  // (Family::writes) and making it. Set it before any thread inserts.
  void SetBeforeWriteHookForTest(std::function<void()> hook) {
    before_write_hook_for_test_ = std::move(hook);
  }
  // Compacts the files of the deepest non-empty level of the family holding
  // `base_model`, alone (as a periodic compaction of old files does),
  // without the newer versions or deletions in the levels above.
  Status CompactBottomFilesForTest(std::string_view base_model);
  rocksdb::DB* db() { return db_.get(); }
  // The handle of the family holding `base_model` (null if none), for
  // tests that flush or compact that family alone through db().
  rocksdb::ColumnFamilyHandle* FamilyHandleForTest(std::string_view base_model);

  // Blocks until no recovery attempt is running, then runs one now (what
  // the recovery thread does after its backoff). True if the store is
  // healthy afterwards.
  bool RecoverNowForTest();

  struct Family;

 private:
  class TtlFilterFactory;
  class CountOutListener;  // settles what TtlFilterFactory's filters count
  class ErrorListener;
  class Loader;  // the BulkLoader (rocks_ingest.cc)
  class DbLock;
  struct Shared;

  RocksCache(const std::string& path, bool secondary);
  Status OpenPrimary(const CacheOptions& options);
  // Opens the RocksDB instance of a primary (db_opts_ set): column families,
  // families_, the format marker, resolved_. Read-only: nothing is written
  // (the fallback while a read-write reopen fails). Closes what it opened
  // on failure, keeping the store's own hold of the LOCK (a failed reopen
  // still owns the database).
  Status OpenDb(bool read_only);
  // Takes the database's LOCK (held_lock_) for a read-only instance, and
  // across a reopen: fs_ counts LockFile per path, so the hold shares the
  // lock with a RocksDB instance that has it, and the lock is let go when
  // both are (NewPrivateFileSystem). No-op when held already.
  Status HoldLock();
  // Creates the database at path_ (db_opts_ set) whole or not at all
  // (rocks_cache.cc).
  Status CreateDb();
  Status OpenAsSecondary();
  // Table files of the directory outside the live view, settled (a minute
  // without writes), that cannot be opened, or (`whole`) fail a block's
  // checksum (rocks_maintenance.cc).
  std::vector<FileProblem> UnviewedDamagedFiles(bool whole);
  // Closes the instance; `keep_lock`: the store's own hold of the LOCK
  // (held_lock_) stays.
  void CloseDb(bool keep_lock = false);

  // Options of a family holding entries (rocks_schema.cc); `model` is the
  // base model the compaction filter counts drops against (overflow: read
  // from each key).
  rocksdb::ColumnFamilyOptions ModelFamilyOptions(std::string_view model,
                                                  bool overflow) const;
  // Options of the time index: as a model family, filtering expired records.
  rocksdb::ColumnFamilyOptions TimeIndexOptions() const;
  rocksdb::WriteOptions WriteOpts() const;
  Status MutationAllowed() const;

  // ---- Store health (rocks_health.cc) ----
  // OK when a write may go to RocksDB; else kFailedPrecondition (inspection
  // view) or kUnavailable (degraded, or the database could not be
  // reopened). REQUIRES: db_mu_ held.
  Status WriteAllowed();
  // A write-path operation (write, flush, compaction, column-family change)
  // failed with `s`: counts it, degrades the store for an I/O error or
  // corruption, and returns the error, naming `what`.
  // `wal_write`: a write through the write-ahead log (Write, Put), whose
  // log may have failed.
  Status WriteFailed(const rocksdb::Status& s, std::string_view what,
                     bool wal_write);
  // What recovery must do about an error.
  enum class Damage {
    kResumable,  // DB::Resume() clears it
    kWal,        // as kResumable, and the write-ahead log may have failed
    kFatal,      // Resume() cannot clear it: reopen
  };
  // Marks the store degraded with `error` (any thread; RocksDB's too).
  void Degrade(const std::string& error, Damage damage);
  std::shared_ptr<rocksdb::EventListener> NewErrorListener();
  // Applies the TTL filters' counts when their job's output is installed
  // (rocks_schema.cc).
  std::shared_ptr<rocksdb::EventListener> NewCountOutListener();
  void RecoveryLoop();
  // One recovery attempt, unless the store is healthy. True if it is
  // healthy afterwards.
  bool RecoverOnce();
  // One recovery attempt. REQUIRES: recovery_run_mu_ held.
  bool TryRecover(std::string* error);
  // Closes and reopens the DB. REQUIRES: recovery_run_mu_ held, db_mu_ not.
  bool Reopen(std::string* error);
  // Log number of the current write-ahead log (0 if unknown).
  uint64_t CurrentWalNumber();

  // The family that holds `base_model`'s entries: its own, else the overflow
  // family (null only before the database is open). Family::overflow tells
  // which.
  std::shared_ptr<Family> FamilyFor(std::string_view base_model) const;
  // As FamilyFor, creating the model's family when the bound allows and the
  // model has no entries in the overflow family (a model's entries are in
  // one family only; see the definition).
  // REQUIRES: write_fence_ held (shared or exclusive).
  Result<std::shared_ptr<Family>> FamilyForInsert(std::string_view base_model);
  // Whether the overflow family holds an entry of `base_model` (one seek).
  Result<bool> HasOverflowEntries(std::string_view base_model);
  // Finishes flushes interrupted between dropping a model's column family
  // and the batch that deletes its mapping, its entry counters and its
  // overflow range (a kill, or a failed write): a mapping "cf/<name>" whose
  // column family does not exist is such a flush, and that batch is written
  // now. Cost: one meta key per model column family, never per entry.
  // REQUIRES: db_ open read-write and no other writer (opening, or recovery
  // while the store is degraded).
  Status FinishInterruptedFlushes();
  // Adds to `batch` a deletion of every record of the index family `cf`.
  Status DeleteAllInIndex(rocksdb::ColumnFamilyHandle* cf,
                          rocksdb::WriteBatch* batch);
  // Builds the per-model time index from the time index (the conversion of
  // a version-1 database). REQUIRES: db_ open read-write, no other writer.
  Status BuildModelTimeIndex();
  std::string EntryKey(const Family& f, std::string_view base_model,
                       const Digest& d) const;
  std::vector<std::shared_ptr<Family>> AllFamilies() const;
  // The handles of every column family llmcache writes: the metadata, the
  // creation-time indexes that are open, then AllFamilies().
  std::vector<rocksdb::ColumnFamilyHandle*> AllHandles() const;

  // Reads and decodes an entry. NotFound when absent.
  Status ReadEntry(const Family& f, const std::string& key, Entry* out,
                   size_t* stored_bytes);

  // Deletes the given entries (family, key) and their index keys; keeps
  // statistics and the memory tier right. REQUIRES: write_fence_ exclusive.
  struct Doomed {
    std::shared_ptr<Family> family;
    std::string key;
    std::string index_key;  // per-model index key; empty if unknown
    Digest digest;
    std::string base_model;
    // Size of the entry as found, 0 if it was not read (or `key` is empty:
    // an index record only). Only eviction's estimate of what it frees:
    // DeleteEntriesLocked counts the size it reads again.
    uint64_t bytes;
    // The version found (or that its index record names): what
    // DeleteEntriesLocked deletes if it is still the stored one.
    int64_t created_ms = kUnknownTime;
    int64_t expires_ms = kUnknownTime;
    static constexpr int64_t kUnknownTime = std::numeric_limits<int64_t>::min();
  };
  // What each doomed entry is now (ReadDoomed): its stored size, or -1 to
  // leave it alone (deleted since it was found, or replaced by another
  // version: another creation or expiry time); and whether its index record
  // stays (the version left alone has the record's creation time: only its
  // expiry changed).
  struct DoomedNow {
    std::vector<int64_t> stored;
    std::vector<char> keep_record;
  };
  // Reads the doomed entries (MultiGet per family, 1024 keys at a time).
  // With `claims`: claims each version that expires within the hour for
  // the deletion that follows (hold `claims` until it returned), from a read
  // that no filter's release of claims follows (count_out_claims.h).
  Status ReadDoomed(std::span<const Doomed> doomed, DoomedNow* now,
                    WriterClaims* claims = nullptr) const;
  // One read of ReadDoomed's; with `to_claim`, adds the versions to claim
  // (index in `doomed`, claim).
  Status ReadDoomedOnce(
      std::span<const Doomed> doomed, DoomedNow* now,
      std::vector<std::pair<size_t, uint64_t>>* to_claim) const;
  // Deletes the entries ReadDoomed found and their index records; returns
  // how many entries it deleted; the counters go down by the bytes stored.
  // REQUIRES: write_fence_ held exclusively, and `now` read after anything
  // written to these keys (no Insert runs under the exclusive fence, so what
  // was read is what the write replaces).
  // `counter` (kPurged, kEvictions) counts them in the same write.
  Result<uint64_t> DeleteEntriesLocked(std::span<const Doomed> doomed,
                                       const DoomedNow& now, Counter counter);
  // Flushes the family, overflow range, index records and counters of the
  // base model `base` (FlushModel: `base` and families older versions made
  // for its variants). Returns how many entries it held.
  Result<uint64_t> FlushBase(const std::string& base);
  // Deletes in chunks of kPurgeChunk (rocks_purge.cc), each under the write
  // fence on its own (inserts are not fenced out for long). A chunk is read
  // before the fence is taken, and again under it (from the blocks the first
  // read left in the block cache): the fence is held for a read from memory
  // and the write, not for reads from the files. Adds each chunk's deletions
  // to `counter` (purged or evicted). Returns how many entries it deleted;
  // stops at the first error.
  Result<uint64_t> DeleteInChunks(std::span<const Doomed> doomed,
                                  Counter counter);
  // Walks the creation-time records of every model oldest first (the
  // models' ranges of the per-model index merged, rocks_listing.cc);
  // `fn(created_ms, model, digest, expires_ms, index_key)` returns false to
  // stop. REQUIRES: a writer (format 3: the per-model index is complete).
  Status WalkTimeIndex(
      const std::function<bool(int64_t, std::string_view, const Digest&,
                               int64_t, std::string_view)>& fn);
  // Resolves an index record to a live entry, or nullopt if the entry is
  // gone or newer than the index record.
  Result<std::optional<Doomed>> ResolveIndexed(int64_t created_ms,
                                               std::string_view model,
                                               const Digest& d,
                                               std::string_view index_key);
  // What a time-index record points at (rocks_listing.cc): kLive, an entry
  // created at the record's time; kGone, no entry, one created at another
  // time (replaced), or one of a dropped family; kCorrupt, an entry that
  // does not decode.
  enum class Indexed { kLive, kGone, kCorrupt };
  // Reads the entry of index record (created_ms, model, d) with `ro`. When
  // `out` is given a live entry is decoded into it (kCorrupt, with the
  // reason in *corrupt, if that fails) and *stored_bytes set. A non-OK
  // status is a failed read.
  Result<Indexed> ReadIndexedEntry(const rocksdb::ReadOptions& ro,
                                   int64_t created_ms, std::string_view model,
                                   const Digest& d, Entry* out,
                                   size_t* stored_bytes, Status* corrupt);
  // The models that may have records in the per-model index (those with an
  // entry counter or a family of their own), at most `limit` of them.
  Result<std::vector<std::string>> IndexedModels(const rocksdb::ReadOptions& ro,
                                                 size_t limit);
  // Read options for a listing: a snapshot of a primary (held by *snapshot)
  // so that the index and the entries agree; an inspection view changes
  // only under CatchUp's exclusive lock, and needs none.
  rocksdb::ReadOptions ListingReadOptions(
      std::unique_ptr<rocksdb::ManagedSnapshot>* snapshot);
  Result<uint64_t> PurgeIndexed(
      const std::function<bool(int64_t created, int64_t expires, bool* stop)>&
          pred);

  Status WriteStatsDelta();
  Status LoadPersistedStats(CacheStats* stats);
  Status EnforceDiskBudget();
  // Whether an entry family holds a table file written without compression
  // although the store compresses (a bulk load's, until a compaction).
  Result<bool> HasUncompressedEntryFiles();
  Result<uint64_t> DiskBytes();
  void NudgePeriodicCompaction();
  void MaintenanceLoop();
  void NoteResolvedModel(std::string_view base_model,
                         std::string_view resolved);

  const std::string path_;
  const bool secondary_;
  CacheOptions options_;
  const Clock* clock_ = nullptr;
  std::string secondary_dir_;
  bool remove_secondary_dir_ = false;

  // The file system (private files over CacheOptions::file_system) and the
  // Env built on it; both outlive db_.
  std::shared_ptr<rocksdb::FileSystem> fs_;
  std::unique_ptr<rocksdb::Env> env_;
  rocksdb::DBOptions db_opts_;  // primary: kept for reopening

  mutable FenceMutex db_mu_;
  std::unique_ptr<rocksdb::DB> db_;
  bool read_only_ = false;  // db_ opened read-only (recovery fallback)
  // The database's LOCK while db_ is a read-only instance (an open on a full
  // disk, a failed reopen): RocksDB's read-only open takes none, and the
  // database is still this process's, which no other may open meanwhile.
  // Released by CloseDb.
  rocksdb::FileLock* held_lock_ = nullptr;
  // Inspection: why its view is refused (a table file it cannot open;
  // OpenAsSecondary), or empty.
  std::string unviewed_;
  bool accept_damaged_view_ = false;  // InspectOptions::accept_damaged_view
  // Set by the destructor before its last flush: the TTL filter is off for
  // the flushes and compactions that start after it.
  std::atomic<bool> closing_{false};
  std::shared_ptr<Shared> shared_;  // block cache, write buffer manager
  rocksdb::ColumnFamilyHandle* default_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_cf_ = nullptr;
  // The time index of formats 1 and 2 (format.h): open only in a read-only
  // or inspection view of such a database (or of a version-3 one beside the
  // empty family an older llmcache left), or while a writer converts it.
  rocksdb::ColumnFamilyHandle* time_cf_ = nullptr;
  // The per-model time index (format.h), null when the database lacks it (a
  // read-only or inspection view of a version-1 database).
  rocksdb::ColumnFamilyHandle* model_time_cf_ = nullptr;
  // Whether model_time_cf_ holds every record (format version >= 2);
  // listings of a version-1 view fall back to the time index.
  bool model_time_ready_ = false;

  mutable std::shared_mutex families_mu_;
  std::unordered_map<std::string, std::shared_ptr<Family>, StringViewHash,
                     std::equal_to<>>
      families_;
  std::shared_ptr<Family> overflow_;
  // Models without a family of their own known to have entries in the
  // overflow family, found by FamilyForInsert while the bound allows a new
  // family; they stay in the overflow family. A model leaves the set when
  // it is flushed. Guarded by families_mu_.
  std::unordered_set<std::string, StringViewHash, std::equal_to<>>
      overflow_models_;

  FenceMutex write_fence_;
  // Inserts of one key, one at a time (from the read of the stored version
  // to the write): picked by the digest's last byte.
  std::array<std::mutex, 64> insert_stripes_;
  // Who counts an expired version out: its TTL filter or the purge or
  // insert that deletes or replaces it meanwhile (count_out_claims.h).
  mutable CountOutClaims count_out_claims_;
  std::atomic<uint64_t> epoch_{0};
  // Flushes begun (FlushCount): bumped under the exclusive write fence, read
  // by Insert under the shared one.
  internal::FlushCounts flush_counts_;
  std::unique_ptr<MemoryTier> tier_;
  StatsCollector stats_;
  std::mutex stats_write_mu_;  // one stats writer at a time

  std::mutex resolved_mu_;
  std::unordered_map<std::string, std::string> resolved_;
  std::function<void()> before_write_hook_for_test_;

  std::mutex maintenance_mu_;
  std::condition_variable maintenance_cv_;
  bool stopping_ = false;
  std::thread maintenance_thread_;
  std::mutex maintenance_run_mu_;
  int64_t last_nudge_steady_ms_ = 0;

  // Store health. degraded_ mirrors health_.degraded for the write paths'
  // lock-free check; both change under health_mu_.
  std::atomic<bool> degraded_{false};
  mutable std::mutex health_mu_;
  std::condition_variable health_cv_;
  StoreHealth health_;          // guarded by health_mu_
  uint64_t degrade_seq_ = 0;    // guarded by health_mu_; bumped by Degrade
  bool reopen_needed_ = false;  // guarded by health_mu_
  bool wal_suspect_ = false;    // guarded by health_mu_
  bool recovery_stop_ = false;  // guarded by health_mu_
  std::mutex recovery_run_mu_;  // one recovery attempt at a time
  std::thread recovery_thread_;
};

// Holds db_mu_ for its scope: shared, or exclusive to replace the instance.
// Re-entrant per thread and cache (an operation calling another, or a
// ForEachEntry callback calling Lookup, takes no second lock: a nested
// shared lock of a writer-preferring mutex deadlocks once an exclusive
// locker waits).
class RocksCache::DbLock {
 public:
  explicit DbLock(const RocksCache* cache, bool exclusive = false);
  ~DbLock();
  DbLock(const DbLock&) = delete;
  DbLock& operator=(const DbLock&) = delete;

  // OK while the DB is open; kUnavailable when recovery could not reopen it;
  // kDataLoss for an inspection whose view leaves out a damaged file.
  Status status() const;
  // As status(), without the inspection's damaged files (VerifyFiles).
  Status open_status() const;

 private:
  const RocksCache* const cache_;
  bool shared_ = false;
  bool exclusive_ = false;
};

}  // namespace llmcache

#endif  // LLMCACHE_ENGINE_ROCKS_CACHE_H_
