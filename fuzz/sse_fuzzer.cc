// Fuzz target: the SSE parser and the stream accumulator
// (llmcache/net/sse.h) on an arbitrary upstream byte stream.
//
// Input: one byte choosing how the stream is split, then the stream itself.
// Invariants checked:
//   - never a crash;
//   - the events (event, data, id), the comment count and Finish()'s
//     "truncated" answer do not depend on how the bytes are split between
//     Feed calls: whole, one byte at a time and at pseudo-random points
//     chosen by the first byte all agree;
//   - the accumulator, fed every event's data, is deterministic; what it
//     would store (ToCompletionJson) parses as a completion saying what
//     Result() says; a stream that would be stored (clean [DONE], cacheable)
//     replays (ReplayAsSse) into a stream that accumulates to the same
//     content, reasoning, tool calls and finish reason.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "llmcache/net/completion.h"
#include "llmcache/net/sse.h"

namespace {

using llmcache::net::ParsedCompletion;
using llmcache::net::SseEvent;
using llmcache::net::SseParser;
using llmcache::net::StreamAccumulator;

struct Parsed {
  std::vector<SseEvent> events;
  size_t comments = 0;
  bool truncated = false;
};

bool Same(const Parsed& a, const Parsed& b) {
  if (a.events.size() != b.events.size() || a.comments != b.comments ||
      a.truncated != b.truncated) {
    return false;
  }
  for (size_t i = 0; i < a.events.size(); ++i) {
    const SseEvent& x = a.events[i];
    const SseEvent& y = b.events[i];
    if (x.event != y.event || x.data != y.data || x.id != y.id) return false;
  }
  return true;
}

// Parses `stream` fed in pieces ending at the offsets in `cuts` (sorted).
Parsed ParseSplit(std::string_view stream, const std::vector<size_t>& cuts) {
  Parsed out;
  SseParser parser;
  const auto on_event = [&out](SseEvent&& e) {
    out.events.push_back(std::move(e));
  };
  size_t pos = 0;
  for (size_t cut : cuts) {
    parser.Feed(stream.substr(pos, cut - pos), on_event);
    pos = cut;
  }
  parser.Feed(stream.substr(pos), on_event);
  out.comments = parser.comments();
  out.truncated = parser.Finish();
  return out;
}

struct Accumulated {
  std::vector<std::string> statuses;  // of each Add, "" when OK
  bool done = false;
  bool has_error = false;
  std::string json;
  ParsedCompletion result;
};

Accumulated Accumulate(const std::vector<std::string_view>& datas) {
  Accumulated out;
  StreamAccumulator acc;
  for (std::string_view d : datas) {
    const llmcache::Status s = acc.Add(d);
    out.statuses.push_back(s.ok() ? "" : std::string(s.message()));
    if (!s.ok()) {
      FUZZ_CHECK(s.code() == llmcache::StatusCode::kInvalidArgument);
    }
  }
  out.done = acc.done();
  out.has_error = acc.error().has_value();
  out.json = acc.ToCompletionJson();
  out.result = acc.Result();
  return out;
}

// A tool call's type as replayed: a missing one is replayed as "function"
// (what the OpenAI SDKs expect).
bool SameType(std::string_view original, std::string_view replayed) {
  return original.empty() ? replayed.empty() || replayed == "function"
                          : original == replayed;
}

// `b` is `a` replayed or stored.
bool SameToolCalls(const ParsedCompletion& a, const ParsedCompletion& b) {
  if (a.tool_calls.size() != b.tool_calls.size()) return false;
  for (size_t i = 0; i < a.tool_calls.size(); ++i) {
    const auto& x = a.tool_calls[i];
    const auto& y = b.tool_calls[i];
    if (x.id != y.id || !SameType(x.type, y.type) || x.name != y.name ||
        x.arguments != y.arguments) {
      return false;
    }
  }
  return true;
}

bool SameEssentials(const ParsedCompletion& a, const ParsedCompletion& b) {
  return a.content == b.content && a.reasoning == b.reasoning &&
         SameToolCalls(a, b) && a.finish_reason == b.finish_reason &&
         a.native_finish_reason == b.native_finish_reason &&
         a.error.has_value() == b.error.has_value();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t split_seed = data[0];
  const std::string_view stream(reinterpret_cast<const char*>(data + 1),
                                size - 1);

  const Parsed whole = ParseSplit(stream, {});
  std::vector<size_t> every_byte;
  for (size_t i = 1; i < stream.size(); ++i) every_byte.push_back(i);
  FUZZ_CHECK(Same(ParseSplit(stream, every_byte), whole));
  // Cuts from a small LCG seeded by the first byte: up to 16 of them.
  std::vector<size_t> cuts;
  if (!stream.empty()) {
    uint32_t x = split_seed * 2654435761u + 1;
    const size_t n = split_seed % 17;
    for (size_t i = 0; i < n; ++i) {
      x = x * 1664525u + 1013904223u;
      cuts.push_back((x >> 8) % (stream.size() + 1));
    }
    std::sort(cuts.begin(), cuts.end());
  }
  FUZZ_CHECK(Same(ParseSplit(stream, cuts), whole));

  std::vector<std::string_view> datas;
  for (const SseEvent& e : whole.events) datas.push_back(e.data);
  const Accumulated acc = Accumulate(datas);
  const Accumulated again = Accumulate(datas);
  FUZZ_CHECK(acc.statuses == again.statuses && acc.json == again.json);

  // What would be stored is a completion saying what Result() says.
  const auto stored = llmcache::net::ParseCompletion(acc.json);
  FUZZ_CHECK(stored.ok());
  FUZZ_CHECK(SameEssentials(acc.result, *stored));

  // A stream the cached client would store replays to the same response.
  if (!acc.done || !llmcache::net::WhyNotCacheable(200, acc.result).empty()) {
    return 0;
  }
  const auto replay = llmcache::net::ReplayAsSse(acc.json, 1 + split_seed % 64);
  FUZZ_CHECK(replay.ok());
  std::string replayed_stream;
  for (const std::string& e : *replay) replayed_stream += e;
  const Parsed replayed = ParseSplit(replayed_stream, {});
  FUZZ_CHECK(!replayed.truncated);
  FUZZ_CHECK(replayed.events.size() == replay->size());
  std::vector<std::string_view> replayed_datas;
  for (const SseEvent& e : replayed.events) replayed_datas.push_back(e.data);
  const Accumulated round = Accumulate(replayed_datas);
  FUZZ_CHECK(round.done);
  for (const std::string& s : round.statuses) FUZZ_CHECK(s.empty());
  FUZZ_CHECK(SameEssentials(acc.result, round.result));
  return 0;
}
