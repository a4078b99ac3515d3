// The RocksDB side of the schema in format.h: the Family handle of a column
// family that holds entries, the resources every family shares (block cache,
// write buffer manager, bloom filter, the counters' merge operator), and
// small conversions the RocksCache files share. The options themselves are
// built by RocksCache::ModelFamilyOptions and TimeIndexOptions
// (rocks_schema.cc, with the TTL compaction filter and the merge operator).

#ifndef LLMCACHE_ENGINE_ROCKS_SCHEMA_H_
#define LLMCACHE_ENGINE_ROCKS_SCHEMA_H_

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/slice.h>
#include <rocksdb/write_buffer_manager.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "format.h"
#include "rocks_cache.h"
#include "stats.h"

namespace llmcache {

// A column family that holds entries: one model's own, or the overflow one.
struct RocksCache::Family {
  Family(rocksdb::DB* d, rocksdb::ColumnFamilyHandle* h, std::string model,
         bool is_overflow)
      : db(d),
        handle(h),
        base_model(std::move(model)),
        overflow(is_overflow),
        id(NextId()) {}
  ~Family() {
    if (db != nullptr && handle != nullptr) {
      db->DestroyColumnFamilyHandle(handle);
    }
  }
  rocksdb::DB* const db;
  rocksdb::ColumnFamilyHandle* const handle;
  const std::string base_model;  // empty for the overflow family
  const bool overflow;
  // Unique in the process (a family recreated after a drop or a reopen is
  // another one, whatever its address).
  const uint64_t id;
  std::atomic<bool> dropped{false};
  // Writes that may have added entries (inserts, bulk-load ingestions):
  // `writes` counted before each is made, `writes_ended` once it returned
  // (made or failed; CountedWrite does both). A bulk loader that sees no
  // count but its own knows which keys can be stored; one that finds the
  // two equal knows that what it reads of the family includes every write
  // counted so far (rocks_ingest.cc).
  mutable std::atomic<uint64_t> writes{0};
  mutable std::atomic<uint64_t> writes_ended{0};

 private:
  static uint64_t NextId() {
    static std::atomic<uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
  }
};

// Counts one write into `family` (Family::writes) for its scope: construct
// it right before the write, let it go once the write returned.
class CountedWrite {
 public:
  explicit CountedWrite(const RocksCache::Family& family) : family_(family) {
    family_.writes.fetch_add(1, std::memory_order_acq_rel);
  }
  ~CountedWrite() {
    family_.writes_ended.fetch_add(1, std::memory_order_acq_rel);
  }
  CountedWrite(const CountedWrite&) = delete;
  CountedWrite& operator=(const CountedWrite&) = delete;

 private:
  const RocksCache::Family& family_;
};

// The merge operator of the meta family's counters (kAddOperatorName): adds
// little-endian 64-bit values.
std::shared_ptr<rocksdb::MergeOperator> NewAddOperator();

// Resources shared by every column family.
struct RocksCache::Shared {
  std::shared_ptr<rocksdb::Cache> block_cache;
  std::shared_ptr<rocksdb::WriteBufferManager> write_buffers;
  std::shared_ptr<rocksdb::MergeOperator> add_operator = NewAddOperator();
  std::shared_ptr<const rocksdb::FilterPolicy> bloom{
      rocksdb::NewBloomFilterPolicy(10)};
  // The open database with its families registered, for the compaction
  // filter's reads (null while opening or closing).
  std::atomic<rocksdb::DB*> live_db{nullptr};
};

inline std::string_view ToView(const rocksdb::Slice& s) {
  return std::string_view(s.data(), s.size());
}

// A counter delta as a merge operand (or any int64 as 8 bytes LE).
inline std::string Le64(int64_t v) {
  std::string s;
  AppendLittleEndian64(static_cast<uint64_t>(v), &s);
  return s;
}

// The meta key of counter `c` of `base_model`.
inline std::string ModelStatKey(ModelCounter c, std::string_view base_model) {
  return ModelStatKey(ModelCounterName(c), base_model);
}

}  // namespace llmcache

#endif  // LLMCACHE_ENGINE_ROCKS_SCHEMA_H_
