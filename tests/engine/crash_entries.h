// The crash test's deterministic entries: what the writer inserts as entry i
// and what the test expects to find after a kill.

#ifndef LLMCACHE_TESTS_ENGINE_CRASH_ENTRIES_H_
#define LLMCACHE_TESTS_ENGINE_CRASH_ENTRIES_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "llmcache/entry.h"
#include "llmcache/key.h"

namespace llmcache::crash {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

struct ModelName {
  std::string_view model;
  std::string_view base;
};

constexpr std::array<ModelName, 5> kModels = {{
    {"openai/gpt-4o-mini", "openai/gpt-4o-mini"},
    {"anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4.5"},
    {"meta-llama/llama-3.3-70b-instruct:free",
     "meta-llama/llama-3.3-70b-instruct"},
    {"google/gemini-2.5-flash", "google/gemini-2.5-flash"},
    {"mistralai/mistral-large-2411", "mistralai/mistral-large-2411"},
}};

constexpr std::string_view kNamespace = "crash";
constexpr std::string_view kIdPrefix = R"({"id":"gen-crash-)";
constexpr size_t kMinBody = 200;
constexpr size_t kMaxBody = 3000;

inline const ModelName& ModelFor(uint64_t i) {
  return kModels[i % kModels.size()];
}

inline RequestKey KeyFor(uint64_t i) {
  SplitMix64 rng(i * 0xD6E8FEB86659FD93ull ^ 0x63726173685F6B65ull);
  RequestKey key;
  for (size_t w = 0; w < kDigestSize / 8; ++w) {
    const uint64_t v = rng.Next();
    for (size_t b = 0; b < 8; ++b) {
      key.digest[w * 8 + b] = static_cast<uint8_t>(v >> (8 * b));
    }
  }
  key.model = std::string(ModelFor(i).model);
  key.base_model = std::string(ModelFor(i).base);
  return key;
}

inline std::string BodyFor(uint64_t i) {
  SplitMix64 rng(i * 0x9E3779B97F4A7C15ull ^ 0x63726173685F626Full);
  const size_t size = kMinBody + rng.Next() % (kMaxBody - kMinBody + 1);
  std::string out(kIdPrefix);
  out += std::to_string(i);
  out += R"(","object":"chat.completion","model":")";
  out += ModelFor(i).base;
  out += R"(","choices":[{"index":0,"message":{"role":"assistant",)";
  out += R"("content":")";
  const std::string_view tail = R"("},"finish_reason":"stop"}]})";
  static constexpr std::array<std::string_view, 12> kWords = {
      "cache", "the", "response", "durable", "write", "ahead",
      "log",   "of",  "entries",  "survive", "kill",  "nine"};
  while (out.size() + tail.size() < size) {
    std::string_view w = kWords[rng.Next() % kWords.size()];
    const size_t room = size - tail.size() - out.size();
    out.append(w.substr(0, room));
    if (out.size() + tail.size() < size) out += ' ';
  }
  out += tail;
  return out;
}

inline Usage UsageFor(uint64_t i, size_t body_size) {
  Usage u;
  u.prompt_tokens = 50 + i % 997;
  u.completion_tokens = body_size / 4;
  u.cached_tokens = i % 3 == 0 ? 32 : 0;
  u.cache_write_tokens = i % 5 == 0 ? 16 : 0;
  u.cost_nanousd =
      static_cast<int64_t>((u.prompt_tokens + u.completion_tokens) * 150);
  return u;
}

}  // namespace llmcache::crash

#endif  // LLMCACHE_TESTS_ENGINE_CRASH_ENTRIES_H_
