// Fuzz target: the response parser (llmcache/net/completion.h) and the
// replay of a stored response as a stream (ReplayAsSse, llmcache/net/sse.h)
// on an arbitrary upstream response body.
//
// Invariants checked:
//   - never a crash; ParseCompletion is deterministic and rejects only with
//     kInvalidArgument; ParseErrorEnvelope, StatusFromUpstream,
//     WhyNotCacheable and ToEngineUsage take whatever it gives;
//   - an upstream error status never maps to OK;
//   - a body that would be stored (cacheable at 200) replays as SSE events,
//     each "data: <payload>\n\n", the last one [DONE], that parse back into
//     chunks accumulating to the same content, reasoning, tool calls, finish
//     reasons and usage tokens; and what that accumulation would store
//     replays to the same events again (a hit of a stream stored from a
//     replay is the same stream).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "llmcache/net/completion.h"
#include "llmcache/net/sse.h"

namespace {

using llmcache::StatusCode;
using llmcache::net::ParsedCompletion;

// A tool call's type as replayed: a missing one is replayed as "function"
// (what the OpenAI SDKs expect).
bool SameType(std::string_view original, std::string_view replayed) {
  return original.empty() ? replayed.empty() || replayed == "function"
                          : original == replayed;
}

// `b` is `a` replayed (and maybe stored again).
bool SameEssentials(const ParsedCompletion& a, const ParsedCompletion& b) {
  if (a.content != b.content || a.reasoning != b.reasoning ||
      a.finish_reason != b.finish_reason ||
      a.native_finish_reason != b.native_finish_reason ||
      a.tool_calls.size() != b.tool_calls.size() ||
      a.usage.has_value() != b.usage.has_value()) {
    return false;
  }
  for (size_t i = 0; i < a.tool_calls.size(); ++i) {
    const auto& x = a.tool_calls[i];
    const auto& y = b.tool_calls[i];
    if (x.id != y.id || !SameType(x.type, y.type) || x.name != y.name ||
        x.arguments != y.arguments) {
      return false;
    }
  }
  if (a.usage) {
    const auto& x = *a.usage;
    const auto& y = *b.usage;
    if (x.prompt_tokens != y.prompt_tokens ||
        x.completion_tokens != y.completion_tokens ||
        x.total_tokens != y.total_tokens ||
        x.cached_tokens != y.cached_tokens ||
        x.cache_write_tokens != y.cache_write_tokens ||
        x.reasoning_tokens != y.reasoning_tokens) {
      return false;
    }
  }
  return true;
}

// The payloads of replayed events, checking their framing.
std::vector<std::string_view> Payloads(const std::vector<std::string>& events) {
  std::vector<std::string_view> out;
  for (const std::string& e : events) {
    FUZZ_CHECK(e.starts_with("data: ") && e.ends_with("\n\n"));
    const std::string_view payload =
        std::string_view(e).substr(6, e.size() - 8);
    // One event: the payload is a single line.
    FUZZ_CHECK(payload.find_first_of("\r\n") == std::string_view::npos);
    out.push_back(payload);
  }
  FUZZ_CHECK(!out.empty() && out.back() == "[DONE]");
  return out;
}

// The events of `body`, accumulated as the cached client accumulates a live
// stream.
llmcache::net::StreamAccumulator Accumulate(
    const std::vector<std::string_view>& payloads) {
  llmcache::net::StreamAccumulator acc;
  for (std::string_view p : payloads) FUZZ_CHECK(acc.Add(p).ok());
  FUZZ_CHECK(acc.done());
  return acc;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);

  const auto parsed = llmcache::net::ParseCompletion(body);
  const auto parsed2 = llmcache::net::ParseCompletion(body);
  FUZZ_CHECK(parsed.ok() == parsed2.ok());
  (void)llmcache::net::ParseErrorEnvelope(body);
  for (int status : {200, 400, 429, 500, 503, 524, 0, 999}) {
    const llmcache::Status s = llmcache::net::StatusFromUpstream(status, body);
    if (status != 200) FUZZ_CHECK(!s.ok());
  }
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.status().code() == StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(SameEssentials(*parsed, *parsed2));
  if (parsed->usage) (void)llmcache::net::ToEngineUsage(*parsed->usage);
  FUZZ_CHECK(!llmcache::net::WhyNotCacheable(500, *parsed).empty());
  if (!llmcache::net::WhyNotCacheable(200, *parsed).empty()) {
    // Not stored, so never replayed; the replay must still not crash.
    (void)llmcache::net::ReplayAsSse(body, 1 + size % 64);
    return 0;
  }

  const size_t piece = 1 + size % 64;
  const auto replay = llmcache::net::ReplayAsSse(body, piece);
  FUZZ_CHECK(replay.ok());
  const auto acc = Accumulate(Payloads(*replay));
  FUZZ_CHECK(!acc.error().has_value());
  FUZZ_CHECK(SameEssentials(*parsed, acc.Result()));

  // Stored from the replayed stream, the response replays the same way.
  const std::string restored = acc.ToCompletionJson();
  const auto reparsed = llmcache::net::ParseCompletion(restored);
  FUZZ_CHECK(reparsed.ok());
  FUZZ_CHECK(SameEssentials(*parsed, *reparsed));
  const auto replay2 = llmcache::net::ReplayAsSse(restored, piece);
  FUZZ_CHECK(replay2.ok());
  FUZZ_CHECK(SameEssentials(*parsed, Accumulate(Payloads(*replay2)).Result()));
  return 0;
}
