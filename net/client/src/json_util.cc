// Serialize (llmcache/net/json_util.h): Boost.JSON's text, with numbers of
// type double as the shortest decimal that reads back as the same double,
// laid out as JavaScript does.

#include "llmcache/net/json_util.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

namespace llmcache::net::json_util {
namespace {

void AppendString(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t plain = 0;  // start of the run not yet copied
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + plain, i - plain);
    plain = i + 1;
    out->push_back('\\');
    switch (c) {
      case '"':
        out->push_back('"');
        break;
      case '\\':
        out->push_back('\\');
        break;
      case '\b':
        out->push_back('b');
        break;
      case '\t':
        out->push_back('t');
        break;
      case '\n':
        out->push_back('n');
        break;
      case '\f':
        out->push_back('f');
        break;
      case '\r':
        out->push_back('r');
        break;
      default:
        out->append("u00", 3);
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 0xf]);
    }
  }
  out->append(s.data() + plain, s.size() - plain);
  out->push_back('"');
}

void AppendDouble(double d, std::string* out) {
  // JSON has no infinity or NaN: as later Boost.JSON releases write them
  // (1.81 writes "Infinity" and "NaN", which no JSON parser reads).
  if (std::isnan(d)) {
    out->append("null");
    return;
  }
  if (std::isinf(d)) {
    out->append(d < 0 ? "-1e99999" : "1e99999");
    return;
  }
  // The shortest digits that read back as `d`, "D.DDDe-XX"; then laid out
  // as ECMAScript's Number::toString does (what OpenRouter and JavaScript
  // clients write): plain from 1e-6 up to 1e21, else "1.5e-7", "1e+21".
  char buf[32];
  const std::to_chars_result r =
      std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(r.ptr - buf));
  if (sci.front() == '-') {
    out->push_back('-');
    sci.remove_prefix(1);
  }
  const size_t e = sci.find('e');
  char digits[24];
  size_t k = 0;
  for (char c : sci.substr(0, e)) {
    if (c != '.') digits[k++] = c;
  }
  std::string_view exp_text = sci.substr(e + 1);
  if (exp_text.front() == '+') exp_text.remove_prefix(1);
  int exp10 = 0;
  std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exp10);
  const int n = exp10 + 1;  // the point's place after the first digit
  const auto kk = static_cast<int>(k);
  if (kk <= n && n <= 21) {
    out->append(digits, k);
    out->append(static_cast<size_t>(n - kk), '0');
    out->append(".0");  // a whole number still reads as a double
  } else if (0 < n && n <= 21) {
    out->append(digits, static_cast<size_t>(n));
    out->push_back('.');
    out->append(digits + n, k - static_cast<size_t>(n));
  } else if (-6 < n && n <= 0) {
    out->append("0.");
    out->append(static_cast<size_t>(-n), '0');
    out->append(digits, k);
  } else {
    out->push_back(digits[0]);
    if (k > 1) {
      out->push_back('.');
      out->append(digits + 1, k - 1);
    }
    out->push_back('e');
    out->push_back(n - 1 < 0 ? '-' : '+');
    out->append(std::to_string(std::abs(n - 1)));
  }
}

void Append(const json::value& v, std::string* out) {
  switch (v.kind()) {
    case json::kind::null:
      out->append("null");
      return;
    case json::kind::bool_:
      out->append(v.get_bool() ? "true" : "false");
      return;
    case json::kind::int64: {
      char buf[24];
      const auto r = std::to_chars(buf, buf + sizeof(buf), v.get_int64());
      out->append(buf, r.ptr);
      return;
    }
    case json::kind::uint64: {
      char buf[24];
      const auto r = std::to_chars(buf, buf + sizeof(buf), v.get_uint64());
      out->append(buf, r.ptr);
      return;
    }
    case json::kind::double_:
      AppendDouble(v.get_double(), out);
      return;
    case json::kind::string:
      AppendString(v.get_string(), out);
      return;
    case json::kind::array: {
      out->push_back('[');
      bool first = true;
      for (const json::value& e : v.get_array()) {
        if (!first) out->push_back(',');
        first = false;
        Append(e, out);
      }
      out->push_back(']');
      return;
    }
    case json::kind::object: {
      out->push_back('{');
      bool first = true;
      for (const json::key_value_pair& kv : v.get_object()) {
        if (!first) out->push_back(',');
        first = false;
        AppendString(kv.key(), out);
        out->push_back(':');
        Append(kv.value(), out);
      }
      out->push_back('}');
      return;
    }
  }
}

}  // namespace

void SerializeTo(const json::value& v, std::string* out) { Append(v, out); }

std::string Serialize(const json::value& v) {
  std::string out;
  Append(v, &out);
  return out;
}

}  // namespace llmcache::net::json_util
