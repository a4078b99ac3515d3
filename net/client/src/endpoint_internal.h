// What endpoint.cc, responses_api.cc and messages_api.cc share: JSON number
// and error readers, the cheap top-level "type" scan, and the per-endpoint
// entry points the dispatch in endpoint.cc calls. Private to
// llmcache::client. The functions taking parsed JSON may throw (bad_alloc);
// the public functions of endpoint.h catch.

#ifndef LLMCACHE_NET_CLIENT_SRC_ENDPOINT_INTERNAL_H_
#define LLMCACHE_NET_CLIENT_SRC_ENDPOINT_INTERNAL_H_

#include <boost/json.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/key.h"
#include "llmcache/net/completion.h"
#include "llmcache/net/endpoint.h"
#include "llmcache/status.h"

namespace llmcache::net::endpoint_internal {

// A JSON number as a non-negative integer (token counts); nullopt for
// negative, non-finite or non-numeric values.
std::optional<uint64_t> ToUint64(const boost::json::value* v);
std::optional<int64_t> ToInt64(const boost::json::value* v);
std::optional<double> ToDouble(const boost::json::value* v);

// An error value: OpenRouter's {code, message, metadata} (or http_status for
// code), OpenAI's {code: "server_error", message}, Anthropic's {type,
// message} (the type goes to code_text when there is no code); a string is
// the message. null and false are no error.
std::optional<ApiError> ErrorFromValue(const boost::json::value& v);

// The value of the top-level "type" member of the JSON object `data`,
// found by scanning (strings and nesting skipped) without parsing; nullopt
// when `data` is not an object or has no string "type". The value is the
// raw text between the quotes (event names have no escapes).
std::optional<std::string_view> TopLevelType(std::string_view data);

// Parses `body` as a JSON object (depth-limited, leading whitespace
// allowed); kInvalidArgument otherwise. Does not throw for bad input.
Result<boost::json::object> ParseObject(std::string_view body);

// One named-event frame: SseFrame of the serialized event (non-finite
// numbers written as null).
std::string NamedFrame(Endpoint endpoint, boost::json::object event);

// What the Responses and Messages accumulators share: the events of the
// endpoint go to AddEvent, the body so far comes from Body(), and the
// exceptions either may throw (bad_alloc) become a Status or an empty body
// here. `parse` reads the body (ParseResponsesObject, ParseMessagesObject).
class ObjectAccumulator : public EventAccumulator {
 public:
  Status Add(std::string_view data) final;
  bool done() const final { return done_; }
  std::string ToJson() const final;
  ParsedCompletion Parsed() const final;
  const std::optional<ApiError>& error() const final { return error_; }

 protected:
  using ParseFn = ParsedCompletion (*)(const boost::json::object&);
  explicit ObjectAccumulator(ParseFn parse) : parse_(parse) {}
  virtual Status AddEvent(std::string_view data) = 0;
  virtual boost::json::object Body() const = 0;

  bool done_ = false;  // the terminal event was seen
  std::optional<ApiError> error_;

 private:
  const ParseFn parse_;
};

// Responses API (responses_api.cc).
ParsedCompletion ParseResponsesObject(const boost::json::object& o);
std::string WhyNotCacheableResponses(const ParsedCompletion& c);
Result<std::vector<std::string>> ReplayResponses(const boost::json::object& o);
std::unique_ptr<EventAccumulator> MakeResponsesAccumulator();

// Anthropic Messages (messages_api.cc).
ParsedCompletion ParseMessagesObject(const boost::json::object& o);
std::string WhyNotCacheableMessages(const ParsedCompletion& c);
Result<std::vector<std::string>> ReplayMessages(const boost::json::object& o);
std::unique_ptr<EventAccumulator> MakeMessagesAccumulator();

}  // namespace llmcache::net::endpoint_internal

#endif  // LLMCACHE_NET_CLIENT_SRC_ENDPOINT_INTERNAL_H_
