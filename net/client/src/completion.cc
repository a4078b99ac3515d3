// Chat-completion responses: parsing with Boost.JSON (error_code overloads,
// every entry point guarded so no exception escapes), upstream error mapping
// and the cacheability rule. Shapes: docs/openrouter.md (#response-body,
// #errors, #usage-and-cost).

#include "llmcache/net/completion.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "endpoint_internal.h"
#include "llmcache/net/json_util.h"

namespace llmcache::net {
namespace {

namespace json = boost::json;
// The JSON number readers every endpoint shares.
using endpoint_internal::ToDouble;
using endpoint_internal::ToInt64;
using endpoint_internal::ToUint64;
using json_util::ArrayMember;
using json_util::kMaxJsonDepth;
using json_util::Member;
using json_util::ObjectMember;
using json_util::ParseJson;

// The longest error text quoted from a JSON error envelope.
constexpr size_t kMaxMessageBytes = 1024;
// The longest prefix quoted from a body that is not a JSON error envelope.
constexpr size_t kMaxBodyPrefixBytes = 160;

std::string StringMember(const json::object& o, std::string_view key) {
  const json::value* v = Member(o, key);
  return v != nullptr && v->is_string() ? std::string(v->get_string())
                                        : std::string();
}

// An error value as OpenRouter sends it: normally an object {code, message,
// metadata}; availability errors may carry `http_status` instead of `code`;
// a bare string is taken as the message. null and false are "no error" (the
// OpenAI SDKs only raise on a truthy `error`).
std::optional<ApiError> ApiErrorFromValue(const json::value& v) {
  if (v.is_null() || (v.is_bool() && !v.get_bool())) return std::nullopt;
  ApiError error;
  if (v.is_string()) {
    error.message = std::string(v.get_string());
    return error;
  }
  if (!v.is_object()) {
    error.message = json_util::Serialize(v);
    return error;
  }
  const json::object& o = v.get_object();
  const json::value* code = Member(o, "code");
  if (code == nullptr || code->is_null()) code = Member(o, "http_status");
  if (code != nullptr) {
    if (code->is_string()) {
      error.code_text = std::string(code->get_string());
    } else if (std::optional<int64_t> c = ToInt64(code);
               c && *c >= std::numeric_limits<int>::min() &&
               *c <= std::numeric_limits<int>::max()) {
      error.code = static_cast<int>(*c);
    }
  }
  error.message = StringMember(o, "message");
  if (const json::value* md = Member(o, "metadata");
      md != nullptr && !md->is_null()) {
    error.metadata_json = json_util::Serialize(*md);
  }
  return error;
}

CompletionUsage UsageFromObject(const json::object& u) {
  CompletionUsage usage;
  usage.prompt_tokens = ToUint64(Member(u, "prompt_tokens")).value_or(0);
  usage.completion_tokens =
      ToUint64(Member(u, "completion_tokens")).value_or(0);
  usage.total_tokens =
      ToUint64(Member(u, "total_tokens"))
          .value_or(usage.prompt_tokens + usage.completion_tokens);
  if (const json::object* d = ObjectMember(u, "prompt_tokens_details")) {
    usage.cached_tokens = ToUint64(Member(*d, "cached_tokens")).value_or(0);
    usage.cache_write_tokens =
        ToUint64(Member(*d, "cache_write_tokens")).value_or(0);
  }
  if (const json::object* d = ObjectMember(u, "completion_tokens_details")) {
    usage.reasoning_tokens =
        ToUint64(Member(*d, "reasoning_tokens")).value_or(0);
  }
  usage.cost = ToDouble(Member(u, "cost"));
  return usage;
}

// Text of a message `content`: a string, or the concatenated text parts when
// a provider sends the array form.
void ReadContent(const json::value* v, ParsedCompletion* out) {
  if (v == nullptr || v->is_null()) return;
  if (v->is_string()) {
    out->content = std::string(v->get_string());
    out->content_null = false;
    return;
  }
  if (!v->is_array()) return;
  out->content_null = false;
  for (const json::value& part : v->get_array()) {
    if (!part.is_object()) continue;
    const json::value* text = Member(part.get_object(), "text");
    if (text != nullptr && text->is_string())
      out->content += text->get_string();
  }
}

void ReadToolCalls(const json::array& calls, std::vector<ToolCall>* out) {
  out->reserve(calls.size());
  for (size_t i = 0; i < calls.size(); ++i) {
    if (!calls[i].is_object()) continue;
    const json::object& c = calls[i].get_object();
    ToolCall call;
    const std::optional<int64_t> index = ToInt64(Member(c, "index"));
    call.index = index && *index >= 0 && *index <= 1'000'000
                     ? static_cast<int>(*index)
                     : static_cast<int>(i);
    call.id = StringMember(c, "id");
    call.type = StringMember(c, "type");
    if (const json::object* f = ObjectMember(c, "function")) {
      call.name = StringMember(*f, "name");
      const json::value* args = Member(*f, "arguments");
      if (args != nullptr && args->is_string()) {
        call.arguments = std::string(args->get_string());
      } else if (args != nullptr && !args->is_null()) {
        // Some providers send the arguments as an object; keep them as JSON.
        call.arguments = json_util::Serialize(*args);
      }
    }
    out->push_back(std::move(call));
  }
}

ParsedCompletion CompletionFromObject(const json::object& o) {
  ParsedCompletion c;
  c.id = StringMember(o, "id");
  c.model = StringMember(o, "model");
  c.provider = StringMember(o, "provider");
  c.created = ToInt64(Member(o, "created")).value_or(0);
  if (const json::value* e = Member(o, "error"))
    c.error = ApiErrorFromValue(*e);
  if (const json::value* u = Member(o, "usage");
      u != nullptr && u->is_object()) {
    c.usage = UsageFromObject(u->get_object());
  }
  const json::value* choices = Member(o, "choices");
  if (choices == nullptr || !choices->is_array() ||
      choices->get_array().empty()) {
    return c;
  }
  c.has_choices = true;
  // An error in any choice (n > 1) makes the response an error.
  for (const json::value& other : choices->get_array()) {
    if (c.error || !other.is_object()) continue;
    if (const json::value* e = Member(other.get_object(), "error")) {
      c.error = ApiErrorFromValue(*e);
    }
  }
  const json::value& first = choices->get_array().front();
  if (!first.is_object()) return c;
  const json::object& choice = first.get_object();
  c.finish_reason = StringMember(choice, "finish_reason");
  c.native_finish_reason = StringMember(choice, "native_finish_reason");
  if (const json::object* m = ObjectMember(choice, "message")) {
    ReadContent(Member(*m, "content"), &c);
    c.reasoning = StringMember(*m, "reasoning");
    if (c.reasoning.empty())
      c.reasoning = StringMember(*m, "reasoning_content");
    c.refusal = StringMember(*m, "refusal");
    if (const json::value* t = Member(*m, "tool_calls");
        t != nullptr && t->is_array()) {
      ReadToolCalls(t->get_array(), &c.tool_calls);
    }
  }
  return c;
}

// The error carried by a body: the top-level envelope, else choices[0].error.
// nullopt when the body is not JSON or carries no error.
std::optional<ApiError> FindError(std::string_view body, bool choices_too) {
  boost::system::error_code ec;
  const json::value v = ParseJson(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const json::object& o = v.get_object();
  if (const json::value* e = Member(o, "error")) {
    if (std::optional<ApiError> error = ApiErrorFromValue(*e)) return error;
  }
  if (!choices_too) return std::nullopt;
  const json::value* choices = Member(o, "choices");
  if (choices == nullptr || !choices->is_array() ||
      choices->get_array().empty() ||
      !choices->get_array().front().is_object()) {
    return std::nullopt;
  }
  const json::value* e =
      Member(choices->get_array().front().get_object(), "error");
  return e != nullptr ? ApiErrorFromValue(*e) : std::nullopt;
}

bool IsSpace(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

// Length of the valid UTF-8 sequence at the front of `s`, or 0 if invalid.
size_t Utf8SequenceLength(std::string_view s) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  size_t len = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
  } else {
    return 0;
  }
  if (s.size() < len) return 0;
  for (size_t i = 1; i < len; ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) return 0;
  }
  const auto b1 = static_cast<unsigned char>(s[1]);
  // Overlong forms, surrogates and code points above U+10FFFF.
  if ((b0 == 0xE0 && b1 < 0xA0) || (b0 == 0xED && b1 > 0x9F) ||
      (b0 == 0xF0 && b1 < 0x90) || (b0 == 0xF4 && b1 > 0x8F)) {
    return 0;
  }
  return len;
}

// Text from a remote peer made safe for a log line or a Status message: at
// most `max_bytes` bytes (plus "..." when cut), never inside a UTF-8
// sequence; control characters (C0, DEL, C1) and whitespace runs become one
// space; invalid UTF-8 becomes '?'; when `strip_tags`, HTML/XML tags are
// dropped so a proxy's error page reads as its text.
std::string Sanitize(std::string_view text, size_t max_bytes, bool strip_tags) {
  std::string out;
  out.reserve(std::min(text.size(), max_bytes) + 3);
  bool pending_space = false;
  bool in_tag = false;
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (strip_tags && in_tag) {
      if (c == '>') {
        in_tag = false;
        pending_space = true;
      }
      ++i;
      continue;
    }
    if (strip_tags && c == '<') {
      in_tag = true;
      pending_space = true;
      ++i;
      continue;
    }
    if (c < 0x20 || c == 0x7F || IsSpace(c)) {
      pending_space = true;
      ++i;
      continue;
    }
    std::string_view piece;
    size_t advance = 1;
    if (c < 0x80) {
      piece = text.substr(i, 1);
    } else {
      const size_t len = Utf8SequenceLength(text.substr(i));
      if (len == 0) {
        piece = "?";
      } else if (len == 2 && c == 0xC2 &&
                 static_cast<unsigned char>(text[i + 1]) < 0xA0) {
        // C1 control characters U+0080..U+009F (and U+00A0 NBSP).
        pending_space = true;
        i += 2;
        continue;
      } else {
        piece = text.substr(i, len);
        advance = len;
      }
    }
    const size_t space = pending_space && !out.empty() ? 1 : 0;
    if (out.size() + space + piece.size() > max_bytes) {
      out += "...";
      return out;
    }
    if (space != 0) out += ' ';
    pending_space = false;
    out += piece;
    i += advance;
  }
  return out;
}

bool LooksLikeMarkup(std::string_view body) {
  for (char ch : body) {
    if (IsSpace(static_cast<unsigned char>(ch))) continue;
    return ch == '<';
  }
  return false;
}

StatusCode CodeForHttpStatus(int status) {
  switch (status) {
    case 400:
    case 413:
    case 422:
      return StatusCode::kInvalidArgument;
    case 401:
      return StatusCode::kUnauthenticated;
    case 402:
    case 429:
      return StatusCode::kResourceExhausted;
    case 403:
      return StatusCode::kPermissionDenied;
    case 404:
      return StatusCode::kNotFound;
    case 408:
    case 504:
    case 524:
      return StatusCode::kDeadlineExceeded;
    case 500:
      return StatusCode::kInternal;
    case 502:
    case 503:
    case 529:
      return StatusCode::kUnavailable;
    default:
      return StatusCode::kUnknown;
  }
}

}  // namespace

Result<ParsedCompletion> ParseCompletion(std::string_view body) {
  try {
    boost::system::error_code ec;
    // The parsed tree lives only here (what is kept is copied out): one
    // arena, on the stack for a typical completion, not a heap allocation
    // per node.
    unsigned char buffer[4096];
    json::monotonic_resource memory(buffer, sizeof(buffer));
    const json::value v = ParseJson(body, ec, &memory);
    if (ec) {
      return InvalidArgumentError("response body is not JSON: " + ec.message());
    }
    if (!v.is_object()) {
      return InvalidArgumentError("response body is not a JSON object");
    }
    return CompletionFromObject(v.get_object());
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory parsing a response");
  } catch (const std::exception& e) {
    return InternalError(std::string("parsing a response: ") + e.what());
  }
}

std::optional<ApiError> ParseErrorEnvelope(std::string_view body) {
  try {
    return FindError(body, /*choices_too=*/false);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

Status StatusFromUpstream(int http_status, std::string_view body) {
  try {
    const std::optional<ApiError> error = FindError(body, /*choices_too=*/true);
    // A 200-with-error reports its real status in error.code
    // (docs/openrouter.md#errors-in-200).
    int status = http_status;
    if (error && http_status >= 200 && http_status < 300 &&
        error->code >= 100 && error->code <= 599) {
      status = error->code;
    }
    std::string message = "upstream " + std::to_string(status) + ": ";
    if (error) {
      std::string_view text = error->message;
      if (text.empty()) text = error->code_text;
      if (text.empty()) text = error->metadata_json;
      message += text.empty() ? std::string("(no message)")
                              : Sanitize(text, kMaxMessageBytes, false);
    } else {
      const std::string prefix =
          Sanitize(body, kMaxBodyPrefixBytes, LooksLikeMarkup(body));
      message += prefix.empty() ? std::string("(empty body)") : prefix;
    }
    return Status(CodeForHttpStatus(status), message);
  } catch (const std::exception&) {
    return Status(CodeForHttpStatus(http_status),
                  "upstream " + std::to_string(http_status));
  }
}

std::string WhyNotCacheable(int http_status, const ParsedCompletion& c) {
  if (http_status != 200) return "HTTP status " + std::to_string(http_status);
  if (c.error) {
    std::string why = "error in response";
    if (c.error->code != 0) {
      why.append(" ").append(std::to_string(c.error->code));
    }
    if (!c.error->code_text.empty()) why += " " + c.error->code_text;
    if (!c.error->message.empty()) {
      why += ": " + Sanitize(c.error->message, kMaxBodyPrefixBytes, false);
    }
    return why;
  }
  if (c.finish_reason == "error") return "finish_reason is \"error\"";
  if (!c.has_choices) return "no choices";
  if (c.content.empty() && c.refusal.empty() && c.tool_calls.empty()) {
    return "no content, no refusal and no tool calls";
  }
  return std::string();
}

Usage ToEngineUsage(const CompletionUsage& usage) {
  Usage u;
  u.prompt_tokens = usage.prompt_tokens;
  u.completion_tokens = usage.completion_tokens;
  u.cached_tokens = usage.cached_tokens;
  u.cache_write_tokens = usage.cache_write_tokens;
  if (usage.cost && std::isfinite(*usage.cost)) {
    const double nano = *usage.cost * 1e9;
    // Costs beyond ±9.2e9 USD are nonsense; clamp rather than overflow.
    constexpr double kLimit = 9.2e18;
    u.cost_nanousd = nano >= kLimit    ? static_cast<int64_t>(kLimit)
                     : nano <= -kLimit ? -static_cast<int64_t>(kLimit)
                                       : std::llround(nano);
  }
  return u;
}

}  // namespace llmcache::net
