// The helpers of fake_util.h: hashing, ids, UTF-8 cutting, JSON lookups.

#include "fake_util.h"

#include <algorithm>
#include <boost/json/value.hpp>

namespace llmcache::fake::internal {
namespace {

constexpr uint64_t kFnvPrime = 1099511628211ULL;

bool IsUtf8Continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

}  // namespace

uint64_t Fnv1a(std::string_view s, uint64_t h) {
  for (unsigned char c : s) {
    h ^= c;
    h *= kFnvPrime;
  }
  return h;
}

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::string Alnum(uint64_t seed, size_t n) {
  static constexpr std::string_view kChars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string out;
  out.reserve(n);
  uint64_t s = seed;
  for (size_t i = 0; i < n; ++i) {
    s = SplitMix(s);
    out.push_back(kChars[s % kChars.size()]);
  }
  return out;
}

std::string Hex(uint64_t v, int digits) {
  static constexpr std::string_view kHex = "0123456789abcdef";
  std::string out(static_cast<size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i) {
    out[static_cast<size_t>(i)] = kHex[v & 0xf];
    v >>= 4;
  }
  return out;
}

size_t Utf8Floor(std::string_view s, size_t pos) {
  if (pos >= s.size()) return s.size();
  while (pos > 0 && IsUtf8Continuation(s[pos])) --pos;
  return pos;
}

std::string Utf8Prefix(std::string_view s, size_t max_code_points) {
  size_t code_points = 0;
  size_t i = 0;
  for (; i < s.size(); ++i) {
    if (!IsUtf8Continuation(s[i])) {
      if (code_points == max_code_points) break;
      ++code_points;
    }
  }
  return std::string(s.substr(0, i));
}

std::vector<std::string> SplitPieces(std::string_view s, int n) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  const size_t pieces =
      std::clamp<size_t>(static_cast<size_t>(std::max(n, 1)), 1, s.size());
  size_t begin = 0;
  for (size_t i = 1; i <= pieces; ++i) {
    const size_t end = Utf8Floor(s, s.size() * i / pieces);
    if (end > begin) {
      out.emplace_back(s.substr(begin, end - begin));
      begin = end;
    }
  }
  return out;
}

std::string_view BearerToken(std::string_view authorization) {
  static constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size()) return {};
  for (size_t i = 0; i < kScheme.size(); ++i) {
    const char c = authorization[i];
    const char lower =
        c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    if (lower != kScheme[i]) return {};
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  return token;
}

const boost::json::object* FindObject(const boost::json::object& o,
                                      std::string_view key) {
  const boost::json::value* v = o.if_contains(key);
  return v != nullptr ? v->if_object() : nullptr;
}

const boost::json::string* FindString(const boost::json::object& o,
                                      std::string_view key) {
  const boost::json::value* v = o.if_contains(key);
  return v != nullptr ? v->if_string() : nullptr;
}

}  // namespace llmcache::fake::internal
