// JSON output of the verbs (--json): one compact object per line, and the
// pretty-printed form `show` uses, with doubles as the shortest decimal
// (net::json_util::Serialize: 0.25, not Boost.JSON 1.81's 2.5E-1). See
// json_print.h.

#include "cli/json_print.h"

#include <boost/json/serialize.hpp>
#include <ostream>
#include <string>
#include <string_view>

#include "llmcache/net/json_util.h"

namespace llmcache::cli {

void PrettyPrint(const boost::json::value& v, std::ostream& out, int indent) {
  const std::string pad(static_cast<size_t>(indent + 2), ' ');
  const std::string close_pad(static_cast<size_t>(indent), ' ');
  if (const boost::json::object* o = v.if_object()) {
    if (o->empty()) {
      out << "{}";
      return;
    }
    out << "{\n";
    bool first = true;
    for (const auto& kv : *o) {
      if (!first) out << ",\n";
      first = false;
      out << pad << boost::json::serialize(boost::json::string(kv.key()))
          << ": ";
      PrettyPrint(kv.value(), out, indent + 2);
    }
    out << "\n" << close_pad << "}";
  } else if (const boost::json::array* a = v.if_array()) {
    if (a->empty()) {
      out << "[]";
      return;
    }
    out << "[\n";
    bool first = true;
    for (const auto& e : *a) {
      if (!first) out << ",\n";
      first = false;
      out << pad;
      PrettyPrint(e, out, indent + 2);
    }
    out << "\n" << close_pad << "]";
  } else {
    out << net::json_util::Serialize(v);
  }
}

void PrintJsonLine(const boost::json::value& v, std::ostream& out) {
  out << net::json_util::Serialize(v) << "\n";
}

void BeginJsonEntries(std::ostream& out) { out << "{\"entries\":["; }

void EndJsonEntries(const boost::json::object& tail, std::ostream& out) {
  out << ']';
  // Its members after the array's: without the tail's own opening brace.
  const std::string members = net::json_util::Serialize(tail);
  if (members.size() > 2)
    out << ',' << std::string_view(members).substr(1);
  else
    out << '}';
  out << "\n";
}

}  // namespace llmcache::cli
