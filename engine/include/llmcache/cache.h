// Cache: the llmcache engine's store of LLM responses.
//
// Two modes behind one interface:
//   - persistent (CacheOptions::path set): RocksDB, one column family per
//     base model, per-entry TTL (checked on every read and enforced by a
//     compaction filter), with a byte-budgeted memory tier of decoded entries
//     in front, so hot lookups never touch RocksDB;
//   - memory (path empty): the memory tier alone.
// Cache::Inspect opens a read-only view of a database another process holds.
//
// A cache miss is normal control flow: Lookup returns an OK Result whose
// outcome is kMiss or kExpired. A non-OK Status always means the store
// itself failed (I/O error, corruption, closed database).
//
// Thread safety: every method may be called concurrently from any thread.
// Flushing a model while other threads read and write it is safe: lookups
// that race with the flush see either the old entry or a miss, never a crash,
// and no write is lost to another model.

#ifndef LLMCACHE_CACHE_H_
#define LLMCACHE_CACHE_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/entry.h"
#include "llmcache/key.h"
#include "llmcache/options.h"
#include "llmcache/policy.h"
#include "llmcache/status.h"

namespace llmcache {

enum class LookupOutcome {
  kHit,
  kMiss,     // no entry (or one older than LookupOptions::max_age_ms)
  kExpired,  // an entry whose TTL has passed; counts as a miss
};

struct LookupResult {
  LookupOutcome outcome = LookupOutcome::kMiss;
  // Set on kHit only. Shared and immutable: cheap to hold on to.
  std::shared_ptr<const Entry> entry;
  // True when the hit was served from the memory tier.
  bool from_memory = false;

  bool hit() const { return outcome == LookupOutcome::kHit; }
};

struct LookupOptions {
  // Only accept an entry created at most this long ago; older ones are a
  // miss (they stay stored). Negative = any age. Default: -1.
  int64_t max_age_ms = -1;
  // Count the lookup in the statistics. Default: true.
  bool record_stats = true;
};

// The latest time an entry can carry, in Unix milliseconds: the end of the
// year 9999. A TTL that reaches beyond it expires then.
inline constexpr int64_t kMaxEntryTimeMs = 253'402'300'799'999;

// The expiry of an entry created at `created_ms` (at most kMaxEntryTimeMs)
// that lives `ttl_ms`: 0 (never) for a TTL of 0 or less, else at most
// kMaxEntryTimeMs, without overflow.
inline int64_t ExpiryAfter(int64_t created_ms, int64_t ttl_ms) {
  if (ttl_ms <= 0) return 0;
  return ttl_ms >= kMaxEntryTimeMs - created_ms ? kMaxEntryTimeMs
                                                : created_ms + ttl_ms;
}

struct InsertOptions {
  // The namespace the key was computed with (stored for PurgeNamespace).
  std::string_view ns;
  // Time to live; nullopt = CacheOptions::default_ttl_ms; 0 = never expires.
  // Negative is kInvalidArgument; one that reaches past kMaxEntryTimeMs
  // expires at kMaxEntryTimeMs.
  std::optional<int64_t> ttl_ms;
  // Usage and cost reported by the response; summed into "saved" statistics
  // every time the entry is served.
  Usage usage;
  // The `model` field of the response (what the upstream actually ran).
  std::string_view resolved_model;
  uint8_t flags = kEntryFlagNone;
  // For imports: keep the original creation and expiry times instead of
  // now / now + ttl. 0 = not set; negative (or a created_ms past
  // kMaxEntryTimeMs) is kInvalidArgument; an expires_ms past it is stored
  // as kMaxEntryTimeMs.
  int64_t created_ms = 0;
  int64_t expires_ms = 0;
  // Store only if Cache::FlushCount(key's model, ns) still returns this: an
  // answer asked for before a flush of its entries began is not stored
  // after it (kAborted, nothing stored). nullopt: no such check.
  std::optional<uint64_t> flush_count;
};

// Statistics. Persistent mode keeps them in the database, so they survive
// restarts: entry and byte counts are written with the entries themselves,
// the other counters by the maintenance thread at most
// CacheOptions::maintenance_interval_ms after they happen, and on close.
// llmcache/stats_json.h renders them as JSON.
struct ModelStats {
  std::string model;  // base model
  uint64_t entries = 0;
  uint64_t bytes = 0;  // encoded value bytes
  uint64_t hits = 0;
  uint64_t tokens_saved = 0;  // prompt + completion tokens of served hits
  int64_t cost_saved_nanousd = 0;
  std::string last_resolved_model;
  bool own_column_family = false;  // false: lives in the overflow family
  // Provider-side prompt caching of upstream answers (not the response
  // cache's savings): tokens read from and written to the provider's cache,
  // what the reads saved (read tokens x (prompt - read price)) and what the
  // writes cost over the prompt price (write tokens x (write - prompt
  // price)). Kept by FlushModel: they are money already saved or spent.
  uint64_t provider_cache_read_tokens = 0;
  uint64_t provider_cache_write_tokens = 0;
  int64_t provider_cache_saved_nanousd = 0;
  int64_t provider_cache_write_premium_nanousd = 0;
  // Times the model's resolved model changed (kept by FlushModel).
  uint64_t drift_events = 0;
};

// Per-model counts a client adds with Cache::RecordProviderStats.
struct ProviderStatsDelta {
  uint64_t read_tokens = 0;
  uint64_t write_tokens = 0;
  int64_t saved_nanousd = 0;
  int64_t write_premium_nanousd = 0;
  uint64_t drift_events = 0;
};

struct CacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;  // including expired
  uint64_t expired = 0;
  uint64_t inserts = 0;  // entries written (not those stored as they were)
  uint64_t flushes = 0;
  uint64_t evictions = 0;     // entries removed by the disk or memory budget
  uint64_t purged = 0;        // entries removed by PurgeKey, PurgeNamespace,
                              // PurgeExpired, PurgeOlderThan (a model's or
                              // every entry go by FlushModel/FlushAll:
                              // `flushes` counts the calls, not entries)
  uint64_t store_errors = 0;  // failed reads/writes of the store
  std::array<uint64_t, static_cast<size_t>(BypassReason::kCount)> bypasses{};
  uint64_t tokens_saved = 0;
  int64_t cost_saved_nanousd = 0;
  uint64_t entries = 0;     // sum over models
  uint64_t bytes = 0;       // sum over models
  uint64_t disk_bytes = 0;  // live SST + WAL files (persistent mode)
  // Live SST file bytes of the entry column families (persistent mode): the
  // entries as stored, compressed, with their keys, indexes and filters.
  // Entries still in memtables count in `bytes` but not here until flushed.
  uint64_t stored_bytes = 0;
  uint64_t memory_tier_entries = 0;
  uint64_t memory_tier_bytes = 0;
  bool persistent = false;         // Cache::persistent() of the cache reporting
  std::vector<ModelStats> models;  // sorted by model

  double hit_rate() const {
    const uint64_t n = hits + misses;
    return n == 0 ? 0.0 : static_cast<double>(hits) / static_cast<double>(n);
  }
  // stored_bytes / bytes: what the entries take on disk per byte of encoded
  // value (0.35 = stored in 35% of their size). 0 when either is 0 (memory
  // mode, an empty store, or nothing flushed yet).
  double compression_ratio() const {
    return bytes == 0 || stored_bytes == 0
               ? 0.0
               : static_cast<double>(stored_bytes) / static_cast<double>(bytes);
  }
};

// The store's write health. A persistent store that hit a write or
// background error (disk full, I/O error) stops writing (lookups go on),
// recovers by itself (RocksDB's Resume(), retried with backoff) and writes
// again once the cause is gone. Memory mode is always healthy.
// Times are Unix milliseconds of CacheOptions::clock.
struct StoreHealth {
  bool degraded = false;          // writes are refused until recovery
  std::string error;              // the error that degraded it (if degraded)
  int64_t degraded_since_ms = 0;  // when it degraded (0: never)
  int64_t recovered_ms = 0;       // when it last recovered (0: never)
  uint64_t degradations = 0;      // times it degraded
  uint64_t recoveries = 0;        // times it recovered
  uint64_t recovery_attempts = 0;
  uint64_t write_errors = 0;  // writes that failed or were refused
  // Recoveries that had to close and reopen the database (an error RocksDB
  // cannot resume from, such as EIO on the write-ahead log).
  uint64_t reopens = 0;
  // The last failed recovery attempt's error, while degraded (why it is
  // still degraded, e.g. the disk is still full).
  std::string recovery_error;
  // The most recent error that degraded the store; kept after recovery.
  std::string last_error;
};

// One entry as seen by an iteration.
struct EntryView {
  Digest digest;
  std::string_view base_model;
  const Entry& entry;
  size_t stored_bytes;  // size of the encoded value
};

// Creation times (Unix milliseconds) of a model's oldest and newest entry.
struct AgeRange {
  int64_t oldest_ms = 0;
  int64_t newest_ms = 0;
  friend bool operator==(const AgeRange&, const AgeRange&) = default;
};

// Bulk loading (Cache::NewBulkLoader): many entries written at once, for
// imports. The end state is what inserting every entry in the same order
// would give: the same stored values, time-index records, entry and byte
// counts per model (an entry that replaces a stored one is not counted
// twice), column families (created in order of first appearance, up to
// CacheOptions::max_model_column_families, then the overflow family), last
// resolved model per model, and `inserts` counts every Add that wrote (an
// entry already stored as it is, or but for kEntryFlagImported, is not
// written again and not counted). Entries are not
// put in the memory tier, and copies there of the keys loaded are dropped.
struct BulkLoadOptions {
  // Encoded entries buffered before they are sorted and written as one
  // batch. A persistent cache writes each batch in the background while the
  // next one fills, so a loader holds up to twice this. Default: 64 MiB.
  size_t max_buffer_bytes = size_t{64} << 20;
};

// Cache::Compact.
struct CompactOptions {
  // When set, read while compacting: once it is true, Compact stops at the
  // next point RocksDB looks (between keys, not while it writes out a file:
  // 0.02-7 s after the flag at 1M entries) and returns kCancelled. What was
  // compacted before stays compacted, the rest as it was; nothing is lost,
  // and `llmcache compact` (or a later compaction) finishes the work. A
  // signal handler may set it (a lock-free atomic).
  std::atomic<bool>* cancel = nullptr;
};

// All but `added` are counted in persistent mode only.
struct BulkLoadStats {
  uint64_t added = 0;      // entries passed to Add
  uint64_t replaced = 0;   // of those, entries that replaced a stored one
                           // (or one added earlier in the same load)
  uint64_t unchanged = 0;  // of `replaced`, entries as stored: byte for byte,
                           // or but for kEntryFlagImported (not written
                           // again; persistent mode)
  uint64_t bytes = 0;      // encoded value bytes written
  uint64_t batches = 0;    // batches written
  uint64_t files = 0;      // table files ingested
  // Keys whose stored version was read before writing. A column family that
  // held nothing when the load first wrote to it, and that nothing else
  // wrote to since, can hold only what the load wrote: of its keys, only
  // those the load may have written in an earlier batch are read.
  uint64_t reads = 0;
};

// Persistent mode: entries are buffered, sorted per column family, written
// as table files (one per column family and batch) and ingested into the
// database, all column families of a batch at once (atomically, counters
// included: a crash keeps a batch whole or drops it whole). Memory mode:
// each Add is an Insert.
// Not thread-safe: one thread calls Add and Finish. Other threads may use
// the cache meanwhile; a flush or purge waits for a batch being ingested.
// An Insert of a key that a batch being written also holds, made while
// that batch is written, can leave the entry counted twice (the batch read
// the key's stored version before the Insert; Inserts of one key among
// themselves are exact); `llmcache import` holds the database alone.
// Destroying a loader without Finish drops the entries not yet written
// (batches already written stay). A loader must not outlive its cache.
class BulkLoader {
 public:
  virtual ~BulkLoader() = default;
  BulkLoader(const BulkLoader&) = delete;
  BulkLoader& operator=(const BulkLoader&) = delete;

  // Adds an entry, as Cache::Insert would store it. Errors: an invalid
  // entry (kInvalidArgument; the loader goes on), or the failure of a batch
  // written in the background, or running out of memory or threads
  // (kResourceExhausted); after those every later call returns the error.
  virtual Status Add(const RequestKey& key, std::string_view body,
                     const InsertOptions& options) = 0;
  // Writes what is buffered and waits for it. Call once. After an error
  // that stopped the load (see Add) it writes nothing more, but still waits
  // for a batch being written in the background, and returns the error.
  virtual Result<BulkLoadStats> Finish() = 0;
  // Entries written so far (of batches that were stored); final once Finish
  // returned.
  virtual uint64_t stored() const = 0;

 protected:
  BulkLoader() = default;
};

class Cache {
 public:
  // Opens (creating if allowed) the cache described by `options`.
  // Errors name the path and the cause: kFailedPrecondition when the database
  // is locked by another process or was written by a newer format,
  // kPermissionDenied for an unwritable directory, kDataLoss for corrupt
  // files, kInvalidArgument for inconsistent options.
  static Result<std::unique_ptr<Cache>> Open(const CacheOptions& options);

  // Opens a read-only view of the database at options.path, which another
  // process may have open and be writing. Sees the owner's writes as of the
  // last CatchUp() (and of opening). Mutating calls return
  // kFailedPrecondition.
  static Result<std::unique_ptr<Cache>> Inspect(const InspectOptions& options);

  virtual ~Cache() = default;
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;

  // Looks `key` up. kExpired when an entry exists but its TTL has passed (it
  // is a miss, even before compaction removes it).
  virtual Result<LookupResult> Lookup(const RequestKey& key,
                                      const LookupOptions& options = {}) = 0;

  // Stores `body` (the response) under `key`, replacing any entry.
  // The first insert for a base model creates its column family (lookups
  // never do).
  virtual Status Insert(const RequestKey& key, std::string_view body,
                        const InsertOptions& options) = 0;

  // A loader that stores many entries faster than one Insert each (see
  // BulkLoader). kFailedPrecondition for an inspection view.
  virtual Result<std::unique_ptr<BulkLoader>> NewBulkLoader(
      const BulkLoadOptions& options);

  // Counts a request that bypassed the cache.
  virtual void RecordBypass(BypassReason reason) = 0;

  // Adds provider prompt-cache usage and drift events to the counters of
  // BaseModel(model) (ModelStats::provider_cache_*, drift_events); persisted
  // with the other statistics. A no-op where not implemented.
  virtual void RecordProviderStats(std::string_view model,
                                   const ProviderStatsDelta& delta) {
    (void)model;
    (void)delta;
  }

  // Removes every entry of BaseModel(model) (so every `:variant` too). In
  // persistent mode this drops the model's column family: constant time
  // whatever its size. Returns how many entries the statistics knew of.
  virtual Result<uint64_t> FlushModel(std::string_view model) = 0;

  // Removes every entry of every model. Statistics counters of hits and
  // savings are kept.
  virtual Status FlushAll() = 0;

  // How many flushes that cover the entries of BaseModel(model) in
  // namespace `ns` (FlushModel of that model, FlushAll, PurgeNamespace of
  // that namespace) have begun on this instance. Read it before asking
  // upstream for an answer and pass it as InsertOptions::flush_count, so
  // that an answer a flush overtook is not stored after the flush. 0 where
  // not implemented (never changes).
  virtual uint64_t FlushCount(std::string_view model,
                              std::string_view ns) const {
    (void)model;
    (void)ns;
    return 0;
  }

  // Removes the entry of a key; returns how many were removed: 0, 1, or
  // more when an edited import stored the key under several models.
  virtual Result<uint64_t> PurgeKey(const Digest& digest) = 0;
  // Removes the entries stored under namespace `ns`; returns how many.
  virtual Result<uint64_t> PurgeNamespace(std::string_view ns) = 0;
  // Removes entries whose TTL has passed; returns how many.
  virtual Result<uint64_t> PurgeExpired() = 0;
  // Removes entries created more than `age_ms` ago; returns how many.
  // Negative `age_ms` is kInvalidArgument.
  virtual Result<uint64_t> PurgeOlderThan(int64_t age_ms) = 0;
  // Removes entries created before `cutoff_ms` (Unix milliseconds); returns
  // how many. A purge in steps uses one cutoff for all of them: an age
  // measured again at each step moves with the clock. (The default, for
  // subclasses written before it, is PurgeOlderThan by the system clock,
  // with a cutoff after now taken as now.)
  virtual Result<uint64_t> PurgeCreatedBefore(int64_t cutoff_ms);

  // Finds an entry by digest alone, whatever its model (for inspection).
  // A null pointer when there is none. Expired entries are returned too.
  virtual Result<std::shared_ptr<const Entry>> Find(const Digest& digest) = 0;

  // Calls `fn` for every entry (of BaseModel(*model) if given), expired ones
  // included, in no particular order, until it returns false.
  // kDataLoss, naming the key, for an entry that does not decode, unless
  // `on_corrupt` is given: then it is called instead and iteration goes on.
  virtual Status ForEachEntry(
      const std::optional<std::string>& model,
      const std::function<bool(const EntryView&)>& fn,
      const std::function<void(std::string_view key, const Status&)>&
          on_corrupt = nullptr) = 0;

  // Calls `fn` for every entry (of BaseModel(*model) if given), expired ones
  // included, in creation order: newest first if `newest_first`, else
  // oldest first; entries created in the same millisecond in ascending
  // digest order either way. Stops when `fn` returns false. `on_corrupt` as
  // in ForEachEntry (for the entries the walk reaches).
  // Cost in persistent mode: the entries visited, not the database, plus
  // one seek per model. With `model`, it walks that model's range of the
  // per-model creation-time index; without, it merges the ranges of every
  // model that has an entry counter (one iterator per model up to 64;
  // beyond, one iterator for all, and a seek per entry visited). Entries of
  // one millisecond are not all read to list the first of them. (An inspection
  // view of a format-1 database, which has no per-model index, walks that
  // format's time index, skipping the records of other and flushed models and
  // collecting each millisecond's records to sort them.) Records whose entry is
  // gone or was replaced are skipped. An expired entry is listed while its
  // index record lasts: compaction drops the record at about the time it drops
  // the entry, but the two can go in either order. The default implementation
  // (memory mode) walks every entry and sorts.
  virtual Status ForEachEntryByAge(
      const std::optional<std::string>& model, bool newest_first,
      const std::function<bool(const EntryView&)>& fn,
      const std::function<void(std::string_view key, const Status&)>&
          on_corrupt = nullptr);

  // For each base model of `models`, the creation times of its oldest and
  // newest entry (expired ones included, as ForEachEntryByAge sees them).
  // Models without entries are left out of the result.
  // Cost in persistent mode: per model, the records from each end of its
  // range of the per-model creation-time index up to the first whose entry
  // is live (one entry read per model and end, plus one per stale record).
  // (An inspection view of a format-1 database reads that format's time
  // index from each end until every model was met: there a model without
  // entries costs a scan of the index.) The default implementation walks
  // every entry.
  virtual Result<std::map<std::string, AgeRange, std::less<>>> AgeRanges(
      const std::vector<std::string>& models);

  // Current statistics, including this process's unwritten deltas (an
  // inspection view sees what the owner has written).
  virtual Result<CacheStats> GetStats() = 0;

  // Inspection mode: catch up with the owner's writes (and see models it
  // created since). A no-op elsewhere.
  virtual Status CatchUp() = 0;

  // Full manual compaction: drops expired entries and returns their space.
  Status Compact() { return Compact(CompactOptions{}); }
  virtual Status Compact(const CompactOptions& options) = 0;

  // Runs one round of background maintenance now: writes statistics deltas,
  // enforces the disk budget, nudges periodic compaction. The background
  // thread calls this every CacheOptions::maintenance_interval_ms.
  virtual Status RunMaintenance() = 0;

  // True for a persistent cache, false for memory mode.
  virtual bool persistent() const = 0;
  // CacheOptions::default_ttl_ms (0 = entries never expire).
  virtual int64_t default_ttl_ms() const = 0;

  // The store's write health (see StoreHealth). Cheap; any thread.
  virtual StoreHealth Health() const { return {}; }

  // A damaged file of the store, as VerifyFiles finds it.
  struct FileProblem {
    std::string file;   // its path
    std::string holds;  // "entries of model M", "the creation-time index"...
    std::string problem;
    std::string model;  // M when it holds one model's entries only, else ""
  };
  // Reads every table file of the store whole and checks each block's
  // checksum (in persistent mode; nothing to check in memory): the files
  // that fail, each with what it holds. Entries in a damaged block cannot be
  // read (and a damaged index file can keep the store from opening for
  // writing), which a walk over the entries stops at.
  virtual Result<std::vector<FileProblem>> VerifyFiles() {
    return std::vector<FileProblem>();
  }

 protected:
  Cache() = default;
};

}  // namespace llmcache

#endif  // LLMCACHE_CACHE_H_
