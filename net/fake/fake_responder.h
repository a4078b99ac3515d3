// The responder (private to net/fake): turns one HTTP request into a Plan,
// with no I/O. It routes the two endpoints, checks the bearer token and the
// body, applies the fault the model id selects (fake_faults.h), and builds the
// completion answers, non-stream and stream, with usage and cost. The server
// (fake_server.cc) executes the Plans.
//
// Rules not spelled out in fake_openrouter.h:
//   * Content: "Echo from <model>: " + the first 200 code points of the last
//     user message + one of a few sentences (choice i: the next i-th one) +
//     a hash reference, all a function of the body without stream,
//     stream_options and usage. `max_tokens`/`max_completion_tokens`
//     truncates it (finish_reason "length"). completion_tokens, summed over
//     the choices = ceil(content bytes / 4); for a tool call,
//     ceil((name + arguments bytes) / 4); for a refusal, ceil(refusal bytes /
//     4); plus reasoning_tokens = ceil(reasoning bytes / 4) when reasoning
//     was asked for. prompt_tokens and the cache counts come from the
//     prompt-cache simulation (fake_prompt_cache.h).
//   * Cost: docs/openrouter.md (usage and cost) with the /models prices
//     (fake_models.h; unknown models: fake/echo prices; 1 h cache writes use
//     input_cache_write_1h where listed); finish_reason "error" costs 0.
//   * Stream variants of the in-band faults: `error-200` sends the keep-alive
//     comments, one chunk with a top-level `error` and finish_reason "error",
//     then ends the stream without [DONE]; `choice-error` streams half of the
//     content, then a chunk whose choice carries `error` and finish_reason
//     "error", then the usage chunk and [DONE]; non-stream `midstream-error`
//     answers like `choice-error`.
//   * Streamed, `cut` keeps about half of the content chunks and `reset` one;
//     non-stream, both send half of the body.

#ifndef LLMCACHE_NET_FAKE_FAKE_RESPONDER_H_
#define LLMCACHE_NET_FAKE_FAKE_RESPONDER_H_

#include <atomic>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "fake_openrouter.h"
#include "fake_prompt_cache.h"

namespace llmcache::fake::internal {

// Whether `path` (without the query) is the chat-completions endpoint, under
// /api/v1 or the legacy /v1.
bool IsCompletionPath(std::string_view path);

// The parts of an HTTP request the responder reads; plain views, so that the
// server stays the only unit that knows Beast.
struct RequestView {
  std::string_view method;         // as sent: "GET", "POST", ...
  std::string_view path;           // the target without the query
  std::string_view authorization;  // the Authorization value; "" if absent
  std::string_view body;
};

// What to send for one request; executed by the server.
struct Plan {
  enum class Kind {
    kComplete,  // the whole response
    kHang,      // never answer
    kCut,       // part of the body, then a clean close (FIN / no TLS notify)
    kReset,     // part of the body, then RST (SO_LINGER 0)
  };
  Kind kind = Kind::kComplete;
  unsigned status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string generation_id;  // sent as X-Generation-Id unless empty
  // Non-stream: the body (kCut/kReset send half of it after a Content-Length
  // for all of it). Stream (chunked): one SSE event per element; kCut/kReset
  // send all events, without the last chunk, and then break the connection.
  bool stream = false;
  std::string body;
  std::vector<std::string> events;
  int delay_ms = 0;      // before the status line
  int64_t delay_us = 0;  // also before the status line, after delay_ms
  int event_gap_ms = 0;  // between SSE events
  // Stream: before events[flood_at], flood_event sent flood_count times,
  // flood_gap_ms apart or as fast as the reader takes them (fake/flood-...).
  std::string flood_event;
  int64_t flood_count = 0;
  size_t flood_at = 0;
  int flood_gap_ms = 0;
  std::string model;  // the requested model, for logging
  // Embeddings: the input items of the vectors this plan sends (counted by
  // the server, as FakeOpenRouter::embedded_items()).
  int64_t embedded_items = 0;
};

// `v` as one SSE event: "data: <json>\n\n".
std::string Sse(const boost::json::value& v);
// A chunk's delta: {"role":"assistant","content":<content>}.
boost::json::object ContentDelta(std::string_view content);

// fake/flood-<mib>[-every-<ms>] (fake_flood.cc): sets the flood of a
// streamed `plan`, before choice 0's first content event: <mib> MiB more
// content in events of 64 KiB, each a copy of that event (same id, model
// and index) with a longer text and no logprobs, `gap_ms` apart. Neither
// the non-streamed body nor usage counts it. No content event: no flood.
void AddFlood(int64_t mib, int gap_ms, Plan* plan);

struct Generation;  // fake_responder.cc

// Thread-safe.
class Responder {
 public:
  explicit Responder(const FakeOptions& options);

  Plan Handle(const RequestView& req);

  // Forgets the per-body request counts of fake/flaky-<status>-<n>.
  void ResetFlaky();

 private:
  enum class Shape {
    kNormal,
    kEmpty,
    kToolCall,
    kRefusal,
    kAnnotations,
    kChoiceError
  };

  std::string NewGenerationId(int64_t created);
  Plan ErrorPlan(unsigned status, const boost::json::object& envelope);
  Plan AuthError(std::string_view message);
  Plan Completion(const RequestView& req);
  Generation MakeGeneration(const boost::json::object& body,
                            std::string_view base);
  // The stream headers and keep-alive comments, before any chunk.
  Plan StreamPlan(const Generation& g) const;
  Plan Success(const boost::json::object& body, std::string_view base,
               bool stream, Shape shape);
  Plan MidstreamError(const boost::json::object& body, std::string_view base);
  Plan Error200(const boost::json::object& body, std::string_view base,
                bool stream);
  Plan Broken(const boost::json::object& body, std::string_view base,
              bool stream, Plan::Kind kind);

  const FakeOptions options_;
  const uint64_t seed_;  // makes generation ids differ between runs
  std::atomic<uint64_t> counter_{0};
  std::mutex mu_;
  std::unordered_map<uint64_t, int64_t> flaky_;  // body hash -> requests seen
  PromptCacheSim cache_;
};

}  // namespace llmcache::fake::internal

#endif  // LLMCACHE_NET_FAKE_FAKE_RESPONDER_H_
