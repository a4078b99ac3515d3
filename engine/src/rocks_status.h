// FromRocks: a RocksDB status as an llmcache Status, with the database path
// and what was being done, and the code a caller can act on (a lock held by
// another process, permissions, a full disk, corruption, ...).

#ifndef LLMCACHE_ENGINE_ROCKS_STATUS_H_
#define LLMCACHE_ENGINE_ROCKS_STATUS_H_

#include <rocksdb/status.h>

#include <string_view>

#include "llmcache/status.h"

namespace llmcache {

// Maps a RocksDB status to ours, naming `path` and what was being done.
Status FromRocks(const rocksdb::Status& s, std::string_view path,
                 std::string_view what);

}  // namespace llmcache

#endif  // LLMCACHE_ENGINE_ROCKS_STATUS_H_
