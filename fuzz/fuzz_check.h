// FUZZ_CHECK: an invariant of a fuzz target. When it does not hold, the
// target prints what failed and aborts, which libFuzzer (and the corpus
// replayer) report as a crash with the input that caused it. Unlike assert(),
// it is on in every build type.

#ifndef LLMCACHE_FUZZ_FUZZ_CHECK_H_
#define LLMCACHE_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                   \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, \
                   __LINE__, #cond);                                       \
      std::abort();                                                        \
    }                                                                      \
  } while (false)

#endif  // LLMCACHE_FUZZ_FUZZ_CHECK_H_
