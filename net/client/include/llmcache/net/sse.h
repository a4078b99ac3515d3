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

  // Bounds the memory one event takes: once the data, type and id of the
  // event being read and the line being read (field name and all) come to
  // more than `max` bytes, too_large() is true and later Feed calls do nothing
  // (the stream is unusable). Where Feed calls split the bytes does not matter.
  // Default: no bound.
  void set_max_event_bytes(size_t max) { max_event_bytes_ = max; }
  bool too_large() const { return too_large_; }

 private:
  std::string line_;
  SseEvent pending_;
  bool has_data_ = false;
  bool last_was_cr_ = false;
  bool too_large_ = false;
  size_t comments_ = 0;
  size_t max_event_bytes_ = static_cast<size_t>(-1);
};

// Accumulates the `data:` payloads of a chat-completion stream into the
// response a non-streaming request would have received
// (docs/openrouter.md#stream-handling). Every choice is kept, by its `index`.
// Per choice, delta members merge into the message: strings concatenate
// (content, refusal, reasoning, ...), arrays append (annotations, images,
// ...), other values replace, and a null only records that the member
// exists; tool-call fragments merge by `index` (id, type and name from the
// first fragment that has them, arguments concatenated);
// reasoning_details elements with the `index` of an earlier element of the
// same type continue it (text, summary and data concatenate, other members
// keep their first non-null value); logprobs.content and .refusal arrays
// concatenate. Choice and top-level members (finish_reason,
// native_finish_reason, system_fingerprint, service_tier, ...) are snapshots:
// the last non-null value wins. The usage chunk's usage is kept as received.
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

  // The accumulated response in ParsedCompletion form (the first choice's
  // content, reasoning, refusal, tool calls and finish reasons; usage;
  // id/model/provider/created from the chunks; the first error).
  ParsedCompletion Result() const;

  // The accumulated response as a non-streaming response body (compact
  // JSON, "object":"chat.completion", every choice with its `message`,
  // finish_reason, native_finish_reason and logprobs, and every other member
  // the chunks carried; a message always has role, content, refusal and
  // reasoning, null when the stream had none, as OpenRouter's do). This is
  // what gets stored, so stream and non-stream requests share entries.
  std::string ToCompletionJson() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool done_ = false;
  std::optional<ApiError> error_;
};

// Turns a stored non-streaming response body into the SSE payloads of a
// stream the OpenAI SDKs accept and reassemble into that body
// (docs/openrouter.md#stream-handling). For each choice, in order, with its
// `index`: a role chunk (role, content "" or null, and every member stored
// empty, e.g. "refusal":null, so that it survives the round trip); reasoning
// and reasoning_details, whole, in one chunk; the refusal, whole; content in
// pieces of at most `piece_bytes` (never inside a UTF-8 sequence; a text
// longer than 256 * piece_bytes in pieces of 1/256 of it, so about 256, and
// a very long answer is not hundreds of thousands of chunks), each
// carrying the logprobs of its tokens when the stored logprobs.content
// tokens spell the content (else the first piece carries them all);
// annotations, whole, then any other stored member with a value, whole; each
// tool call as a head fragment (index, id, type, name) then argument pieces;
// a finish chunk with finish_reason, native_finish_reason and the other
// stored choice members (a stored error goes to the top level of that chunk,
// the mid-stream error event the SDKs raise on). Then a usage chunk
// (choices: []) and "data: [DONE]\n\n". Members the openai-node SDK does
// not know it keeps by assignment, not concatenation: that is why they are
// sent whole. Each payload is "data: {...}\n\n"; every chunk repeats the
// response's top-level members (id, provider, model, created,
// system_fingerprint, ...) with "object":"chat.completion.chunk".
// Accumulating the result with StreamAccumulator gives the stored body back
// (up to member order, and with refusal/reasoning/native_finish_reason/
// logprobs null where the body had none).
// kInvalidArgument if `completion_json` is not a response object.
Result<std::vector<std::string>> ReplayAsSse(std::string_view completion_json,
                                             size_t piece_bytes = 64);

}  // namespace llmcache::net

#endif  // LLMCACHE_NET_SSE_H_
