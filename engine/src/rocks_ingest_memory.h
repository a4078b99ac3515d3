// Memory and filter pieces of the bulk loader (rocks_ingest.cc): the batch
// buffers (blocks faulted in ahead of use, an arena of copies that never
// move), the prefetch of the values the table files copy, and the Bloom
// filter of the digests a load wrote.
//
// Private to the bulk loader: included by rocks_ingest.cc and its tests
// alone (internal linkage, an unnamed namespace, on purpose).

#ifndef LLMCACHE_ENGINE_ROCKS_INGEST_MEMORY_H_
#define LLMCACHE_ENGINE_ROCKS_INGEST_MEMORY_H_

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string_view>
#include <thread>
#include <vector>

#include "llmcache/key.h"

namespace llmcache {
namespace {

// 2 MiB, aligned: one transparent huge page each where the kernel offers
// them (madvise), so that filling a batch does not fault in 4 KiB at a time.
constexpr size_t kBlockSize = size_t{2} << 20;
// Fresh blocks the pool's maker keeps waiting (BlockPool).
constexpr size_t kBlocksReady = 4;

struct FreeBlock {
  void operator()(char* p) const { std::free(p); }
};
using Block = std::unique_ptr<char[], FreeBlock>;

Block NewBlock() {
  char* p = static_cast<char*>(std::aligned_alloc(kBlockSize, kBlockSize));
  if (p == nullptr) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  (void)madvise(p, kBlockSize, MADV_HUGEPAGE);  // a hint; fine if refused
#endif
  return Block(p);
}

// Memory blocks batches take their bytes from, given back once a batch's
// table files have their entries: later batches reuse them instead of
// faulting in fresh pages and calling malloc per entry (a large part of a
// load's time in profiles). Faulting in (and zeroing) fresh memory is slow
// on virtual machines (128 MiB: 200-350 ms on the 2-core VM of the README's
// figures), so the pool makes as few blocks as it can:
// - fresh blocks are made by a thread of the pool's own, not by the thread
//   that fills batches (the one a load waits for), which keeps `ready`
//   blocks waiting, no more;
// - once it has made `soft_cap` blocks, a Get that may wait (the thread that
//   fills batches) waits for the blocks of the batch being written (Lend)
//   to come back rather than have a fresh one made. With nothing lent there
//   is nothing to wait for: it gets a fresh block.
// For a 200k-entry import in 64 MiB batches (32 blocks of entries each) the
// pool made 58-68 blocks when its maker kept a batch's worth waiting, 49-66
// when it kept 4, and makes 36 with a soft cap of 36; zeroing them was
// 15-18% of the import's CPU at first.
class BlockPool {
 public:
  BlockPool(size_t max_kept, size_t ready, size_t soft_cap)
      : max_kept_(max_kept),
        ready_(std::min(ready, max_kept)),
        soft_cap_(soft_cap) {
    free_.reserve(max_kept_);  // Put() never allocates (Arena's destructor)
    try {
      maker_ = std::thread([this] { MakeAhead(); });
    } catch (const std::exception&) {  // system_error, bad_alloc
      // No thread to be had: blocks are made when needed.
    }
  }
  ~BlockPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wanted_.notify_one();
    if (maker_.joinable()) maker_.join();
  }
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // A block: a free one, else a fresh one. `may_wait`: if the pool has
  // made `soft_cap` blocks already and some are lent, waits for them.
  Block Get(bool may_wait) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (may_wait) {
        returned_.wait(lock, [this] {
          return !free_.empty() || made_ < soft_cap_ || lent_ == 0;
        });
      }
      if (!free_.empty()) {
        Block b = std::move(free_.back());
        free_.pop_back();
        wanted_.notify_one();
        return b;
      }
      ++made_;
    }
    wanted_.notify_one();
    try {
      return NewBlock();
    } catch (const std::bad_alloc&) {
      std::lock_guard<std::mutex> lock(mu_);
      --made_;  // not made after all
      throw;
    }
  }
  // `n` blocks handed to the writer of a batch: they come back with Put.
  void Lend(size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    lent_ += n;
  }
  void Put(std::vector<Block>& blocks) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& b : blocks) {
        if (free_.size() < max_kept_) {
          free_.push_back(std::move(b));
        } else {
          b.reset();
          if (made_ > 0) --made_;  // freed, not kept
        }
      }
      lent_ -= std::min(lent_, blocks.size());
      blocks.clear();
    }
    returned_.notify_all();
  }

 private:
  void MakeAhead() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      wanted_.wait(lock, [this] {
        return stop_ || (free_.size() < ready_ &&
                         made_ < std::min(max_kept_, soft_cap_));
      });
      if (stop_) return;
      ++made_;
      lock.unlock();
      Block b;
      try {
        b = NewBlock();
      } catch (const std::bad_alloc&) {
        lock.lock();
        --made_;  // not made: Get() makes its own, and reports the error
        return;
      }
#ifdef MADV_POPULATE_WRITE
      if (madvise(b.get(), kBlockSize, MADV_POPULATE_WRITE) != 0)
#endif
        std::memset(b.get(), 0, kBlockSize);
      lock.lock();
      // A Put may have filled the free list meanwhile (free_ never grows
      // past its reserved max_kept_: Put() must not allocate).
      if (free_.size() < max_kept_) {
        free_.push_back(std::move(b));
        // A Get may be waiting: this block will do.
        returned_.notify_one();
      } else {
        b.reset();
        --made_;
      }
    }
  }

  const size_t max_kept_;
  const size_t ready_;
  const size_t soft_cap_;
  std::mutex mu_;
  std::condition_variable wanted_;    // the maker waits on it
  std::condition_variable returned_;  // a Get that may wait waits on it
  std::vector<Block> free_;
  size_t made_ = 0;  // blocks made (by either thread) and not freed
  size_t lent_ = 0;  // blocks of a batch being written, to come back
  bool stop_ = false;
  std::thread maker_;  // last: started once the rest is constructed
};

// A batch's bytes (encoded entries, keys): copies that never move, so views
// of them stay valid until the arena goes.
class Arena {
 public:
  explicit Arena(BlockPool* pool) : pool_(pool) {}
  ~Arena() { pool_->Put(blocks_); }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  std::string_view Copy(std::string_view s) { return Concat(s, {}); }
  // `a` then `b`, in one copy.
  std::string_view Concat(std::string_view a, std::string_view b) {
    const size_t size = a.size() + b.size();
    char* to = nullptr;
    if (size > kBlockSize / 4) {
      oversized_.push_back(std::make_unique_for_overwrite<char[]>(size));
      to = oversized_.back().get();
    } else {
      if (left_ < size) {
        blocks_.push_back(pool_->Get(may_wait_));
        next_ = blocks_.back().get();
        left_ = kBlockSize;
      }
      to = next_;
      next_ += size;
      left_ -= size;
    }
    if (!a.empty()) std::memcpy(to, a.data(), a.size());
    if (!b.empty()) std::memcpy(to + a.size(), b.data(), b.size());
    return std::string_view(to, size);
  }

  // Whether taking a block may wait for lent ones (BlockPool::Get): for the
  // thread that fills the batch, not for its writer.
  void set_may_wait(bool may_wait) { may_wait_ = may_wait; }
  size_t blocks() const { return blocks_.size(); }

  // Gives the blocks back to the pool and frees the oversized copies: every
  // view of the arena's bytes is invalid after.
  void Release() {
    pool_->Put(blocks_);
    oversized_.clear();
    next_ = nullptr;
    left_ = 0;
  }

 private:
  BlockPool* const pool_;
  std::vector<Block> blocks_;
  std::vector<std::unique_ptr<char[]>> oversized_;
  char* next_ = nullptr;
  size_t left_ = 0;
  bool may_wait_ = true;
};

// How far ahead of the record being written its value (and further ahead,
// its item) is prefetched: far enough to hide a cache miss, near enough
// that the lines are still there when the copy comes.
constexpr size_t kValuesAhead = 4;
constexpr size_t kItemsAhead = 8;
// Of a value, at most its first this many bytes are prefetched: a long one
// would push the next values' lines out before their turn.
constexpr size_t kPrefetchBytes = 4096;

// Asks for the cache lines of [p, p + n).
inline void PrefetchLines(const char* p, size_t n) {
  if (n == 0) return;
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + n;
  for (uintptr_t at = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{63}; at < end;
       at += 64) {
    __builtin_prefetch(reinterpret_cast<const char*>(at));
  }
}

// The digests a loader wrote into one column family: a Bloom filter that
// answers "maybe written" or "certainly not", so that the stored versions of
// the other keys are not read. Blocked (a key's six bits fall in one 64-byte
// block: one cache miss per probe), 10 bits per key (~1% false positives,
// which are only read); it grows by segments of twice the capacity, so a
// load of any size costs ~2.5 bytes per key and a probe a few segments.
class DigestFilter {
 public:
  void Add(const Digest& d) {
    if (segments_.empty() ||
        segments_.back().count == segments_.back().capacity) {
      segments_.emplace_back(segments_.empty() ? kFirstCapacity
                                               : 2 * segments_.back().capacity);
    }
    segments_.back().Add(d);
  }
  bool MayContain(const Digest& d) const {
    for (const Segment& s : segments_) {
      if (s.MayContain(d)) return true;
    }
    return false;
  }

 private:
  static constexpr size_t kFirstCapacity = size_t{1} << 16;
  static constexpr int kBitsPerKey = 10;
  static constexpr int kProbes = 6;  // 9 bits each: a bit of a 512-bit block

  struct Hashes {
    uint64_t block;
    uint64_t bits;
  };
  // SHA-256 digests are uniform already; the mix keeps any other key
  // (tests' synthetic digests) from crowding a few blocks.
  static Hashes HashesOf(const Digest& d) {
    uint64_t a, b;
    std::memcpy(&a, d.data(), 8);
    std::memcpy(&b, d.data() + 8, 8);
    auto mix = [](uint64_t x) {
      x ^= x >> 33;
      x *= 0xff51afd7ed558ccdULL;
      x ^= x >> 33;
      return x;
    };
    return {mix(a ^ (b << 1)), mix(b ^ 0x9e3779b97f4a7c15ULL)};
  }

  struct Segment {
    explicit Segment(size_t cap)
        : capacity(cap), blocks(cap * kBitsPerKey / 512 + 1) {}
    // Fewer than 2^32 blocks: the top 32 bits of `h` scaled to the count.
    size_t BlockIndex(uint64_t h) const {
      return static_cast<size_t>(((h >> 32) * blocks.size()) >> 32);
    }
    void Add(const Digest& d) {
      const Hashes h = HashesOf(d);
      uint64_t* block = blocks[BlockIndex(h.block)].data();
      for (int p = 0; p < kProbes; ++p) {
        const unsigned bit = (h.bits >> (9 * p)) & 511;
        block[bit >> 6] |= uint64_t{1} << (bit & 63);
      }
      ++count;
    }
    bool MayContain(const Digest& d) const {
      const Hashes h = HashesOf(d);
      const uint64_t* block = blocks[BlockIndex(h.block)].data();
      for (int p = 0; p < kProbes; ++p) {
        const unsigned bit = (h.bits >> (9 * p)) & 511;
        if ((block[bit >> 6] & (uint64_t{1} << (bit & 63))) == 0) return false;
      }
      return true;
    }
    size_t capacity;
    size_t count = 0;
    std::vector<std::array<uint64_t, 8>> blocks;
  };
  std::vector<Segment> segments_;
};

}  // namespace
}  // namespace llmcache

#endif  // LLMCACHE_ENGINE_ROCKS_INGEST_MEMORY_H_
