// The cached endpoints on the wire (endpoint.h): the dispatch to chat
// completions (completion.cc, sse.cc, sse_replay.cc), the Responses API
// (responses_api.cc) and Anthropic Messages (messages_api.cc); SSE framing;
// and embeddings, which have no stream. Every public function catches:
// nothing thrown inside (bad_alloc, a Boost.JSON precondition) escapes.

#include "llmcache/net/endpoint.h"

#include <boost/json.hpp>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "endpoint_internal.h"
#include "llmcache/net/json_util.h"
#include "llmcache/net/sse.h"
#include "sse_util.h"

namespace llmcache::net {

namespace endpoint_internal {
namespace {

namespace json = boost::json;
using json_util::Member;

bool IsJsonSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

size_t SkipSpace(std::string_view s, size_t i) {
  while (i < s.size() && IsJsonSpace(s[i])) ++i;
  return i;
}

// The end of the JSON string whose opening quote is at `open` (the index of
// the closing quote), or npos when it is not terminated.
size_t StringEnd(std::string_view s, size_t open) {
  size_t i = open + 1;
  while (i < s.size()) {
    if (s[i] == '\\') {
      i += 2;
      continue;
    }
    if (s[i] == '"') return i;
    ++i;
  }
  return std::string_view::npos;
}

}  // namespace

std::optional<uint64_t> ToUint64(const json::value* v) {
  if (v == nullptr) return std::nullopt;
  if (v->is_uint64()) return v->get_uint64();
  if (v->is_int64()) {
    const int64_t i = v->get_int64();
    if (i < 0) return std::nullopt;
    return static_cast<uint64_t>(i);
  }
  if (v->is_double()) {
    const double d = v->get_double();
    if (!std::isfinite(d) || d < 0 || d >= 1.8e19) return std::nullopt;
    return static_cast<uint64_t>(d);
  }
  return std::nullopt;
}

std::optional<int64_t> ToInt64(const json::value* v) {
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) {
    const uint64_t u = v->get_uint64();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<int64_t>(u);
  }
  if (v->is_double()) {
    const double d = v->get_double();
    if (!std::isfinite(d) || d < -9.2e18 || d > 9.2e18) return std::nullopt;
    return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

std::optional<double> ToDouble(const json::value* v) {
  if (v == nullptr) return std::nullopt;
  if (v->is_double()) return v->get_double();
  if (v->is_int64()) return static_cast<double>(v->get_int64());
  if (v->is_uint64()) return static_cast<double>(v->get_uint64());
  return std::nullopt;
}

std::optional<ApiError> ErrorFromValue(const json::value& v) {
  if (v.is_null() || (v.is_bool() && !v.get_bool())) return std::nullopt;
  ApiError error;
  if (v.is_string()) {
    error.message = std::string(v.get_string());
    return error;
  }
  if (!v.is_object()) {
    error.message = sse_util::SerializeFinite(v);
    return error;
  }
  const json::object& o = v.get_object();
  const json::value* code = Member(o, "code");
  if (code == nullptr || code->is_null()) code = Member(o, "http_status");
  if (code != nullptr && !code->is_null()) {
    if (code->is_string()) {
      error.code_text = std::string(code->get_string());
    } else if (std::optional<int64_t> c = ToInt64(code);
               c && *c >= std::numeric_limits<int>::min() &&
               *c <= std::numeric_limits<int>::max()) {
      error.code = static_cast<int>(*c);
    }
  } else {
    // Anthropic: {"type":"overloaded_error","message":"..."}.
    error.code_text = sse_util::StringOr(o, "type");
  }
  error.message = sse_util::StringOr(o, "message");
  if (const json::value* md = Member(o, "metadata");
      md != nullptr && !md->is_null()) {
    error.metadata_json = sse_util::SerializeFinite(*md);
  }
  return error;
}

std::optional<std::string_view> TopLevelType(std::string_view data) {
  size_t i = SkipSpace(data, 0);
  if (i >= data.size() || data[i] != '{') return std::nullopt;
  ++i;
  int depth = 1;
  bool expecting_key = true;
  while (i < data.size()) {
    const char c = data[i];
    if (c == '"') {
      const size_t end = StringEnd(data, i);
      if (end == std::string_view::npos) return std::nullopt;
      const std::string_view text = data.substr(i + 1, end - i - 1);
      i = end + 1;
      if (depth != 1 || !expecting_key) continue;
      expecting_key = false;
      i = SkipSpace(data, i);
      if (i >= data.size() || data[i] != ':') return std::nullopt;
      i = SkipSpace(data, i + 1);
      if (text != "type") continue;
      if (i >= data.size() || data[i] != '"') return std::nullopt;
      const size_t value_end = StringEnd(data, i);
      if (value_end == std::string_view::npos) return std::nullopt;
      return data.substr(i + 1, value_end - i - 1);
    }
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return std::nullopt;
    } else if (c == ',' && depth == 1) {
      expecting_key = true;
    }
    ++i;
  }
  return std::nullopt;
}

Result<json::object> ParseObject(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json_util::ParseJson(body, ec);
  if (ec) {
    return InvalidArgumentError("response body is not JSON: " + ec.message());
  }
  if (!v.is_object()) {
    return InvalidArgumentError("response body is not a JSON object");
  }
  return std::move(v.get_object());
}

std::string NamedFrame(Endpoint endpoint, json::object event) {
  return SseFrame(endpoint,
                  sse_util::SerializeFinite(json::value(std::move(event))));
}

Status ObjectAccumulator::Add(std::string_view data) {
  try {
    return AddEvent(data);
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory accumulating a stream");
  } catch (const std::exception& e) {
    return InternalError(std::string("accumulating a stream: ") + e.what());
  }
}

std::string ObjectAccumulator::ToJson() const {
  try {
    return sse_util::SerializeFinite(json::value(Body()));
  } catch (const std::exception&) {
    return "{}";
  }
}

ParsedCompletion ObjectAccumulator::Parsed() const {
  try {
    ParsedCompletion c = parse_(Body());
    if (!c.error && error_) c.error = error_;
    return c;
  } catch (const std::exception&) {
    ParsedCompletion c;
    c.error = error_;
    return c;
  }
}

}  // namespace endpoint_internal

namespace {

namespace json = boost::json;
using endpoint_internal::ErrorFromValue;
using endpoint_internal::ToDouble;
using endpoint_internal::ToInt64;
using endpoint_internal::ToUint64;
using json_util::ArrayMember;
using json_util::Member;
using json_util::ObjectMember;

bool IsNumber(const json::value& v) {
  return v.is_double() || v.is_int64() || v.is_uint64();
}

// One element of an embeddings `data` array: an object with an integer
// `index` and an `embedding` that is an array of numbers or a base64 string.
bool IsEmbedding(const json::value& v) {
  if (!v.is_object()) return false;
  const json::object& o = v.get_object();
  const json::value* index = Member(o, "index");
  if (index == nullptr || !(index->is_int64() || index->is_uint64())) {
    return false;
  }
  const json::value* e = Member(o, "embedding");
  if (e == nullptr) return false;
  if (e->is_string()) return true;
  if (!e->is_array()) return false;
  for (const json::value& x : e->get_array()) {
    if (!IsNumber(x)) return false;
  }
  return true;
}

ParsedCompletion ParseEmbeddingsObject(const json::object& o) {
  ParsedCompletion c;
  c.id = sse_util::StringOr(o, "id");
  c.model = sse_util::StringOr(o, "model");
  c.provider = sse_util::StringOr(o, "provider");
  c.created = ToInt64(Member(o, "created")).value_or(0);
  if (const json::value* e = Member(o, "error")) c.error = ErrorFromValue(*e);
  if (const json::object* u = ObjectMember(o, "usage")) {
    CompletionUsage usage;
    usage.prompt_tokens = ToUint64(Member(*u, "prompt_tokens")).value_or(0);
    usage.total_tokens =
        ToUint64(Member(*u, "total_tokens")).value_or(usage.prompt_tokens);
    usage.cost = ToDouble(Member(*u, "cost"));
    c.usage = usage;
  }
  if (const json::array* data = ArrayMember(o, "data");
      data != nullptr && !data->empty()) {
    bool all = true;
    for (const json::value& item : *data) {
      if (!IsEmbedding(item)) {
        all = false;
        break;
      }
    }
    c.has_choices = all;
    c.content_null = !all;
  }
  return c;
}

// Chat completions through the EventAccumulator interface.
class ChatAccumulator final : public EventAccumulator {
 public:
  Status Add(std::string_view data) override {
    try {
      return acc_.Add(data);
    } catch (const std::bad_alloc&) {
      return ResourceExhaustedError("out of memory accumulating a stream");
    } catch (const std::exception& e) {
      return InternalError(std::string("accumulating a stream: ") + e.what());
    }
  }
  bool done() const override { return acc_.done(); }
  std::string ToJson() const override {
    try {
      return acc_.ToCompletionJson();
    } catch (const std::exception&) {
      return "{}";
    }
  }
  ParsedCompletion Parsed() const override {
    try {
      return acc_.Result();
    } catch (const std::exception&) {
      return ParsedCompletion();
    }
  }
  const std::optional<ApiError>& error() const override { return acc_.error(); }

 private:
  StreamAccumulator acc_;
};

}  // namespace

std::string_view UpstreamPath(Endpoint endpoint) {
  switch (endpoint) {
    case Endpoint::kChatCompletions:
      return "/chat/completions";
    case Endpoint::kEmbeddings:
      return "/embeddings";
    case Endpoint::kResponses:
      return "/responses";
    case Endpoint::kMessages:
      return "/messages";
  }
  return "";
}

bool NamedEvents(Endpoint endpoint) {
  return endpoint == Endpoint::kResponses || endpoint == Endpoint::kMessages;
}

std::string SseFrame(Endpoint endpoint, std::string_view data) {
  try {
    std::string frame;
    if (NamedEvents(endpoint)) {
      const std::optional<std::string_view> type =
          endpoint_internal::TopLevelType(data);
      if (!type && endpoint == Endpoint::kMessages) {
        // OpenRouter's own error envelope in the middle of a Messages
        // stream: Anthropic's clients only read named events, so it is
        // passed on as the `error` event they understand.
        if (std::optional<ApiError> e = ParseErrorEnvelope(data)) {
          boost::json::object error{{"type", "api_error"},
                                    {"message", e->message}};
          boost::json::object root{{"type", "error"},
                                   {"error", std::move(error)}};
          return "event: error\ndata: " + json_util::Serialize(root) + "\n\n";
        }
      }
      // A name with escapes would need unescaping, and one with a line
      // break would end the field early: such names are left out.
      if (type && !type->empty() &&
          type->find_first_of("\\\r\n") == std::string_view::npos) {
        frame.reserve(data.size() + type->size() + 16);
        frame += "event: ";
        frame += *type;
        frame += '\n';
      }
    }
    frame.reserve(frame.size() + data.size() + 8);
    frame += "data: ";
    frame += data;
    frame += "\n\n";
    return frame;
  } catch (const std::exception&) {
    return std::string();
  }
}

std::string_view FrameData(std::string_view frame) {
  size_t pos = 0;
  if (!frame.starts_with("data:")) {
    pos = frame.find("\ndata:");
    if (pos == std::string_view::npos) return frame;
    ++pos;
  }
  pos += 5;
  if (pos < frame.size() && frame[pos] == ' ') ++pos;
  size_t end = frame.find('\n', pos);
  if (end == std::string_view::npos) end = frame.size();
  if (end > pos && frame[end - 1] == '\r') --end;
  return frame.substr(pos, end - pos);
}

bool IsTerminalEvent(Endpoint endpoint, std::string_view data) {
  switch (endpoint) {
    case Endpoint::kChatCompletions: {
      size_t b = 0;
      size_t e = data.size();
      while (b < e && (data[b] == ' ' || data[b] == '\t' || data[b] == '\r' ||
                       data[b] == '\n')) {
        ++b;
      }
      while (e > b && (data[e - 1] == ' ' || data[e - 1] == '\t' ||
                       data[e - 1] == '\r' || data[e - 1] == '\n')) {
        --e;
      }
      return data.substr(b, e - b) == "[DONE]";
    }
    case Endpoint::kEmbeddings:
      return false;
    case Endpoint::kResponses: {
      const std::optional<std::string_view> type =
          endpoint_internal::TopLevelType(data);
      return type &&
             (*type == "response.completed" || *type == "response.incomplete" ||
              *type == "response.failed");
    }
    case Endpoint::kMessages: {
      const std::optional<std::string_view> type =
          endpoint_internal::TopLevelType(data);
      return type && *type == "message_stop";
    }
  }
  return false;
}

Result<ParsedCompletion> ParseEndpointResponse(Endpoint endpoint,
                                               std::string_view body) {
  if (endpoint == Endpoint::kChatCompletions) return ParseCompletion(body);
  try {
    Result<json::object> o = endpoint_internal::ParseObject(body);
    if (!o.ok()) return o.status();
    switch (endpoint) {
      case Endpoint::kEmbeddings:
        return ParseEmbeddingsObject(*o);
      case Endpoint::kResponses:
        return endpoint_internal::ParseResponsesObject(*o);
      case Endpoint::kMessages:
        return endpoint_internal::ParseMessagesObject(*o);
      case Endpoint::kChatCompletions:
        break;
    }
    return InvalidArgumentError("unknown endpoint");
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory parsing a response");
  } catch (const std::exception& e) {
    return InternalError(std::string("parsing a response: ") + e.what());
  }
}

std::string WhyNoAnswer(Endpoint endpoint, std::string_view body,
                        const Status& parsed, const ParsedCompletion& c) {
  try {
    if (parsed.code() == StatusCode::kInvalidArgument &&
        !json_util::IsJsonObject(body)) {
      return "a body that is not a JSON object";
    }
    if (endpoint == Endpoint::kChatCompletions && parsed.ok() &&
        !c.has_choices && !c.error && !c.usage) {
      return "neither choices, nor an error, nor usage";
    }
    return {};
  } catch (...) {  // out of memory: not told
    return {};
  }
}

std::string WhyNotCacheable(Endpoint endpoint, int http_status,
                            const ParsedCompletion& c) {
  try {
    // The chat rule's first checks (status, then any error) hold for every
    // endpoint, with the same wording.
    if (endpoint == Endpoint::kChatCompletions || http_status != 200 ||
        c.error) {
      return WhyNotCacheable(http_status, c);
    }
    switch (endpoint) {
      case Endpoint::kEmbeddings:
        return c.has_choices ? std::string() : std::string("no embeddings");
      case Endpoint::kResponses:
        return endpoint_internal::WhyNotCacheableResponses(c);
      case Endpoint::kMessages:
        return endpoint_internal::WhyNotCacheableMessages(c);
      case Endpoint::kChatCompletions:
        break;
    }
    return "unknown endpoint";
  } catch (const std::exception&) {
    return "out of memory";
  }
}

Result<std::vector<std::string>> ReplayEvents(Endpoint endpoint,
                                              std::string_view body) {
  if (endpoint == Endpoint::kChatCompletions) return ReplayAsSse(body);
  if (endpoint != Endpoint::kResponses && endpoint != Endpoint::kMessages) {
    return InvalidArgumentError("this endpoint's responses do not stream");
  }
  try {
    Result<json::object> o = endpoint_internal::ParseObject(body);
    if (!o.ok()) return o.status();
    return endpoint == Endpoint::kResponses
               ? endpoint_internal::ReplayResponses(*o)
               : endpoint_internal::ReplayMessages(*o);
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory replaying a response");
  } catch (const std::exception& e) {
    return InternalError(std::string("replaying a response: ") + e.what());
  }
}

std::unique_ptr<EventAccumulator> MakeEventAccumulator(Endpoint endpoint) {
  switch (endpoint) {
    case Endpoint::kChatCompletions:
      return std::make_unique<ChatAccumulator>();
    case Endpoint::kEmbeddings:
      return nullptr;
    case Endpoint::kResponses:
      return endpoint_internal::MakeResponsesAccumulator();
    case Endpoint::kMessages:
      return endpoint_internal::MakeMessagesAccumulator();
  }
  return nullptr;
}

}  // namespace llmcache::net
