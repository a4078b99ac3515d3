#include "cli/heap.h"

#include <algorithm>
#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace llmcache::cli {

void LimitHeapArenas(size_t busy_threads) {
#if defined(__GLIBC__)
  // An operator's own setting stands.
  if (std::getenv("MALLOC_ARENA_MAX") != nullptr ||
      std::getenv("GLIBC_TUNABLES") != nullptr) {
    return;
  }
  mallopt(M_ARENA_MAX,
          static_cast<int>(std::clamp<size_t>(busy_threads, 4, 1024)));
#else
  (void)busy_threads;
#endif
}

size_t ReturnFreeHeap(size_t keep_free_bytes) {
#if defined(__GLIBC__)
  const size_t free_bytes = mallinfo2().fordblks;
  if (free_bytes > keep_free_bytes) malloc_trim(0);
  return free_bytes;
#else
  (void)keep_free_bytes;
  return 0;
#endif
}

}  // namespace llmcache::cli
