// cli/heap.h: free heap memory goes back to the system.

#include "cli/heap.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace llmcache::cli {
namespace {

// The resident set in bytes (/proc/self/statm).
size_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kGlibcHeap = false;  // the sanitizers' allocator, not glibc's
#elif defined(__GLIBC__)
constexpr bool kGlibcHeap = true;
#else
constexpr bool kGlibcHeap = false;
#endif

// Memory freed in the middle of the heap (every other block of 64 MiB of
// small ones, the way a cache's churn leaves it) stays resident until it is
// given back.
TEST(HeapTest, FreeMemoryInTheMiddleOfTheHeapIsGivenBack) {
  if (!kGlibcHeap) GTEST_SKIP() << "not glibc's allocator";
  constexpr size_t kBlock = 32 * 1024;  // under the mmap threshold
  constexpr size_t kBlocks = (64u << 20) / kBlock;
  std::vector<char*> blocks(kBlocks);
  for (char*& b : blocks) {
    b = static_cast<char*>(std::malloc(kBlock));
    ASSERT_NE(b, nullptr);
    for (size_t i = 0; i < kBlock; i += 512) b[i] = 1;  // resident
  }
  char* const top = static_cast<char*>(std::malloc(kBlock));  // pins the top
  for (size_t i = 0; i < kBlocks; i += 2) {
    std::free(blocks[i]);
    blocks[i] = nullptr;
  }
  // Below the threshold: nothing is given back (a trim regardless of it
  // fails here), what is free is told.
  const size_t before = ResidentBytes();
  const size_t seen = ReturnFreeHeap(1u << 30);
  EXPECT_GE(seen, 30u << 20);
  EXPECT_GT(ResidentBytes() + (8u << 20), before);
  // Above it: most of the 32 MiB freed leaves the resident set.
  ReturnFreeHeap(16u << 20);
  EXPECT_LT(ResidentBytes() + (20u << 20), before)
      << "before " << before << " after " << ResidentBytes();
  for (char* b : blocks) std::free(b);
  std::free(top);
}

}  // namespace
}  // namespace llmcache::cli
