// Spans of the members and elements of JSON text that is already known to be
// valid (it was parsed, or written by llmcache), without decoding values:
// embeddings answers are mostly numbers, and copying their text as it is
// costs a fraction of parsing and printing them again (and keeps the
// upstream's exact digits). Malformed text gives nullopt, never a crash, so
// that a caller can fall back to a full parse.
// Private to llmcache::cached.

#ifndef LLMCACHE_NET_CACHED_SRC_JSON_SPANS_H_
#define LLMCACHE_NET_CACHED_SRC_JSON_SPANS_H_

#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

namespace llmcache::net::json_spans {

inline constexpr size_t kBad = std::string_view::npos;

inline size_t SkipWs(std::string_view s, size_t i) {
  while (i < s.size() &&
         (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
    ++i;
  }
  return i;
}

// The end of the string starting at s[i] == '"' (one past its closing
// quote), or kBad.
inline size_t StringEnd(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return kBad;
}

// The end of the value starting at s[i] (no leading whitespace), or kBad.
inline size_t ValueEnd(std::string_view s, size_t i) {
  if (i >= s.size()) return kBad;
  if (s[i] == '"') return StringEnd(s, i);
  if (s[i] == '{' || s[i] == '[') {
    size_t depth = 0;
    for (; i < s.size(); ++i) {
      const char c = s[i];
      if (c == '"') {
        i = StringEnd(s, i);
        if (i == kBad) return kBad;
        --i;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
    }
    return kBad;
  }
  const size_t start = i;
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' &&
         s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
    ++i;
  }
  return i > start ? i : kBad;
}

struct Member {
  std::string_view key;    // as written, without its quotes
  std::string_view value;  // the value's text
};

// The members of the object `s` (whitespace around it allowed).
inline std::optional<std::vector<Member>> Members(std::string_view s) {
  std::vector<Member> out;
  size_t i = SkipWs(s, 0);
  if (i >= s.size() || s[i] != '{') return std::nullopt;
  i = SkipWs(s, i + 1);
  if (i < s.size() && s[i] == '}') {
    return SkipWs(s, i + 1) == s.size() ? std::optional(out) : std::nullopt;
  }
  while (true) {
    if (i >= s.size() || s[i] != '"') return std::nullopt;
    const size_t key_end = StringEnd(s, i);
    if (key_end == kBad) return std::nullopt;
    const std::string_view key = s.substr(i + 1, key_end - i - 2);
    i = SkipWs(s, key_end);
    if (i >= s.size() || s[i] != ':') return std::nullopt;
    i = SkipWs(s, i + 1);
    const size_t value_end = ValueEnd(s, i);
    if (value_end == kBad) return std::nullopt;
    out.push_back(Member{key, s.substr(i, value_end - i)});
    i = SkipWs(s, value_end);
    if (i >= s.size()) return std::nullopt;
    if (s[i] == '}') break;
    if (s[i] != ',') return std::nullopt;
    i = SkipWs(s, i + 1);
  }
  if (SkipWs(s, i + 1) != s.size()) return std::nullopt;
  return out;
}

// The elements of the array `s`.
inline std::optional<std::vector<std::string_view>> Elements(
    std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = SkipWs(s, 0);
  if (i >= s.size() || s[i] != '[') return std::nullopt;
  i = SkipWs(s, i + 1);
  if (i < s.size() && s[i] == ']') {
    return SkipWs(s, i + 1) == s.size() ? std::optional(out) : std::nullopt;
  }
  while (true) {
    const size_t end = ValueEnd(s, i);
    if (end == kBad) return std::nullopt;
    out.push_back(s.substr(i, end - i));
    i = SkipWs(s, end);
    if (i >= s.size()) return std::nullopt;
    if (s[i] == ']') break;
    if (s[i] != ',') return std::nullopt;
    i = SkipWs(s, i + 1);
  }
  if (SkipWs(s, i + 1) != s.size()) return std::nullopt;
  return out;
}

// The value of member `key` among `members`; empty when absent.
inline std::string_view Find(const std::vector<Member>& members,
                             std::string_view key) {
  for (const Member& m : members) {
    if (m.key == key) return m.value;
  }
  return {};
}

}  // namespace llmcache::net::json_spans

#endif  // LLMCACHE_NET_CACHED_SRC_JSON_SPANS_H_
