// Heap hygiene for a long-running process (`llmcache serve`).
//
// glibc keeps memory freed in the middle of its heaps mapped, one heap per
// arena, and by default up to 8 arenas per core. Under the churn of a cache
// (hot-tier entries evicted and replaced, RocksDB blocks, request buffers,
// often freed on another thread than the one that made them) the proxy's
// resident set grew ~70 MiB past its budgets in free chunks nothing used.
// Elsewhere than glibc both functions do nothing.

#ifndef LLMCACHE_TOOLS_CLI_HEAP_H_
#define LLMCACHE_TOOLS_CLI_HEAP_H_

#include <cstddef>

namespace llmcache::cli {

// Caps the arenas at one per busy thread (at least 4), before those threads
// start; unless MALLOC_ARENA_MAX or GLIBC_TUNABLES says otherwise.
void LimitHeapArenas(size_t busy_threads);

// The heap's free bytes; when more than `keep_free_bytes`, first gives the
// free pages back to the system (malloc_trim), and returns what was free
// before. Both walk the free chunks of every arena under its lock: on a
// fragmented heap (100k free chunks) the trim took ~30 ms, so call it
// rarely.
size_t ReturnFreeHeap(size_t keep_free_bytes);

}  // namespace llmcache::cli

#endif  // LLMCACHE_TOOLS_CLI_HEAP_H_
