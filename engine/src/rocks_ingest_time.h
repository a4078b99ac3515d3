// The time-index records of a bulk load's batch (rocks_ingest.cc): one per
// entry written, and one retired (deleted) per entry whose stored version
// had another creation time. Kept as numbers and a pointer to the digest;
// each key, ModelTimeIndexKey(model, created, digest), is made only as the
// table file is written.

#ifndef LLMCACHE_ENGINE_ROCKS_INGEST_TIME_H_
#define LLMCACHE_ENGINE_ROCKS_INGEST_TIME_H_

#include <rocksdb/sst_file_writer.h>
#include <rocksdb/status.h>

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "llmcache/key.h"

namespace llmcache {

struct TimeRecord {
  uint32_t model;    // the base model: an index in the caller's list
  uint64_t created;  // the creation time as the key orders it (unsigned)
  const Digest* digest;
  int64_t expires_ms;  // the record's value (none when erased)
  bool erase;          // a retired record: a deletion
};

// Puts `records` in key order and adds each to `writer` (open, empty): a
// Put of its expiry, or a Delete of a retired one. `models[r.model]` is the
// base model of record r; the names in `models` are distinct. No key may be
// both added and retired.
rocksdb::Status WriteTimeRecords(std::span<const std::string_view> models,
                                 std::vector<TimeRecord>* records,
                                 rocksdb::SstFileWriter* writer);

}  // namespace llmcache

#endif  // LLMCACHE_ENGINE_ROCKS_INGEST_TIME_H_
