// JSON helpers shared by the SSE accumulator and the replay. See sse_util.h.

#include "sse_util.h"

#include <algorithm>
#include <cmath>

#include "llmcache/net/json_util.h"

namespace llmcache::net::sse_util {
namespace {

namespace json = boost::json;
using json_util::Member;

bool IsUtf8Continuation(char ch) {
  return (static_cast<unsigned char>(ch) & 0xC0) == 0x80;
}

void ScrubNonFinite(json::value& v) {
  if (v.is_double()) {
    if (!std::isfinite(v.get_double())) v = nullptr;
  } else if (v.is_object()) {
    for (auto& kv : v.get_object()) ScrubNonFinite(kv.value());
  } else if (v.is_array()) {
    for (json::value& e : v.get_array()) ScrubNonFinite(e);
  }
}

}  // namespace

bool StringMember(const json::object& o, std::string_view key,
                  std::string_view* out) {
  const json::value* v = Member(o, key);
  if (v == nullptr || !v->is_string()) return false;
  *out = v->get_string();
  return true;
}

std::string StringOr(const json::object& o, std::string_view key) {
  std::string_view s;
  return StringMember(o, key, &s) ? std::string(s) : std::string();
}

bool IsTruthyError(const json::value* v) {
  if (v == nullptr || v->is_null()) return false;
  if (v->is_bool()) return v->get_bool();
  return true;
}

std::vector<std::string_view> SplitUtf8(std::string_view text,
                                        size_t max_bytes) {
  std::vector<std::string_view> pieces;
  if (max_bytes == 0) max_bytes = 1;
  pieces.reserve(text.size() / max_bytes + 1);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = std::min(pos + max_bytes, text.size());
    if (end < text.size() && IsUtf8Continuation(text[end])) {
      size_t back = end;
      while (back > pos && IsUtf8Continuation(text[back])) --back;
      if (back > pos) {
        end = back;
      } else {
        while (end < text.size() && IsUtf8Continuation(text[end])) ++end;
      }
    }
    pieces.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return pieces;
}

std::string SerializeFinite(json::value v) {
  ScrubNonFinite(v);
  return json_util::Serialize(v);
}

std::optional<int64_t> IndexOf(const json::object& o) {
  const json::value* v = Member(o, "index");
  if (v == nullptr) return std::nullopt;
  if (v->is_int64() && v->get_int64() >= 0) return v->get_int64();
  if (v->is_uint64() && v->get_uint64() <= (uint64_t{1} << 62)) {
    return static_cast<int64_t>(v->get_uint64());
  }
  return std::nullopt;
}

bool IsEmptyValue(const json::value& v) {
  return v.is_null() || (v.is_string() && v.get_string().empty()) ||
         (v.is_array() && v.get_array().empty()) ||
         (v.is_object() && v.get_object().empty());
}

}  // namespace llmcache::net::sse_util
