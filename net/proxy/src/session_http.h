// Beast-aware helpers of the proxy's session (session.cc): header lookups
// and the request's view for the access check (access.h has no Beast).

#ifndef LLMCACHE_NET_PROXY_SRC_SESSION_HTTP_H_
#define LLMCACHE_NET_PROXY_SRC_SESSION_HTTP_H_

#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <optional>
#include <string_view>

#include "access.h"
#include "metrics.h"

namespace llmcache::net::proxy {

inline constexpr std::string_view kWaitingComment =
    ": waiting for the upstream\n\n";
// Capacity of a connection's read buffer. Beast reads at most its free
// capacity (512 bytes when empty and unreserved): a 2 KiB request took five
// recvmsg calls; with it a request of up to this size takes one.
inline constexpr size_t kReadBufferBytes = 8 * 1024;

inline std::string_view Sv(boost::beast::string_view s) {
  return {s.data(), s.size()};
}

// The value of the first header `name`, nullopt when there is none.
template <typename Message, typename Name>
std::optional<std::string_view> Find(const Message& m, Name name) {
  auto it = m.find(name);
  if (it == m.end()) return std::nullopt;
  return Sv(it->value());
}

// What CheckAccess reads of request `req` (its views point into it), and
// the authority of its target when in absolute form.
template <typename Request>
AccessRequest AccessRequestOf(
    const Request& req, metrics::Route route, bool public_page,
    std::optional<std::string_view> target_authority = std::nullopt) {
  namespace http = boost::beast::http;
  AccessRequest ar;
  ar.route = route;
  ar.method = Sv(req.method_string());
  ar.method_known = req.method() != http::verb::unknown;
  ar.expect = Find(req, http::field::expect);
  ar.version = static_cast<int>(req.version());
  ar.repeated = RepeatedField(req);
  ar.host = Find(req, http::field::host);
  ar.origin = Find(req, http::field::origin);
  ar.sec_fetch_site = Find(req, "Sec-Fetch-Site");
  ar.access_control_request_method =
      Find(req, http::field::access_control_request_method);
  ar.authorization = Find(req, http::field::authorization);
  ar.x_api_key = Find(req, "X-Api-Key");
  ar.token = Find(req, "X-Llmcache-Token");
  ar.public_page = public_page;
  ar.target_authority = target_authority;
  return ar;
}

// Whether `req` has no Transfer-Encoding or exactly one "chunked": any other
// is a 501 and a close (RFC 9112 6.1, 6.3). gzip before chunked would be read
// as plain bytes; a last coding other than chunked leaves the length unknown
// (request smuggling).
template <typename Request>
bool TransferEncodingAccepted(const Request& req) {
  namespace http = boost::beast::http;
  const auto te = req.find(http::field::transfer_encoding);
  return te == req.end() || (req.count(http::field::transfer_encoding) == 1 &&
                             boost::beast::iequals(te->value(), "chunked"));
}

}  // namespace llmcache::net::proxy

#endif  // LLMCACHE_NET_PROXY_SRC_SESSION_HTTP_H_
