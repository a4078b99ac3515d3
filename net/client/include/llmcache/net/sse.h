// Server-sent events: an incremental parser, a stream accumulator that turns
// chat-completion chunks into the complete-response shape, and the replay of
// a stored response as chunks. See docs/openrouter.md#streaming-sse.
//
// Thread safety: instances are not thread-safe; use one per stream.

#ifndef LLMCACHE_NET_SSE_H_
#define LLMCACHE_NET_SSE_H_

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/net/completion.h"
#include "llmcache/status.h"

namespace llmcache::net {

struct SseEvent {
  std::string event;  // "event:" field ("" = message)
  std::string data;   // "data:" lines joined with '\n'
  std::string id;     // "id:" field
};

// Incremental SSE parser (WHATWG rules): LF, CRLF and CR line ends; comment
// lines (":" ...) anywhere are skipped; multi-line data joined with '\n'; one
// optional space after the colon removed; an event is dispatched at a blank
// line and only if it had data. Bytes may be split anywhere between Feed
// calls, including inside a CRLF pair or a UTF-8 sequence.
class SseParser {
 public:
  // Feeds bytes; calls `on_event` for every complete event.
  void Feed(std::string_view bytes,
            const std::function<void(SseEvent&&)>& on_event);
  // At end of stream: an unterminated event is discarded (per spec); returns
  // true if there were unterminated bytes (a truncated stream).
  bool Finish();
  // Number of comment lines seen (e.g. ": OPENROUTER PROCESSING").
  size_t comments() const { return comments_; }

 private:
  std::string line_;
  SseEvent pending_;
  bool has_data_ = false;
  bool last_was_cr_ = false;
  size_t comments_ = 0;
};

// Accumulates the `data:` payloads of a chat-completion stream.
class StreamAccumulator {
 public:
  StreamAccumulator();
  ~StreamAccumulator();
  StreamAccumulator(StreamAccumulator&&) noexcept;
  StreamAccumulator& operator=(StreamAccumulator&&) noexcept;

  // Adds one event's data. "[DONE]" marks the end. A chunk with a top-level
  // `error` (mid-stream error event) is recorded in error(). Returns
  // kInvalidArgument for data that is not JSON (the stream is then unusable).
  Status Add(std::string_view data);

  bool done() const { return done_; }  // "[DONE]" seen
  const std::optional<ApiError>& error() const { return error_; }

  // The accumulated response in ParsedCompletion form: content and reasoning
  // concatenated, tool-call fragments merged by `index` (id/type/name from
  // the first fragment that has them, arguments concatenated), the last
  // non-null finish_reason / native_finish_reason, the usage chunk's usage,
  // id/model/provider/created from the chunks.
  ParsedCompletion Result() const;

  // The accumulated response as a non-streaming response body (compact JSON,
  // "object":"chat.completion", one choice with message {role, content,
  // reasoning?, tool_calls?}, finish_reason, native_finish_reason, usage as
  // received). This is what gets stored, so stream and non-stream requests
  // share entries.
  std::string ToCompletionJson() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool done_ = false;
  std::optional<ApiError> error_;
};

// Turns a stored non-streaming response body into the SSE payloads of a
// stream an OpenAI SDK accepts: a role chunk, content pieces (split into
// pieces of at most `piece_bytes`, never inside a UTF-8 sequence), reasoning,
// tool calls, a finish chunk, a usage chunk (choices: []), each as
// "data: {...}\n\n", then "data: [DONE]\n\n". Chunks carry the response's id,
// model, provider, created and "object":"chat.completion.chunk".
// kInvalidArgument if `completion_json` is not a response object.
Result<std::vector<std::string>> ReplayAsSse(std::string_view completion_json,
                                             size_t piece_bytes = 64);

}  // namespace llmcache::net

#endif  // LLMCACHE_NET_SSE_H_
