// Options for opening a cache.

#ifndef LLMCACHE_OPTIONS_H_
#define LLMCACHE_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace rocksdb {
class FileSystem;
}  // namespace rocksdb

namespace llmcache {

class Clock;

// How the persistent store compresses the files of its entry column families.
enum class StoreCompression {
  // ZSTD at every level with a dictionary trained per file from samples of
  // its own entries: the JSON scaffolding every response repeats is stored
  // once per file instead of once per block.
  kZstdDictionary,
  // LZ4, ZSTD at the bottom level, no dictionary: the layout of databases
  // written before kZstdDictionary (for comparisons).
  kLz4,
  // None (for measuring what compression costs a lookup).
  kNone,
};

struct CacheOptions {
  // Directory of the RocksDB database. Empty: memory mode (the memory tier
  // alone; nothing touches disk and nothing survives the process).
  // Default: empty.
  std::string path;

  // Create the database when `path` holds none. Default: true.
  bool create_if_missing = true;

  // Time to live of an entry when Insert does not say. 0 = never expires.
  // Default: 24 hours.
  int64_t default_ttl_ms = 24LL * 3600 * 1000;

  // At most this many models get a column family of their own; later models
  // share one overflow column family (model ids come from clients, and each
  // column family costs memory and makes the next creation slower).
  // Default: 64.
  size_t max_model_column_families = 64;

  // Disk budget: when the live data exceeds it, the oldest entries are
  // evicted until it is 90% full. 0 = unbounded. Default: 0.
  uint64_t max_disk_bytes = 0;

  // Byte budget of the in-memory tier of decoded entries (the memory mode's
  // whole store; the hot tier in front of RocksDB in persistent mode, where 0
  // disables it). Counted as body + metadata + a fixed overhead per entry.
  // Default: 64 MiB.
  size_t memory_tier_bytes = 64u << 20;

  // RocksDB block cache, shared by every column family: data blocks, and the
  // index and filter partitions (kept in its high-priority half, so lookups
  // stay fast when the database is many times larger than the cache).
  // Default: 64 MiB.
  size_t block_cache_bytes = 64u << 20;

  // Memtable budget, shared by every column family (a WriteBufferManager of
  // its own, not charged to the block cache). Resident memory in persistent
  // mode is about block_cache_bytes + memory_tier_bytes + write_buffer_bytes.
  // Default: 64 MiB.
  size_t write_buffer_bytes = 64u << 20;

  // fsync the WAL on every insert. Off: an acknowledged insert survives a
  // process crash (kill -9) but not power loss. On: it survives both, at the
  // cost of one fsync per insert. Default: false.
  bool sync_writes = false;

  // How often the background thread writes statistics deltas, checks the disk
  // budget and nudges periodic compaction of cold column families. 0 disables
  // the thread (tests drive maintenance by hand with RunMaintenance()).
  // Default: 1 second.
  int64_t maintenance_interval_ms = 1000;

  // A column family whose files are older than this is recompacted so that
  // expired entries give their space back even if nobody writes. Default: 6 h.
  uint64_t periodic_compaction_seconds = 6 * 3600;

  // Compression of new files of the entry column families. Any setting opens
  // any database: each file records how it was compressed, and files are
  // rewritten with the current setting when a compaction (or Compact())
  // reaches them. Default: kZstdDictionary.
  StoreCompression compression = StoreCompression::kZstdDictionary;

  // Source of time for TTL, expiry checks and the compaction filter. Null =
  // the system clock. Not owned; must outlive the cache. Default: null.
  const Clock* clock = nullptr;

  // Recovery of a degraded store (Cache::Health): after a write or background
  // error (disk full, I/O error) writes are refused and the store tries to
  // recover, first after recovery_initial_backoff_ms, then at doubling
  // intervals up to recovery_max_backoff_ms, until it succeeds.
  // Defaults: 100 ms and 5 s.
  int64_t recovery_initial_backoff_ms = 100;
  int64_t recovery_max_backoff_ms = 5000;

  // The file system RocksDB runs on; null = the local disk
  // (rocksdb::FileSystem::Default()). For fault-injection tests and special
  // deployments. Whatever it is, database files are created private (0600,
  // directories 0700, less the umask). Default: null.
  std::shared_ptr<rocksdb::FileSystem> file_system;
};

// Options for a read-only view of a database that another process may hold
// open (a RocksDB secondary instance).
struct InspectOptions {
  // The database directory (as CacheOptions::path of the owner).
  std::string path;
  // Where the secondary keeps its own info log. Empty: a fresh directory
  // under the system temporary directory, removed on close. Default: empty.
  std::string secondary_path;
  // Source of time for expiry checks. Null = the system clock.
  const Clock* clock = nullptr;
  // A table file RocksDB cannot open is left out of the view without an
  // error, so by default such a view is refused (kDataLoss on every read;
  // Cache::VerifyFiles names the file). True: reads go on without it (a
  // verification that still checks every entry it can reach).
  bool accept_damaged_view = false;
};

// The database directory used when none is given: $LLMCACHE_DB if set, else
// $XDG_CACHE_HOME/llmcache, else $HOME/.cache/llmcache, else
// ./llmcache-db. The CLI and the proxy use the same default.
std::string DefaultDatabasePath();

}  // namespace llmcache

#endif  // LLMCACHE_OPTIONS_H_
