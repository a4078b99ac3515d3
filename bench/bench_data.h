// Synthetic, deterministic request bodies for the benchmarks.

#ifndef LLMCACHE_BENCH_BENCH_DATA_H_
#define LLMCACHE_BENCH_BENCH_DATA_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace llmcache::bench {

// A realistic OpenRouter chat-completions request body (compact JSON): a
// model id, `temperature: 0`, `max_tokens`, a system message, alternating
// user/assistant turns of English-like prose (with some `\n` and `\"`
// escapes) ending in a user turn, and, for bodies of 1500 bytes or more, a
// `tools` array of function tools with JSON-schema parameters. Members are in
// the order SDKs send them (not sorted).
//
// The result is exactly `target_bytes` long when target_bytes >= 256 (and at
// least the minimal request, about 180 bytes, below that). It depends only
// on (target_bytes, seed): the same arguments give the same bytes on every
// platform, different seeds give different requests.
std::string MakeChatRequest(size_t target_bytes, uint64_t seed);

}  // namespace llmcache::bench

#endif  // LLMCACHE_BENCH_BENCH_DATA_H_
