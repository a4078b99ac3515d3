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
// `tools` array of function tools with JSON-schema parameters (one more tool
// per 4 KiB, up to four) and `tool_choice`. Members are in the order SDKs
// send them (not sorted).
//
// The result is exactly `target_bytes` long whenever that is at least the
// minimal request (under 160 bytes; smaller targets give the minimal
// request). It depends only on (target_bytes, seed) -- the same bytes on
// every platform -- and different seeds give different requests.
std::string MakeChatRequest(size_t target_bytes, uint64_t seed);

// A stored chat completion of exactly `bytes` bytes (at least 150), distinct
// per `i`: the value the store benchmarks insert and look up.
std::string MakeCompletion(uint64_t i, size_t bytes);

// A stored chat completion in the OpenAI response shape, exactly `bytes`
// bytes long (at least 512): an `id`, `created`, `model`, one assistant
// message of English-like prose (varied per `i`: the words and sentence
// lengths of MakeChatRequest), `usage` and `system_fingerprint`. The
// scaffolding is the same in every completion and the content is not, as
// in a real cache: what the compression benchmark measures.
std::string MakeEnglishCompletion(uint64_t i, size_t bytes);

}  // namespace llmcache::bench

#endif  // LLMCACHE_BENCH_BENCH_DATA_H_
