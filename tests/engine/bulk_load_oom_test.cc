// BulkLoader under allocation failure: the k-th allocation of the thread that
// calls Add and Finish throws std::bad_alloc, for k across every allocation
// a load makes there. Nothing may escape (an escaping exception terminates
// this process), the first error is kResourceExhausted and every later call
// returns it, and the database afterwards holds exactly what the loader says
// it stored, with the right bodies; a second load then stores everything.
//
// Its own executable: it replaces the global operator new and delete.

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "llmcache/cache.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "testing/test_keys.h"

namespace {

// Allocations left before the injected failure on this thread; negative:
// none armed.
thread_local int64_t t_countdown = -1;
// Allocations counted on this thread while armed (the one that failed too).
thread_local int64_t t_counted = 0;
thread_local bool t_fired = false;

bool ShouldFail() {
  if (t_countdown < 0) return false;
  ++t_counted;
  if (t_countdown-- != 0) return false;
  t_fired = true;
  t_countdown = -1;  // one failure; what follows allocates normally
  return true;
}

void* Allocate(std::size_t n) {
  if (ShouldFail()) throw std::bad_alloc();
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}

void* AllocateAligned(std::size_t n, std::align_val_t al) {
  if (ShouldFail()) throw std::bad_alloc();
  const auto a = static_cast<std::size_t>(al);
  const std::size_t rounded = (n + a - 1) / a * a;
  if (void* p = std::aligned_alloc(a, rounded == 0 ? a : rounded)) return p;
  throw std::bad_alloc();
}

}  // namespace

void* operator new(std::size_t n) { return Allocate(n); }
void* operator new[](std::size_t n) { return Allocate(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return Allocate(n);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return Allocate(n);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new(std::size_t n, std::align_val_t al) {
  return AllocateAligned(n, al);
}
void* operator new[](std::size_t n, std::align_val_t al) {
  return AllocateAligned(n, al);
}
void* operator new(std::size_t n, std::align_val_t al,
                   const std::nothrow_t&) noexcept {
  try {
    return AllocateAligned(n, al);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, std::align_val_t al,
                     const std::nothrow_t&) noexcept {
  try {
    return AllocateAligned(n, al);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t,
                     const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t,
                       const std::nothrow_t&) noexcept {
  std::free(p);
}

namespace llmcache {
namespace {

using ::llmcache::testing::TestKey;

constexpr int kEntries = 600;
// Batches of ~40 entries: a load starts ~15 writers, each one a thread and
// a new batch on the calling thread.
constexpr size_t kBufferBytes = 24 << 10;

const std::vector<std::string> kModels = {"m/a", "m/b", "m/c", "o/d"};

struct Spec {
  RequestKey key;
  std::string body;
};

std::vector<Spec> MakeSpecs() {
  std::vector<Spec> specs;
  for (int i = 0; i < kEntries; ++i) {
    Spec s;
    s.key = TestKey(kModels[static_cast<size_t>(i) % kModels.size()],
                    static_cast<uint64_t>(i));
    s.body = "{\"n\":" + std::to_string(i) + ",\"pad\":\"" +
             std::string(static_cast<size_t>(200 + i % 400), 'x') + "\"}";
    specs.push_back(std::move(s));
  }
  return specs;
}

CacheOptions Options(const std::string& path) {
  CacheOptions o;
  o.path = path;
  o.maintenance_interval_ms = 0;
  o.max_model_column_families = 2;  // two models share the overflow family
  return o;
}

// What one load reported: the code of every call, in order, and stored().
struct Outcome {
  std::vector<StatusCode> add;  // one per entry
  StatusCode finish = StatusCode::kOk;
  uint64_t stored = 0;
  bool fired = false;
  int64_t allocations = 0;
};

// Loads `specs` into `cache` with the `fail_at`-th allocation of this thread
// (counting from 0) failing, or none when negative. No gtest macro runs while
// armed: they allocate.
Outcome Load(Cache& cache, const std::vector<Spec>& specs, int64_t fail_at) {
  Outcome out;
  out.add.reserve(specs.size());
  BulkLoadOptions lo;
  lo.max_buffer_bytes = kBufferBytes;
  InsertOptions io;
  io.flags = kEntryFlagImported;
  t_counted = 0;
  t_fired = false;
  t_countdown = fail_at;
  {
    Result<std::unique_ptr<BulkLoader>> loader = cache.NewBulkLoader(lo);
    if (!loader.ok()) {
      out.add.assign(specs.size(), loader.status().code());
      out.finish = loader.status().code();
    } else {
      for (const Spec& s : specs) {
        out.add.push_back((*loader)->Add(s.key, s.body, io).code());
      }
      Result<BulkLoadStats> st = (*loader)->Finish();
      out.finish = st.ok() ? StatusCode::kOk : st.status().code();
      out.stored = (*loader)->stored();
    }
  }  // the loader's destructor runs armed too
  t_countdown = -1;
  out.fired = t_fired;
  out.allocations = t_counted;
  return out;
}

// Checks the codes of one load: all OK, or OK up to a first
// kResourceExhausted that every later call repeats.
void ExpectCodes(const Outcome& o, int64_t fail_at) {
  size_t first_error = o.add.size();
  for (size_t i = 0; i < o.add.size(); ++i) {
    if (o.add[i] != StatusCode::kOk) {
      first_error = i;
      break;
    }
  }
  for (size_t i = first_error; i < o.add.size(); ++i) {
    ASSERT_EQ(o.add[i], StatusCode::kResourceExhausted)
        << "fail_at " << fail_at << ", Add #" << i;
  }
  if (first_error < o.add.size()) {
    EXPECT_EQ(o.finish, StatusCode::kResourceExhausted)
        << "fail_at " << fail_at;
  }
  if (o.finish == StatusCode::kOk) {
    // Only a failure the loader may absorb (no thread to make column
    // families ahead: the writer makes them) leaves everything stored.
    EXPECT_EQ(o.stored, static_cast<uint64_t>(o.add.size()))
        << "fail_at " << fail_at;
  } else {
    EXPECT_EQ(o.finish, StatusCode::kResourceExhausted)
        << "fail_at " << fail_at;
  }
}

// The number of `specs` stored in `cache`, each checked for its body.
uint64_t CountStored(Cache& cache, const std::vector<Spec>& specs,
                     int64_t fail_at) {
  uint64_t found = 0;
  for (const Spec& s : specs) {
    Result<LookupResult> r = cache.Lookup(s.key);
    EXPECT_TRUE(r.ok()) << "fail_at " << fail_at << ": "
                        << r.status().ToString();
    if (!r.ok() || !r->hit()) continue;
    ++found;
    EXPECT_EQ(r->entry->body, s.body) << "fail_at " << fail_at;
  }
  return found;
}

TEST(BulkLoadOomTest, EveryAllocationFailureIsAnErrorAndTheStoreStaysTrue) {
  const std::vector<Spec> specs = MakeSpecs();
  testing::TempDir dir("llmcache-oom");

  // A load armed with a countdown that never reaches zero: how many
  // allocations there are to fail.
  int64_t total = 0;
  {
    auto cache = Cache::Open(Options(dir.path() + "/count"));
    ASSERT_TRUE(cache.ok()) << cache.status().ToString();
    const Outcome o = Load(**cache, specs, int64_t{1} << 40);
    total = o.allocations;
    ASSERT_FALSE(o.fired);
    ASSERT_EQ(o.finish, StatusCode::kOk);
    ASSERT_EQ(o.stored, specs.size());
  }
  ASSERT_GT(total, 100) << "the load allocates on the calling thread";

  // Every one of the first 24 allocations (opening the load, the first
  // batch, the first writer), then ~24 spread over the rest, the last
  // included.
  std::vector<int64_t> points;
  for (int64_t k = 0; k < 24 && k < total; ++k) points.push_back(k);
  const int64_t step = std::max<int64_t>(1, (total - 24) / 24);
  for (int64_t k = 24; k < total; k += step) points.push_back(k);
  points.push_back(total - 1);

  int fired = 0;
  int failed_loads = 0;
  for (size_t i = 0; i < points.size(); ++i) {
    const int64_t fail_at = points[i];
    auto cache = Cache::Open(Options(dir.path() + "/db" + std::to_string(i)));
    ASSERT_TRUE(cache.ok()) << cache.status().ToString();
    const Outcome o = Load(**cache, specs, fail_at);
    ExpectCodes(o, fail_at);
    if (o.fired) ++fired;
    if (o.finish != StatusCode::kOk) ++failed_loads;
    EXPECT_EQ(CountStored(**cache, specs, fail_at), o.stored)
        << "fail_at " << fail_at;
    Result<CacheStats> stats = (*cache)->GetStats();
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->entries, o.stored) << "fail_at " << fail_at;

    // The cache is not poisoned: a new load stores everything.
    if (i % 4 != 0) continue;
    const Outcome again = Load(**cache, specs, -1);
    EXPECT_EQ(again.finish, StatusCode::kOk) << "fail_at " << fail_at;
    EXPECT_EQ(CountStored(**cache, specs, fail_at), specs.size())
        << "fail_at " << fail_at;
  }
  // The injection did happen, and most of it made loads fail (some
  // allocations may fail harmlessly, e.g. a thread the loader can do
  // without).
  std::printf(
      "%lld allocations on the calling thread; %zu failed in turn: "
      "%d fired, %d loads failed\n",
      static_cast<long long>(total), points.size(), fired, failed_loads);
  EXPECT_GE(fired, static_cast<int>(points.size()) * 9 / 10);
  EXPECT_GE(failed_loads, fired / 2);
}

}  // namespace
}  // namespace llmcache
