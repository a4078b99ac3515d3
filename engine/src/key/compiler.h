// Compiler hints for the request-key hot path (engine/src/key/*.h).
//
// LLMCACHE_INLINE forces inlining of the per-token helpers: the key is
// computed per token much more than per byte (bench/key_bench.cc), so a call
// per token shows.

#ifndef LLMCACHE_ENGINE_KEY_COMPILER_H_
#define LLMCACHE_ENGINE_KEY_COMPILER_H_

#if defined(__GNUC__)
#define LLMCACHE_INLINE inline __attribute__((always_inline))
#define LLMCACHE_LIKELY(x) __builtin_expect(!!(x), 1)
#define LLMCACHE_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define LLMCACHE_INLINE inline
#define LLMCACHE_LIKELY(x) (x)
#define LLMCACHE_UNLIKELY(x) (x)
#endif

#endif  // LLMCACHE_ENGINE_KEY_COMPILER_H_
