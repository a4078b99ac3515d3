// JSON helpers shared by the SSE accumulator (sse.cc) and the replay
// (sse_replay.cc). Private to llmcache::client.

#ifndef LLMCACHE_NET_CLIENT_SRC_SSE_UTIL_H_
#define LLMCACHE_NET_CLIENT_SRC_SSE_UTIL_H_

#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace llmcache::net::sse_util {

// Sets *out to the member's text and returns true if it is a string.
bool StringMember(const boost::json::object& o, std::string_view key,
                  std::string_view* out);
// The member's text, or "" when it is not a string.
std::string StringOr(const boost::json::object& o, std::string_view key);
// As ParseCompletion reads an "error" member: anything but null or false is
// an error (also {} or "": an answer marked so is never stored).
bool IsTruthyError(const boost::json::value* v);
// Splits `text` into pieces of at most `max_bytes` bytes that never end
// inside a UTF-8 sequence. A single code point longer than `max_bytes` makes
// a piece of its own (a piece is never empty).
std::vector<std::string_view> SplitUtf8(std::string_view text,
                                        size_t max_bytes);
// JSON text of `v`, with every number that is not finite written as null
// (Boost.JSON reads an out-of-range literal such as 1e999 as infinity and
// would write it back as `Infinity`, which is not JSON).
std::string SerializeFinite(boost::json::value v);
// A non-negative integer `index` (choices, tool calls, reasoning details).
std::optional<int64_t> IndexOf(const boost::json::object& o);
// A member that is present but "empty": null, "", [] or {}.
bool IsEmptyValue(const boost::json::value& v);

}  // namespace llmcache::net::sse_util

#endif  // LLMCACHE_NET_CLIENT_SRC_SSE_UTIL_H_
