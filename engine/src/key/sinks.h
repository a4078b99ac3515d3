// Where the canonical emitter writes: HashSink feeds SHA-256 through a fixed
// buffer (the canonical body is never materialised), StringSink grows a
// string (KeyBuilder::Canonicalize). Both offer the same inline interface:
// Put, Write, Room/Commit.
//
// Private to the request-key code: part of engine/src/key.cc, included by it
// alone. Internal linkage (an unnamed namespace) on purpose: the pipeline is
// one translation unit, so the compiler inlines its single-call stages.

#ifndef LLMCACHE_ENGINE_KEY_SINKS_H_
#define LLMCACHE_ENGINE_KEY_SINKS_H_

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>

#include "key/compiler.h"
#include "key/json_text.h"
#include "key/sha256.h"

namespace llmcache::key_internal {
namespace {

// Buffers writes in a fixed array and feeds the hasher in large chunks; long
// slices of the body go to the hasher directly, without a copy.
class HashSink {
 public:
  explicit HashSink(Hasher* hasher) : hasher_(hasher) {}
  HashSink(const HashSink&) = delete;
  HashSink& operator=(const HashSink&) = delete;

  LLMCACHE_INLINE void Put(char c) {
    if (LLMCACHE_UNLIKELY(cur_ == buffer_ + kBufferSize)) Flush();
    *cur_++ = c;
  }

  LLMCACHE_INLINE void Write(const char* p, size_t n) {
    if (LLMCACHE_LIKELY(n <=
                        static_cast<size_t>(buffer_ + kBufferSize - cur_))) {
      CopyBytes(cur_, p, n);
      cur_ += n;
      return;
    }
    WriteSlow(p, n);
  }

  // At least `n` (<= kMaxRoom) writable bytes at the returned pointer; pass
  // the end of what was written to Commit().
  static constexpr size_t kMaxRoom = 512;
  LLMCACHE_INLINE char* Room(size_t n) {
    if (LLMCACHE_UNLIKELY(n >
                          static_cast<size_t>(buffer_ + kBufferSize - cur_))) {
      Flush();
    }
    return cur_;
  }
  LLMCACHE_INLINE void Commit(char* end) { cur_ = end; }

  void Flush() {
    hasher_->Update(buffer_, static_cast<size_t>(cur_ - buffer_));
    cur_ = buffer_;
  }

 private:
  static constexpr size_t kBufferSize = 8192;
  // A slice at least this long that does not fit in the buffer goes to the
  // hasher directly: past this size one more EVP_DigestUpdate call costs less
  // than the copy.
  static constexpr size_t kDirectThreshold = 1024;

  void WriteSlow(const char* p, size_t n) {
    Flush();
    if (n >= kDirectThreshold) {
      hasher_->Update(p, n);
    } else {
      std::memcpy(cur_, p, n);
      cur_ += n;
    }
  }

  Hasher* hasher_;
  char* cur_ = buffer_;
  char buffer_[kBufferSize];
};

// Writes into a string that it grows as needed (Canonicalize).
class StringSink {
 public:
  StringSink(std::string* out, size_t size_hint) : out_(out) {
    out_->resize(std::max<size_t>(size_hint, 64));
    cur_ = out_->data();
    end_ = cur_ + out_->size();
  }
  StringSink(const StringSink&) = delete;
  StringSink& operator=(const StringSink&) = delete;

  LLMCACHE_INLINE void Put(char c) {
    if (LLMCACHE_UNLIKELY(cur_ == end_)) Grow(1);
    *cur_++ = c;
  }

  LLMCACHE_INLINE void Write(const char* p, size_t n) {
    if (LLMCACHE_UNLIKELY(n > static_cast<size_t>(end_ - cur_))) Grow(n);
    CopyBytes(cur_, p, n);
    cur_ += n;
  }

  // As HashSink::Room / Commit.
  static constexpr size_t kMaxRoom = 512;
  LLMCACHE_INLINE char* Room(size_t n) {
    if (LLMCACHE_UNLIKELY(n > static_cast<size_t>(end_ - cur_))) Grow(n);
    return cur_;
  }
  LLMCACHE_INLINE void Commit(char* end) { cur_ = end; }

  // Trims the string to what was written.
  void Finish() { out_->resize(static_cast<size_t>(cur_ - out_->data())); }

 private:
  void Grow(size_t n) {
    const size_t used = static_cast<size_t>(cur_ - out_->data());
    out_->resize(std::max(2 * out_->size(), used + n));
    cur_ = out_->data() + used;
    end_ = out_->data() + out_->size();
  }

  std::string* out_;
  char* cur_;
  char* end_;
};

}  // namespace
}  // namespace llmcache::key_internal

#endif  // LLMCACHE_ENGINE_KEY_SINKS_H_
