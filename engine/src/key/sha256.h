// SHA-256 through OpenSSL 3: the implementation is fetched once per process
// (EVP_MD_fetch) and every thread reuses one EVP_MD_CTX, so a hash costs no
// provider lookup and no allocation.
//
// Private to the request-key code: part of engine/src/key.cc, included by it
// alone. Internal linkage (an unnamed namespace) on purpose: the pipeline is
// one translation unit, so the compiler inlines its single-call stages.

#ifndef LLMCACHE_ENGINE_KEY_SHA256_H_
#define LLMCACHE_ENGINE_KEY_SHA256_H_

#include <openssl/evp.h>

#include <cstddef>

#include "llmcache/key.h"

namespace llmcache::key_internal {
namespace {

// Owns the explicitly fetched SHA-256 implementation. Fetching is expensive
// (provider lookup and locking), so it happens once per process. The static
// instance is constructed after OpenSSL registered its own atexit cleanup, so
// its destructor runs before OPENSSL_cleanup.
class FetchedSha256 {
 public:
  FetchedSha256() : md_(EVP_MD_fetch(nullptr, "SHA256", nullptr)) {}
  ~FetchedSha256() { EVP_MD_free(md_); }
  FetchedSha256(const FetchedSha256&) = delete;
  FetchedSha256& operator=(const FetchedSha256&) = delete;

  const EVP_MD* get() const { return md_; }

 private:
  EVP_MD* md_;
};

const EVP_MD* Sha256Md() {
  static const FetchedSha256 md;
  return md.get();
}

// One digest context per thread, reused by every hash on that thread and
// freed when the thread exits.
class ThreadDigestCtx {
 public:
  ThreadDigestCtx() : ctx_(EVP_MD_CTX_new()) {}
  ~ThreadDigestCtx() { EVP_MD_CTX_free(ctx_); }
  ThreadDigestCtx(const ThreadDigestCtx&) = delete;
  ThreadDigestCtx& operator=(const ThreadDigestCtx&) = delete;

  EVP_MD_CTX* get() const { return ctx_; }

 private:
  EVP_MD_CTX* ctx_;
};

// A running SHA-256 on the thread's context. Any OpenSSL failure is sticky
// and reported by Finish().
class Hasher {
 public:
  Hasher() {
    thread_local ThreadDigestCtx ctx;
    ctx_ = ctx.get();
    const EVP_MD* md = Sha256Md();
    ok_ = ctx_ != nullptr && md != nullptr &&
          EVP_DigestInit_ex2(ctx_, md, nullptr) == 1;
  }

  void Update(const void* data, size_t n) {
    if (ok_ && n != 0) ok_ = EVP_DigestUpdate(ctx_, data, n) == 1;
  }

  // Returns false if any step failed; `out` is then unspecified.
  bool Finish(Digest* out) {
    if (!ok_) return false;
    unsigned int len = 0;
    return EVP_DigestFinal_ex(ctx_, out->data(), &len) == 1 &&
           len == kDigestSize;
  }

 private:
  EVP_MD_CTX* ctx_ = nullptr;
  bool ok_ = false;
};

}  // namespace
}  // namespace llmcache::key_internal

#endif  // LLMCACHE_ENGINE_KEY_SHA256_H_
