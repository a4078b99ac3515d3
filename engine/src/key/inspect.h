// Request-level checks on a parsed body: the body size limit, the required
// top-level members of each endpoint (`model`; `messages`, or the shape of
// `input`), and the facts the cache policy needs (RequestInfo: stream,
// temperature, web search, debug, message and input counts, the Responses
// API's upstream state).
//
// Private to the request-key code: part of engine/src/key.cc, included by it
// alone. Internal linkage (an unnamed namespace) on purpose: the pipeline is
// one translation unit, so the compiler inlines its single-call stages.

#ifndef LLMCACHE_ENGINE_KEY_INSPECT_H_
#define LLMCACHE_ENGINE_KEY_INSPECT_H_

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>

#include "key/json_text.h"
#include "key/workspace.h"
#include "llmcache/key.h"
#include "llmcache/status.h"

namespace llmcache::key_internal {
namespace {

// The decoded value of string entry `e`; uses *scratch if it has escapes.
std::string_view StringValue(const Entry& e, std::string* scratch) {
  const std::string_view raw(e.raw + 1, e.raw_len - 2);
  if ((e.flags & kHasEscapes) == 0) return raw;
  scratch->resize(raw.size());
  bool needs_escape = false;
  scratch->resize(DecodeValidated(raw, scratch->data(), &needs_escape));
  return *scratch;
}

Status CheckBodySize(std::string_view body, const KeyOptions& options) {
  // Entry lengths and indices are 32-bit.
  constexpr size_t kImplementationLimit = std::numeric_limits<int32_t>::max();
  const size_t limit = std::min(options.max_body_bytes, kImplementationLimit);
  if (body.size() > limit) {
    return InvalidArgumentError(
        "request body is " + std::to_string(body.size()) +
        " bytes, over max_body_bytes (" + std::to_string(limit) + ")");
  }
  return Status();
}

double NumberValue(const Entry& e) {
  double value = 0;
  if (std::from_chars(e.raw, e.raw + e.raw_len, value).ec != std::errc()) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  return value;
}

// Member `name` of object entry `object`; nullptr if absent.
const Entry* FindMember(const Workspace& ws, const Entry& object,
                        std::string_view name) {
  for (const Entry* m = ws.begin(object); m != ws.end(object); ++m) {
    if (KeyText(*m) == name) return m;
  }
  return nullptr;
}

// Whether `pred` holds for any object element of `array` (false if `array`
// is not an array).
template <typename Pred>
bool AnyObjectElement(const Workspace& ws, const Entry& array, Pred pred) {
  if (array.type != Type::kArray) return false;
  for (const Entry* e = ws.begin(array); e != ws.end(array); ++e) {
    if (e->type == Type::kObject && pred(*e)) return true;
  }
  return false;
}

// Whether a tool of this `type` searches or fetches the web (live data):
// OpenRouter's server tools ("openrouter:web_search", "openrouter:web_fetch"),
// OpenAI's ("web_search", "web_search_preview", dated variants) and
// Anthropic's ("web_search_20250305", "web_fetch_20250910").
bool IsWebSearchToolType(std::string_view type) {
  return type.starts_with("openrouter:web") || type == "web_search" ||
         type.starts_with("web_search_") || type.starts_with("web_fetch");
}

// An integer token id: a number whose canonical text (the parser writes
// integral values below 1e21 as plain integers) has only digits after an
// optional sign.
bool IsInteger(const Entry& e) {
  if (e.type != Type::kNumber || e.raw_len == 0) return false;
  const std::string_view text(e.raw, e.raw_len);
  const size_t from = text.front() == '-' ? 1 : 0;
  if (from == text.size()) return false;
  return std::all_of(text.begin() + static_cast<std::ptrdiff_t>(from),
                     text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A non-empty array of integers: one token array.
bool IsTokenArray(const Workspace& ws, const Entry& e) {
  return e.type == Type::kArray && ws.begin(e) != ws.end(e) &&
         std::all_of(ws.begin(e), ws.end(e), IsInteger);
}

// An InvalidArgument about the request, naming the endpoint unless it is chat
// completions (whose messages predate the other endpoints). Out of line: the
// error path is cold.
__attribute__((noinline, cold)) Status RequestError(Endpoint endpoint,
                                                    std::string_view what) {
  std::string msg;
  if (endpoint != Endpoint::kChatCompletions) {
    msg += EndpointName(endpoint);
    msg += ' ';
  }
  msg += "request ";
  msg += what;
  return InvalidArgumentError(msg);
}

// Checks the `input` of an embeddings request (key.h: a string, one token
// array, or a non-empty batch of strings or of token arrays) and counts its
// inputs. Out of line: Inspect is inlined into the chat hot path.
__attribute__((noinline)) Status CheckEmbeddingsInput(const Workspace& ws,
                                                      const Entry& input,
                                                      bool* batch,
                                                      size_t* count) {
  constexpr Endpoint kEp = Endpoint::kEmbeddings;
  *batch = false;
  *count = 1;
  if (input.type == Type::kString) return Status();
  if (input.type != Type::kArray) {
    return RequestError(kEp, "member \"input\" is not a string or an array");
  }
  const Entry* const first = ws.begin(input);
  const Entry* const last = ws.end(input);
  if (first == last) {
    return RequestError(kEp, "member \"input\" is an empty array");
  }
  if (first->type == Type::kNumber) {
    // One token array.
    for (const Entry* e = first; e != last; ++e) {
      if (!IsInteger(*e)) {
        return RequestError(
            kEp, "member \"input[" + std::to_string(e - first) +
                     "]\" is not an integer, as a token array's elements must "
                     "be");
      }
    }
    return Status();
  }
  const bool strings = first->type == Type::kString;
  if (!strings && first->type != Type::kArray) {
    return RequestError(kEp,
                        "member \"input[0]\" is not a string, an integer or "
                        "an array of integers");
  }
  for (const Entry* e = first; e != last; ++e) {
    if (strings ? e->type != Type::kString : !IsTokenArray(ws, *e)) {
      return RequestError(
          kEp, "member \"input[" + std::to_string(e - first) + "]\" is not " +
                   (strings ? "a string, as in a batch of strings"
                            : "a non-empty array of integers, as in a batch "
                              "of token arrays"));
    }
  }
  *batch = true;
  *count = static_cast<size_t>(last - first);
  return Status();
}

// Checks the top-level requirements of a request for `endpoint` (key.h,
// KeyBuilder::Compute), sets *model to the decoded model id and fills *info
// when not null (info->model and info->endpoint are left to the caller).
Status Inspect(const Workspace& ws, Endpoint endpoint, RequestInfo* info,
               std::string* model) {
  const Entry& root = ws.root;
  if (root.type != Type::kObject) {
    return InvalidArgumentError("request body is not a JSON object");
  }
  const bool wants_messages =
      endpoint == Endpoint::kChatCompletions || endpoint == Endpoint::kMessages;
  const bool is_responses = endpoint == Endpoint::kResponses;
  bool has_model = false;
  bool has_messages = false;
  bool has_input = false;
  std::string scratch;
  for (const Entry* m = ws.begin(root); m != ws.end(root); ++m) {
    const std::string_view key = KeyText(*m);
    if (IsName(key, "model")) {
      if (m->type != Type::kString) {
        return RequestError(endpoint, "member \"model\" is not a string");
      }
      const std::string_view id = StringValue(*m, model);
      if (id.data() != model->data()) model->assign(id);
      has_model = true;
    } else if (wants_messages && IsName(key, "messages")) {
      if (m->type != Type::kArray) {
        return RequestError(endpoint, "member \"messages\" is not an array");
      }
      has_messages = true;
      if (info != nullptr) {
        info->message_count = static_cast<size_t>(ws.end(*m) - ws.begin(*m));
      }
      continue;
    } else if (endpoint == Endpoint::kEmbeddings && IsName(key, "input")) {
      bool batch = false;
      size_t count = 0;
      if (Status s = CheckEmbeddingsInput(ws, *m, &batch, &count); !s.ok()) {
        return s;
      }
      has_input = true;
      if (info != nullptr) {
        info->input_is_batch = batch;
        info->input_count = count;
      }
      continue;
    } else if (is_responses && IsName(key, "input")) {
      if (m->type != Type::kString && m->type != Type::kArray) {
        return RequestError(endpoint,
                            "member \"input\" is not a string or an array");
      }
      if (info != nullptr) {
        info->input_count =
            m->type == Type::kString
                ? 1
                : static_cast<size_t>(ws.end(*m) - ws.begin(*m));
      }
      continue;
    }
    if (info == nullptr) continue;
    if (IsName(key, "stream")) {
      info->stream = m->type == Type::kTrue;
    } else if (IsName(key, "temperature")) {
      // null is what SDKs send for "not given": the upstream's default.
      info->has_temperature = m->type != Type::kNull;
      info->temperature = m->type == Type::kNumber
                              ? NumberValue(*m)
                              : std::numeric_limits<double>::quiet_NaN();
    } else if (IsName(key, "plugins")) {
      info->has_web_plugin =
          AnyObjectElement(ws, *m, [&ws, &scratch](const Entry& e) {
            const Entry* id = FindMember(ws, e, "id");
            return id != nullptr && id->type == Type::kString &&
                   StringValue(*id, &scratch) == "web";
          });
    } else if (IsName(key, "web_search_options")) {
      info->has_web_search_options = true;
    } else if (IsName(key, "tools")) {
      info->has_web_search_tool =
          AnyObjectElement(ws, *m, [&ws, &scratch](const Entry& e) {
            const Entry* type = FindMember(ws, e, "type");
            return type != nullptr && type->type == Type::kString &&
                   IsWebSearchToolType(StringValue(*type, &scratch));
          });
    } else if (IsName(key, "debug")) {
      info->has_debug = true;
    } else if (is_responses) {
      // State kept by the upstream (RequestInfo). Only explicit values
      // count: `store` defaults to true upstream, but an absent member says
      // nothing about what the client relies on.
      if (IsName(key, "previous_response_id") || IsName(key, "conversation")) {
        if (m->type != Type::kNull) info->has_previous_response = true;
      } else if (IsName(key, "store")) {
        info->store = m->type == Type::kTrue;
      } else if (IsName(key, "background")) {
        info->background = m->type == Type::kTrue;
      } else if (IsName(key, "prompt")) {
        // A prompt template stored upstream: it can change under its id.
        if (m->type != Type::kNull) info->has_stored_prompt = true;
      }
    }
  }
  if (!has_model) {
    return RequestError(endpoint, "has no \"model\" member");
  }
  if (wants_messages && !has_messages) {
    return RequestError(endpoint, "has no \"messages\" member");
  }
  if (endpoint == Endpoint::kEmbeddings && !has_input) {
    return RequestError(endpoint, "has no \"input\" member");
  }
  return Status();
}

}  // namespace
}  // namespace llmcache::key_internal

#endif  // LLMCACHE_ENGINE_KEY_INSPECT_H_
