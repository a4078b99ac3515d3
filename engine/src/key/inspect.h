// Request-level checks on a parsed body: the body size limit, the required
// top-level `model` (a string) and `messages` (an array), and the facts the
// cache policy needs (RequestInfo: stream, temperature, web search, debug,
// message count).
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

// Checks the top-level requirements, sets *model to the decoded model id and
// fills *info when not null (info->model is left to the caller).
Status Inspect(const Workspace& ws, RequestInfo* info, std::string* model) {
  const Entry& root = ws.root;
  if (root.type != Type::kObject) {
    return InvalidArgumentError("request body is not a JSON object");
  }
  bool has_model = false;
  bool has_messages = false;
  std::string scratch;
  for (const Entry* m = ws.begin(root); m != ws.end(root); ++m) {
    const std::string_view key = KeyText(*m);
    if (key == "model") {
      if (m->type != Type::kString) {
        return InvalidArgumentError("request member \"model\" is not a string");
      }
      const std::string_view id = StringValue(*m, model);
      if (id.data() != model->data()) model->assign(id);
      has_model = true;
    } else if (key == "messages") {
      if (m->type != Type::kArray) {
        return InvalidArgumentError(
            "request member \"messages\" is not an array");
      }
      has_messages = true;
    }
    if (info == nullptr) continue;
    if (key == "stream") {
      info->stream = m->type == Type::kTrue;
    } else if (key == "temperature") {
      info->has_temperature = true;
      info->temperature = m->type == Type::kNumber
                              ? NumberValue(*m)
                              : std::numeric_limits<double>::quiet_NaN();
    } else if (key == "plugins") {
      info->has_web_plugin =
          AnyObjectElement(ws, *m, [&ws, &scratch](const Entry& e) {
            const Entry* id = FindMember(ws, e, "id");
            return id != nullptr && id->type == Type::kString &&
                   StringValue(*id, &scratch) == "web";
          });
    } else if (key == "web_search_options") {
      info->has_web_search_options = true;
    } else if (key == "tools") {
      info->has_web_search_tool =
          AnyObjectElement(ws, *m, [&ws, &scratch](const Entry& e) {
            const Entry* type = FindMember(ws, e, "type");
            return type != nullptr && type->type == Type::kString &&
                   StringValue(*type, &scratch).starts_with("openrouter:web");
          });
    } else if (key == "debug") {
      info->has_debug = true;
    } else if (key == "messages") {
      info->message_count = static_cast<size_t>(ws.end(*m) - ws.begin(*m));
    }
  }
  if (!has_model) {
    return InvalidArgumentError("request has no \"model\" member");
  }
  if (!has_messages) {
    return InvalidArgumentError("request has no \"messages\" member");
  }
  return Status();
}

}  // namespace
}  // namespace llmcache::key_internal

#endif  // LLMCACHE_ENGINE_KEY_INSPECT_H_
