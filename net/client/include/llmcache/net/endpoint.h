// The cached endpoints on the wire: what differs between chat completions,
// embeddings, the Responses API and Anthropic Messages once a request has
// been keyed (llmcache/key.h, Endpoint): the upstream path, how a response
// body is read and judged for storing, how a live stream is accumulated into
// the body a non-streaming request gets, and how a stored body is replayed as
// the endpoint's own event stream. See docs/openrouter.md (other endpoints).
//
// Chat completions keep their own functions (completion.h, sse.h); the
// functions here dispatch to them for Endpoint::kChatCompletions, so a caller
// can be written once for every endpoint.
//
// Thread safety: free functions without shared state; an EventAccumulator
// belongs to one stream.

#ifndef LLMCACHE_NET_ENDPOINT_H_
#define LLMCACHE_NET_ENDPOINT_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/key.h"
#include "llmcache/net/completion.h"
#include "llmcache/status.h"

namespace llmcache::net {

// Path relative to the upstream base URL: "/chat/completions",
// "/embeddings", "/responses", "/messages".
std::string_view UpstreamPath(Endpoint endpoint);

// Whether the endpoint's streams name their events ("event: <type>" before
// each "data:"): true for the Responses API and Messages, whose every event's
// data is a JSON object whose "type" member is the event's name.
bool NamedEvents(Endpoint endpoint);

// One server-sent event carrying `data`: "data: <data>\n\n" for chat
// completions and embeddings; "event: <type>\ndata: <data>\n\n" for named
// events, <type> being the data's top-level "type" string (without it, when
// the data is not a JSON object, or when the name has escapes, the "event:"
// line is left out). `data` is one line (compact JSON, or "[DONE]").
std::string SseFrame(Endpoint endpoint, std::string_view data);

// The data of a frame made by SseFrame or ReplayEvents (the text after
// "data: ", without the blank line); the frame itself if it has no "data:".
std::string_view FrameData(std::string_view frame);

// Whether `data` is the event that ends a whole stream: "[DONE]" (chat
// completions), a "response.completed", "response.incomplete" or
// "response.failed" event (Responses), "message_stop" (Messages). Cheap: it
// looks at the "type" member's value without parsing the rest.
bool IsTerminalEvent(Endpoint endpoint, std::string_view data);

// Parses a complete response body of `endpoint` into its essentials:
//   chat completions  ParseCompletion;
//   embeddings        model, id, provider, usage (prompt_tokens,
//                     total_tokens, cost), error; has_choices when `data`
//                     is a non-empty array of objects each with an
//                     `embedding` (an array of numbers or a base64 string)
//                     and an integer `index`; content_null false then;
//   responses         id, model, provider, created (created_at), the text
//                     of the output messages' output_text parts (content),
//                     refusal parts (refusal), function_call items
//                     (tool_calls: call_id, name, arguments), reasoning
//                     summary text (reasoning), finish_reason = `status`
//                     ("completed", "incomplete", "failed", ...), usage
//                     (input_tokens -> prompt_tokens, output_tokens ->
//                     completion_tokens, input_tokens_details.cached_tokens,
//                     output_tokens_details.reasoning_tokens, cost), a
//                     non-null `error` object; has_choices when `output`
//                     is a non-empty array;
//   messages          id, model, provider, the text blocks' text (content),
//                     tool_use blocks (tool_calls: id, name, input as JSON
//                     text), thinking text (reasoning), finish_reason =
//                     stop_reason, usage (prompt_tokens = input_tokens +
//                     cache_read_input_tokens + cache_creation_input_tokens,
//                     completion_tokens = output_tokens, cached_tokens =
//                     cache_read_input_tokens, cache_write_tokens =
//                     cache_creation_input_tokens, cost), an error envelope
//                     ({"type":"error","error":{"type","message"}}, the
//                     error's type as code_text; also an OpenRouter
//                     {"error":{...}}); has_choices when `type` is "message"
//                     and `content` is a non-empty array.
// Every endpoint reads OpenRouter's error envelope {"error":{...}} as error.
// kInvalidArgument if the body is not a JSON object.
Result<ParsedCompletion> ParseEndpointResponse(Endpoint endpoint,
                                               std::string_view body);

// Why the body of a 200 (not streamed) is no answer at all, or "" if it is
// one (or cannot be told): not a JSON object (`parsed`: how
// ParseEndpointResponse took it, into `c`), or a chat completion with
// neither choices, nor an error, nor usage (an empty answer that was billed
// is passed on: asking again would pay again). Such a body is a broken
// upstream's (RFC 9110 15.6.3: the proxy's 502), never passed on as an
// answer. Other endpoints may answer with no content. Never throws.
std::string WhyNoAnswer(Endpoint endpoint, std::string_view body,
                        const Status& parsed, const ParsedCompletion& c);

// Why a response of `endpoint` must not be stored (empty when it may be):
// a non-200 status or an error anywhere, always; then
//   chat completions  WhyNotCacheable (completion.h);
//   embeddings        no embeddings (has_choices false);
//   responses         `status` other than "completed", or no output;
//   messages          `type` not "message" (the parse leaves has_choices
//                     false), stop_reason not one of end_turn, max_tokens,
//                     stop_sequence, tool_use, refusal (pause_turn is a
//                     turn cut short), or no content.
std::string WhyNotCacheable(Endpoint endpoint, int http_status,
                            const ParsedCompletion& c);

// A stored body replayed as the endpoint's event stream, as frames (see
// SseFrame) in order:
//   chat completions  ReplayAsSse (sse.h), ending with "data: [DONE]";
//   responses         response.created, response.in_progress (the response
//                     with status "in_progress", output [] and usage null),
//                     then per
//                     output item response.output_item.added, its content
//                     parts (response.content_part.added,
//                     response.output_text.delta with the whole text,
//                     response.output_text.annotation.added per annotation,
//                     response.output_text.done, response.content_part.done;
//                     refusals: response.refusal.delta / .done; function
//                     calls: response.function_call_arguments.delta / .done;
//                     reasoning summaries: response.reasoning_summary_*),
//                     response.output_item.done, and response.completed
//                     (response.incomplete / response.failed for a stored
//                     status of that name) carrying the stored response;
//                     an item is added with status "in_progress" and its
//                     streamed parts empty (content [], arguments "",
//                     summary []); every event with "type" first and a
//                     sequence_number counting from 0, as the OpenAI SDK
//                     expects;
//   messages          message_start (the message with empty content,
//                     stop_reason and stop_sequence null, usage with
//                     output_tokens at most 1), per content block
//                     content_block_start, content_block_delta (text_delta,
//                     input_json_delta for tool_use (and server_tool_use,
//                     mcp_tool_use), thinking_delta and signature_delta for
//                     thinking; the start carries the block with those
//                     members empty and any other member, e.g. citations,
//                     whole; redacted_thinking and other blocks whole in
//                     their start), content_block_stop, then message_delta
//                     (stop_reason, stop_sequence, the whole usage) and
//                     message_stop. Members the body lacks are not added.
// Accumulating the replay (EventAccumulator) gives the stored body back (as
// JSON values: member order aside). kInvalidArgument for a body that is not
// a response of the endpoint (e.g. an embeddings body: embeddings do not
// stream).
Result<std::vector<std::string>> ReplayEvents(Endpoint endpoint,
                                              std::string_view body);

// Accumulates the events of a live stream into the body a non-streaming
// request of the same endpoint gets:
//   chat completions  StreamAccumulator (sse.h);
//   responses         the `response` of the terminal event (whole: the
//                     upstream sends the complete response in it); before
//                     it, the latest response snapshot (response.created,
//                     .in_progress) with the items of the output_item
//                     events seen so far as its output;
//   messages          message_start's message, each block built from its
//                     start and deltas (text, tool_use input parsed from the
//                     joined partial_json, thinking and its signature), then
//                     message_delta's stop_reason, stop_sequence and usage
//                     merged in (citations_delta appends to citations);
//                     before message_start, the error event if there was
//                     one (the body a non-streaming request gets), else {}.
// An "error" event, or OpenRouter's {"error":{...}} as an event, is recorded
// as error() (the first one); it does not end the stream.
class EventAccumulator {
 public:
  virtual ~EventAccumulator() = default;
  // Adds one event's data. "ping" events, SSE comments, "[DONE]", empty
  // data, events of types this version does not know, and anything after
  // the terminal event but errors are ignored. kInvalidArgument when the
  // data is not the JSON the endpoint sends (not an object, no type, an
  // event without its payload, a delta of an unknown block, a tool input
  // that is not a JSON object).
  virtual Status Add(std::string_view data) = 0;
  // The terminal event was seen (IsTerminalEvent).
  virtual bool done() const = 0;
  // The accumulated body (valid JSON even when not done).
  virtual std::string ToJson() const = 0;
  // ParseEndpointResponse of ToJson(), with an error event's error.
  virtual ParsedCompletion Parsed() const = 0;
  // An error event or an error in the terminal event.
  virtual const std::optional<ApiError>& error() const = 0;
};

// An accumulator for `endpoint`; null for embeddings (which never stream).
std::unique_ptr<EventAccumulator> MakeEventAccumulator(Endpoint endpoint);

}  // namespace llmcache::net

#endif  // LLMCACHE_NET_ENDPOINT_H_
