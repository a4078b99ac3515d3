// Small pure helpers shared by the fake's units (private to net/fake): the
// FNV-1a hash behind its deterministic answers and cache prefixes,
// reproducible ids, UTF-8-safe cutting, the bytes-to-tokens estimate and JSON
// member lookups.

#ifndef LLMCACHE_NET_FAKE_FAKE_UTIL_H_
#define LLMCACHE_NET_FAKE_FAKE_UTIL_H_

#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llmcache::fake::internal {

inline constexpr uint64_t kFnvOffset = 14695981039346656037ULL;

// 64-bit FNV-1a of `s`, continuing from `h`.
uint64_t Fnv1a(std::string_view s, uint64_t h = kFnvOffset);

// The SplitMix64 finaliser: a well-mixed function of `x`.
uint64_t SplitMix(uint64_t x);

// `n` characters of [A-Za-z0-9], a function of `seed`.
std::string Alnum(uint64_t seed, size_t n);

// The low `digits` hex digits of `v`, lowercase, zero-padded.
std::string Hex(uint64_t v, int digits);

// The largest code point boundary <= pos (s.size() if pos is past the end).
size_t Utf8Floor(std::string_view s, size_t pos);

// The first `max_code_points` code points of `s`.
std::string Utf8Prefix(std::string_view s, size_t max_code_points);

// Splits `s` into at most `n` non-empty pieces of similar size, never inside
// a UTF-8 sequence.
std::vector<std::string> SplitPieces(std::string_view s, int n);

// The fake's token estimate: ceil(bytes / 4).
inline int64_t CeilDiv4(size_t bytes) {
  return static_cast<int64_t>((bytes + 3) / 4);
}

// The token of an Authorization value "Bearer <token>" (the scheme in any
// case); "" for another scheme or none.
std::string_view BearerToken(std::string_view authorization);

// The member `key` of `o` if it is an object (a string); nullptr otherwise.
const boost::json::object* FindObject(const boost::json::object& o,
                                      std::string_view key);
const boost::json::string* FindString(const boost::json::object& o,
                                      std::string_view key);

}  // namespace llmcache::fake::internal

#endif  // LLMCACHE_NET_FAKE_FAKE_UTIL_H_
