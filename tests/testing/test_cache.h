// Opening a cache database for a test: the same options everywhere a test
// fills, holds or inspects a database through the engine.
//
//   auto cache = llmcache::testing::OpenTestCache(dir.Sub("db"));
//   ASSERT_OK(cache.status());
//
// Header-only.

#ifndef LLMCACHE_TESTS_TESTING_TEST_CACHE_H_
#define LLMCACHE_TESTS_TESTING_TEST_CACHE_H_

#include <memory>
#include <string>
#include <utility>

#include "llmcache/cache.h"
#include "llmcache/options.h"
#include "llmcache/status.h"

namespace llmcache::testing {

// Options for a database at `path`, without the background maintenance
// thread (tests drive maintenance and time themselves); `clock` null = the
// system clock.
inline CacheOptions TestCacheOptions(std::string path,
                                     const Clock* clock = nullptr) {
  CacheOptions o;
  o.path = std::move(path);
  o.maintenance_interval_ms = 0;
  o.clock = clock;
  return o;
}

// Opens (creating if missing) the database at `path` with TestCacheOptions.
inline Result<std::unique_ptr<Cache>> OpenTestCache(
    std::string path, const Clock* clock = nullptr) {
  return Cache::Open(TestCacheOptions(std::move(path), clock));
}

}  // namespace llmcache::testing

#endif  // LLMCACHE_TESTS_TESTING_TEST_CACHE_H_
