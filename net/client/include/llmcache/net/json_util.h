// Small Boost.JSON helpers shared by the response, SSE and prompt-cache code,
// and by `llmcache` verbs that read stored responses: they parse with the same
// depth limit the service stores responses with. Users of this header link
// Boost::json.

#ifndef LLMCACHE_NET_JSON_UTIL_H_
#define LLMCACHE_NET_JSON_UTIL_H_

#include <boost/json.hpp>
#include <cstddef>
#include <string>
#include <string_view>

namespace llmcache::net::json_util {

namespace json = boost::json;

// Deep enough for provider metadata and tool schemas; Boost's default (32)
// is not.
inline constexpr size_t kMaxJsonDepth = 256;

// Parses `text` with kMaxJsonDepth; errors go to `ec` (never throws for bad
// input). The value's memory comes from `sp` (default: the heap).
// Each thread keeps one parser for texts up to 1 MiB: json::parse builds
// (and zeroes) a new one per call, ~4% of `llmcache import`'s CPU in
// profiles (five alternated imports of 200k entries: 208-224k entries/s
// before, median 213.5k; 209-228k/s after, median 222.7k). Larger
// texts get a parser of their own, so that no thread keeps the stack a huge
// document grew.
inline json::value ParseJson(std::string_view text,
                             boost::system::error_code& ec,
                             json::storage_ptr sp = {}) {
  json::parse_options options;
  options.max_depth = kMaxJsonDepth;
  if (text.size() > (size_t{1} << 20)) {
    return json::parse(text, ec, std::move(sp), options);
  }
  thread_local json::parser parser(json::storage_ptr(), options);
  // Whatever happens, the parser lets go of `sp` (perhaps a resource on the
  // caller's stack) and of any partial value before this returns.
  struct Reset {
    json::parser& p;
    ~Reset() { p.reset(); }
  } reset{parser};
  parser.reset(std::move(sp));
  parser.write(text.data(), text.size(), ec);
  if (ec) return nullptr;
  return parser.release();
}

// Whether `text` is one JSON object (whitespace around it allowed).
inline bool IsJsonObject(std::string_view text) {
  boost::system::error_code ec;
  const json::value v = ParseJson(text, ec);
  return !ec && v.is_object();
}

// The JSON text of `v`, as json::serialize writes it except for numbers of
// type double: the shortest digits that a correctly rounding parser reads
// back as the same double, laid out as JavaScript writes numbers (plain from
// 1e-6 up to, not including, 1e21: 0.9162871935251732, 0.0001, 0.000001;
// else 1e-7, 1.5e+21), except that a whole number keeps ".0" (2.0, -0.0,
// where JavaScript writes 2 and 0) so that it still reads as a double: an
// upstream's numbers keep their form. Boost.JSON 1.81 writes
// 9.162871935251732E-1, 1E-4 and 0E0. Infinity and NaN are written as 1e99999
// and null (1.81: "Infinity" and "NaN", which are not JSON). Recursion
// follows the value's depth (at most kMaxJsonDepth for parsed values).
std::string Serialize(const json::value& v);
// Appends the same to `out`.
void SerializeTo(const json::value& v, std::string* out);

// The member `key` of `o`, or null.
inline const json::value* Member(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() ? nullptr : &it->value();
}

// The member `key` of `o` if it is an object, or null.
inline const json::object* ObjectMember(const json::object& o,
                                        std::string_view key) {
  const json::value* v = Member(o, key);
  return v != nullptr && v->is_object() ? &v->get_object() : nullptr;
}

// The member `key` of `o` if it is an array, or null.
inline const json::array* ArrayMember(const json::object& o,
                                      std::string_view key) {
  const json::value* v = Member(o, key);
  return v != nullptr && v->is_array() ? &v->get_array() : nullptr;
}

}  // namespace llmcache::net::json_util

#endif  // LLMCACHE_NET_JSON_UTIL_H_
