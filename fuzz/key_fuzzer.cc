// Fuzz target: the request key (llmcache/key.h), KeyBuilder::Compute and
// KeyBuilder::Canonicalize on arbitrary bytes.
//
// Invariants checked (each holds on correct code whatever the input):
//   - never a crash; a rejected body is kInvalidArgument with a message;
//   - Compute is deterministic (same key, same RequestInfo twice) and
//     accepts exactly what Canonicalize accepts;
//   - the digest is SHA-256 over the prefix key.h documents and the
//     canonical text, and another scope gives another digest;
//   - the canonical text is a fixed point: it canonicalises to itself and
//     keys to the same digest and facts (but `stream`, which is excluded);
//   - the canonical text is JSON to Boost.JSON, with no whitespace outside
//     strings, only the escapes key.h allows and strictly sorted, unique
//     member names at every depth;
//   - differential against Boost.JSON: where Boost.JSON reads the body too,
//     the canonical text says what the body says with the documented
//     exclusions and the single-text-part rule applied (numbers compared as
//     doubles).

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "llmcache/key.h"

namespace {

namespace json = boost::json;
using llmcache::Digest;
using llmcache::KeyBuilder;
using llmcache::KeyScope;
using llmcache::RequestInfo;

constexpr std::string_view kNs = "fuzz-ns";
constexpr std::string_view kScope = "fuzz-scope";

bool SameInfo(const RequestInfo& a, const RequestInfo& b, bool with_stream) {
  const bool same_temperature =
      a.has_temperature == b.has_temperature &&
      (!a.has_temperature ||
       (std::isnan(a.temperature) ? std::isnan(b.temperature)
                                  : a.temperature == b.temperature));
  return a.model == b.model && (!with_stream || a.stream == b.stream) &&
         same_temperature && a.has_web_plugin == b.has_web_plugin &&
         a.has_web_search_options == b.has_web_search_options &&
         a.has_web_search_tool == b.has_web_search_tool &&
         a.has_debug == b.has_debug && a.message_count == b.message_count;
}

void PutBigEndian(uint64_t v, int bytes, std::string* out) {
  for (int i = bytes - 1; i >= 0; --i) {
    out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  }
}

// The digest key.h documents, computed independently of key.cc.
Digest ExpectedDigest(std::string_view canonical) {
  std::string input("llmcache", 8);
  input.push_back('\0');
  PutBigEndian(llmcache::kKeyFormatVersion, 4, &input);
  PutBigEndian(kNs.size(), 8, &input);
  input.append(kNs);
  PutBigEndian(kScope.size(), 8, &input);
  input.append(kScope);
  input.append(canonical);
  return llmcache::Sha256(input);
}

// ---- The reference: what the canonical text must say, from Boost.JSON ----

void EraseNames(json::object& o, const std::vector<std::string>& names) {
  for (const std::string& n : names) o.erase(n);
}

// The body with the exclusions and the single-text-part rule of key.h
// applied.
void ApplyKeyRules(json::object& top, const llmcache::KeyOptions& options) {
  EraseNames(top, options.excluded_fields);
  EraseNames(top, options.excluded_block_fields);
  if (json::value* tools = top.if_contains("tools");
      tools != nullptr && tools->is_array()) {
    for (json::value& t : tools->get_array()) {
      if (t.is_object())
        EraseNames(t.get_object(), options.excluded_block_fields);
    }
  }
  json::value* messages = top.if_contains("messages");
  if (messages == nullptr || !messages->is_array()) return;
  for (json::value& m : messages->get_array()) {
    if (!m.is_object()) continue;
    json::object& message = m.get_object();
    EraseNames(message, options.excluded_block_fields);
    json::value* content = message.if_contains("content");
    if (content == nullptr || !content->is_array()) continue;
    json::array& parts = content->get_array();
    for (json::value& p : parts) {
      if (p.is_object())
        EraseNames(p.get_object(), options.excluded_block_fields);
    }
    if (parts.size() != 1 || !parts[0].is_object()) continue;
    const json::object& part = parts[0].get_object();
    const json::value* type = part.if_contains("type");
    const json::value* text = part.if_contains("text");
    if (part.size() == 2 && type != nullptr && type->is_string() &&
        type->get_string() == "text" && text != nullptr && text->is_string()) {
      json::value t = *text;
      *content = std::move(t);
    }
  }
}

double AsDouble(const json::value& v) {
  if (v.is_int64()) return static_cast<double>(v.get_int64());
  if (v.is_uint64()) return static_cast<double>(v.get_uint64());
  return v.get_double();
}

// Boost 1.81 parses doubles to within an ulp or so; the canonical form
// rewrites numbers, so both sides may be parsed slightly differently.
bool CloseNumbers(double a, double b) {
  if (a == b) return true;
  const double scale = std::max(std::fabs(a), std::fabs(b));
  return std::fabs(a - b) <= scale * 1e-14;
}

bool SameValue(const json::value& a, const json::value& b) {
  if (a.is_number() || b.is_number()) {
    if (!a.is_number() || !b.is_number()) return false;
    // Boost.JSON 1.81 reads literals with huge exponents (0e21534, which is
    // 0) as inf or nan; the key builder rejects real overflows itself.
    if (!std::isfinite(AsDouble(a))) return true;
    return CloseNumbers(AsDouble(a), AsDouble(b));
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case json::kind::object: {
      const json::object& x = a.get_object();
      const json::object& y = b.get_object();
      if (x.size() != y.size()) return false;
      for (const auto& member : x) {
        const json::value* other = y.if_contains(member.key());
        if (other == nullptr || !SameValue(member.value(), *other)) {
          return false;
        }
      }
      return true;
    }
    case json::kind::array: {
      const json::array& x = a.get_array();
      const json::array& y = b.get_array();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!SameValue(x[i], y[i])) return false;
      }
      return true;
    }
    case json::kind::string:
      return a.get_string() == b.get_string();
    default:
      return a == b;
  }
}

// Member names strictly increasing bytewise at every depth.
bool SortedUnique(const json::value& v) {
  if (v.is_array()) {
    for (const json::value& e : v.get_array()) {
      if (!SortedUnique(e)) return false;
    }
  } else if (v.is_object()) {
    std::string_view last;
    bool first = true;
    for (const auto& member : v.get_object()) {
      const std::string_view k = member.key();
      if (!first && !(last < k)) return false;
      first = false;
      last = k;
      if (!SortedUnique(member.value())) return false;
    }
  }
  return true;
}

// No JSON whitespace outside strings.
bool Compact(std::string_view text) {
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      return false;
    }
  }
  return true;
}

// Only the escapes key.h allows, \u only below 0x20 and in lowercase hex.
bool CanonicalEscapes(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x20) return false;  // raw control characters never appear
    if (c != '\\') continue;
    if (i + 1 >= text.size()) return false;
    const char e = text[++i];
    if (e == 'u') {
      if (i + 4 >= text.size()) return false;
      const std::string_view hex = text.substr(i + 1, 4);
      if (hex.substr(0, 2) != "00" || hex[2] > '1' ||
          std::strchr("0123456789abcdef", hex[3]) == nullptr) {
        return false;
      }
      const int code = (hex[2] - '0') * 16 +
                       (hex[3] <= '9' ? hex[3] - '0' : hex[3] - 'a' + 10);
      // Those with a short escape must use it.
      if (code == '\b' || code == '\f' || code == '\n' || code == '\r' ||
          code == '\t') {
        return false;
      }
      i += 4;
    } else if (std::strchr("\"\\bfnrt", e) == nullptr || e == '\0') {
      return false;
    }
  }
  return true;
}

json::value ParseBoost(std::string_view text, boost::system::error_code& ec) {
  json::parse_options options;
  options.max_depth = 1024;
  return json::parse(text, ec, json::storage_ptr(), options);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const KeyBuilder* const keys = new KeyBuilder();
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const KeyScope scope{kNs, kScope};

  RequestInfo info1, info2;
  const auto key1 = keys->Compute(body, scope, &info1);
  const auto key2 = keys->Compute(body, scope, &info2);
  const auto canonical = keys->Canonicalize(body);
  FUZZ_CHECK(key1.ok() == key2.ok());
  FUZZ_CHECK(key1.ok() == canonical.ok());
  if (!key1.ok()) {
    FUZZ_CHECK(key1.status().code() == llmcache::StatusCode::kInvalidArgument);
    FUZZ_CHECK(!key1.status().message().empty());
    FUZZ_CHECK(key2.status() == key1.status());
    FUZZ_CHECK(canonical.status().code() ==
               llmcache::StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(key1->digest == key2->digest);
  FUZZ_CHECK(key1->model == key2->model && key1->model == info1.model);
  FUZZ_CHECK(key1->base_model == llmcache::BaseModel(key1->model));
  FUZZ_CHECK(SameInfo(info1, info2, /*with_stream=*/true));
  FUZZ_CHECK(key1->digest == ExpectedDigest(*canonical));

  const auto other = keys->Compute(body, KeyScope{kNs, "another-scope"});
  FUZZ_CHECK(other.ok() && other->digest != key1->digest);

  // The canonical text is a fixed point.
  RequestInfo info3;
  const auto key3 = keys->Compute(*canonical, scope, &info3);
  FUZZ_CHECK(key3.ok());
  FUZZ_CHECK(key3->digest == key1->digest);
  FUZZ_CHECK(SameInfo(info1, info3, /*with_stream=*/false));
  const auto canonical2 = keys->Canonicalize(*canonical);
  FUZZ_CHECK(canonical2.ok() && *canonical2 == *canonical);

  // Differential: Boost.JSON agrees on what the body and its canonical form
  // say.
  boost::system::error_code ec;
  json::value reparsed = ParseBoost(*canonical, ec);
  FUZZ_CHECK(!ec);
  FUZZ_CHECK(Compact(*canonical));
  FUZZ_CHECK(CanonicalEscapes(*canonical));
  FUZZ_CHECK(SortedUnique(reparsed));
  json::value original = ParseBoost(body, ec);
  // Boost.JSON 1.81 rejects some valid numbers the key builder reads
  // exactly (0e2156789012345678941234 is 0: an exponent beyond its range);
  // the canonical form of such a body is still checked above.
  if (ec) return 0;
  FUZZ_CHECK(original.is_object());
  ApplyKeyRules(original.get_object(), keys->options());
  FUZZ_CHECK(SameValue(original, reparsed));
  return 0;
}
