// The endpoints other than chat completions (private to net/fake): POST
// /embeddings (OpenAI's shape, as OpenRouter serves it), POST /responses (the
// OpenAI Responses API) and POST /messages (the Anthropic Messages API), each
// under /api/v1 and /v1. ApiEndpoints turns one request into a Plan, like the
// Responder does for chat completions; the server (fake_server.cc) routes to
// it and executes the Plans.
//
// The files:
//   fake_endpoints.cc   ApiEndpoints: routing, auth, validation, the fault
//                       selectors, the content of each answer
//   fake_embeddings.cc  embedding inputs, vectors and their base64 form
//   fake_api_events.cc  the bodies and named-event streams of the Responses
//                       API and Messages, from one ApiAnswer
//
// Rules not spelled out in fake_openrouter.h:
//   * Text answers: "Echo from <model>: " + the first 200 code points of the
//     last user input + a sentence + a hash reference, a function of the body
//     without stream, stream_options and store. input_tokens = ceil(bytes of
//     the serialized input (Responses: `input` and `instructions`; Messages:
//     `messages` and `system`) / 4), at least 1; output_tokens = ceil(text
//     bytes / 4) (a tool call: ceil((name + arguments bytes) / 4)).
//   * `max_output_tokens` (Responses) and `max_tokens` (Messages) cut the
//     text at 4 bytes per token: status "incomplete" with incomplete_details
//     {"reason":"max_output_tokens"} (its stream ends with
//     response.incomplete), stop_reason "max_tokens".
//   * A tool call calls the first declared tool (`name`, or `function.name`
//     for chat-style declarations), else "get_weather", with {"query": <the
//     first 60 code points of the last user input>, "units": "metric"}.
//   * Cost (Responses, embeddings): the /models prices of the model
//     (fake_models.h) times the tokens.
//   * Streams start with the keep-alive comments, as chat streams do. Named
//     events: "event: <type>\ndata: <json>\n\n"; Responses events carry
//     sequence_number from 0.
//   * Faults: fake/cut keeps about half of the text deltas, fake/reset one;
//     fake/midstream-error sends two deltas and an error event; error-200
//     sends the endpoint's error shape with status 200 (streams: an error
//     event only). Non-stream midstream-error: Responses answer status
//     "failed" with an `error`; Messages answer 529 overloaded_error.
//     Messages errors use Anthropic's envelope, the others OpenRouter's.

#ifndef LLMCACHE_NET_FAKE_FAKE_ENDPOINTS_H_
#define LLMCACHE_NET_FAKE_FAKE_ENDPOINTS_H_

#include <atomic>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fake_openrouter.h"
#include "fake_responder.h"

namespace llmcache::fake::internal {

enum class ApiPath { kNone, kEmbeddings, kResponses, kMessages };

// The endpoint `path` (without the query) names, under /api/v1 or /v1.
ApiPath FindApiPath(std::string_view path);

// ------------------------------------------------------------ embeddings

// One input item: its canonical text (what its vector is derived from) and
// its token count.
struct EmbeddingItem {
  std::string canonical;  // "text:<string>" or "tokens:<i>,<j>,..."
  int64_t tokens = 0;
};

// The items of an `input` (a string, an array of strings, one token array, an
// array of token arrays); std::nullopt with *error set for anything else.
std::optional<std::vector<EmbeddingItem>> ParseEmbeddingInput(
    const boost::json::value& input, std::string* error);

// A unit-length vector of `dimensions` floats, a function of (base_model,
// dimensions, item.canonical) only: SHA-256 in counter mode.
std::vector<float> EmbeddingVector(std::string_view base_model, int dimensions,
                                   std::string_view canonical);

// The little-endian float32 bytes of `v`, base64-encoded (as OpenAI's
// encoding_format "base64").
std::string Base64Floats(const std::vector<float>& v);

// --------------------------------------------- Responses API and Messages

// One answer, the same streamed or not.
struct ApiAnswer {
  std::string id;       // resp_<hex> / msg_<hex>
  std::string item_id;  // Responses: the output item's, msg_<hex> / fc_<hex>
  int64_t created = 0;
  std::string model;  // the request's, without `:variant`
  std::string text;   // the message text (empty for a tool call)
  bool truncated = false;
  bool tool_call = false;
  std::string call_id;  // call_<alnum> / toolu_<alnum>
  std::string tool_name;
  std::string tool_arguments;  // JSON text
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  double cost = 0;
  // Responses: echoed request members (null when absent).
  boost::json::value instructions;
  boost::json::value temperature;
  boost::json::value tools;        // [] when absent
  boost::json::value tool_choice;  // "auto" when absent
};

// How a stream ends.
enum class StreamEnd {
  kComplete,
  kMidstreamError,  // two deltas, then an error event
  kCut,             // about half of the deltas, nothing after them
  kReset,           // one delta, nothing after it
};

// Responses API: the response object (status completed/incomplete), and the
// stream's events (response.created ... response.completed).
boost::json::object ResponsesObject(const ApiAnswer& a);
std::vector<std::string> ResponsesEvents(const ApiAnswer& a, int pieces,
                                         StreamEnd end);
// The error event of a Responses stream.
std::string ResponsesErrorEvent(int64_t sequence_number);

// Messages: the message object, and the stream's events (message_start ...
// message_stop).
boost::json::object MessagesObject(const ApiAnswer& a);
std::vector<std::string> MessagesEvents(const ApiAnswer& a, int pieces,
                                        StreamEnd end);
// {"type":"error","error":{"type":<type>,"message":<message>}}
boost::json::object AnthropicError(std::string_view type,
                                   std::string_view message);
// The Anthropic error type of an HTTP status (529: overloaded_error, ...).
const char* AnthropicErrorType(unsigned status);
// "event: <type>\ndata: <json>\n\n" with <type> the object's "type".
std::string NamedEvent(const boost::json::object& data);

// -------------------------------------------------------------- endpoints

// Thread-safe.
class ApiEndpoints {
 public:
  explicit ApiEndpoints(const FakeOptions& options);

  // REQUIRES: api != ApiPath::kNone.
  Plan Handle(ApiPath api, const RequestView& req);

  // Forgets the per-body request counts of fake/flaky-<status>-<n>.
  void ResetFlaky();

 private:
  Plan Embeddings(const boost::json::object& body, std::string_view base);
  Plan Responses(const boost::json::object& body, std::string_view base);
  Plan Messages(const boost::json::object& body, std::string_view base);
  // The text or tool call of a Responses or Messages request.
  ApiAnswer MakeAnswer(ApiPath api, const boost::json::object& body,
                       std::string_view base, bool tool_call);
  // The error plan of `api` for HTTP `status`.
  Plan Error(ApiPath api, unsigned status, std::string_view base,
             std::string_view message = {});
  std::string NewId(int64_t created);
  // Whether this is one of the first `count` requests with this body.
  bool FlakyFails(ApiPath api, std::string_view body, int64_t count);

  const FakeOptions options_;
  const uint64_t seed_;  // makes ids differ between runs
  std::atomic<uint64_t> counter_{0};
  std::mutex mu_;
  std::unordered_map<uint64_t, int64_t> flaky_;  // body hash -> requests seen
};

}  // namespace llmcache::fake::internal

#endif  // LLMCACHE_NET_FAKE_FAKE_ENDPOINTS_H_
