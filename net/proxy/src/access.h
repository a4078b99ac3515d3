// Who may use the proxy, decided from a request's headers before anything is
// read, looked up or forwarded, without any HTTP machinery (no Beast):
//   - Host: only the names the proxy is reached by (the listen address,
//     loopback names, --allow-host), so a DNS-rebinding page cannot talk to
//     it under its own name;
//   - Origin (and Sec-Fetch-Site without one): browsers' cross-origin
//     requests only from explicitly allowed origins, with the CORS headers
//     they need; every other page is refused, so it can neither spend the
//     operator's key nor read a cached answer;
//   - credentials: `Authorization` must be `Bearer <key>` when present; with
//     a client token, the token (`X-Llmcache-Token: T`, or `Authorization:
//     Bearer T` to use the server's upstream key), compared in constant time.
// proxy.h documents the behaviour for users; the session calls CheckAccess
// once per request, right after its headers.
//
// Thread safety: an AccessPolicy is immutable after MakeAccessPolicy; the
// functions are free and may be called from any thread.

#ifndef LLMCACHE_NET_PROXY_SRC_ACCESS_H_
#define LLMCACHE_NET_PROXY_SRC_ACCESS_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "llmcache/net/proxy.h"
#include "llmcache/status.h"
#include "metrics.h"
#include "proxy_util.h"

namespace llmcache::net::proxy {

// The access rules of one server, from its ProxyOptions.
struct AccessPolicy {
  // Host names accepted (lowercase, IPv6 literals in brackets, no port):
  // localhost, 127.0.0.1, [::1], the listen host, ProxyOptions::allow_hosts.
  std::vector<std::string> hosts;
  bool any_host = false;        // "*" in allow_hosts
  bool any_ip_literal = false;  // listening on 0.0.0.0 or ::
  // Origins allowed (NormalizeOrigin form).
  std::vector<std::string> origins;
  bool any_origin = false;  // "*" in allow_origins
  std::string client_token;
  // ProxyOptions::admin_token: with a client token, /stats on an open
  // (loopback) proxy takes either (the dashboard asks for the admin token).
  std::string admin_token;
  // Whether /stats and /metrics (every tenant's models and spend) answer
  // without the admin token: OperatorViewsOpen(host, operator_views_open).
  bool operator_views_open = true;
  // Closed by the operator's --open-operator-views=false, not by the listen
  // address (what the refusal says).
  bool operator_views_closed_by_flag = false;
};

// Whether the operator views are open to anyone who may reach the proxy:
// `open_flag` when set (serve --open-operator-views), else whether
// `listen_host` is a loopback address (127.0.0.0/8, ::1, ::ffff:127.x.y.z,
// or the name localhost). Any other listen address (0.0.0.0, ::, a LAN
// address, a host name) closes them: they then need the admin token.
bool OperatorViewsOpen(std::string_view listen_host,
                       std::optional<bool> open_flag);

// The check of an operator view (/stats, /metrics) after CheckAccess:
// nullopt when `policy` has them open or `authorization` is `Bearer
// <admin_token>` (compared in constant time); otherwise 403 when no admin
// token is configured (the message says how to open them), else 401 (with
// WWW-Authenticate: Bearer).
std::optional<proxy_util::HttpError> CheckOperatorView(
    const AccessPolicy& policy, std::string_view admin_token,
    std::optional<std::string_view> authorization);

// The policy of `options` (host, allow_hosts, allow_origins, client_token).
// kInvalidArgument, naming the value, for an origin that is not
// scheme://host[:port] (or "*"), or a host that is not a name or IP
// literal without a port (or "*").
Result<AccessPolicy> MakeAccessPolicy(const ProxyOptions& options);

// The first of the headers access depends on (Host and the credentials)
// that `fields` (Beast's) has more than once, or "": a second line of one
// of them would be ignored (the first wins), so such a request is refused.
template <typename Fields>
std::string_view RepeatedField(const Fields& fields) {
  for (std::string_view name :
       {"Host", "Authorization", "X-Api-Key", "X-Llmcache-Token"}) {
    if (fields.count({name.data(), name.size()}) > 1) return name;
  }
  return {};
}

// "scheme://host[:port]" lowercased, without a default port (http :80,
// https :443) or a trailing "/"; nullopt when `origin` is not of that form
// (a path, a query, user info, "null", an empty host or a bad port).
std::optional<std::string> NormalizeOrigin(std::string_view origin);

// The headers of a request that access depends on (nullopt: absent).
struct AccessRequest {
  metrics::Route route = metrics::Route::kOther;
  std::string_view method;  // "GET", "OPTIONS", ...
  // A method Beast knows (RFC 9110 9: methods are case-sensitive, so "get"
  // is not one); any other is a 501.
  bool method_known = true;
  std::optional<std::string_view> expect;  // only 100-continue is met
  int version = 11;                        // HTTP/1.0 = 10, HTTP/1.1 = 11
  // The first of Host, Authorization, X-Api-Key and X-Llmcache-Token that
  // the request has more than once (RepeatedField); "" if none.
  std::string_view repeated;
  std::optional<std::string_view> host;
  // The authority of an absolute-form target ("http://localhost:8080/v1/
  // ..."): it must pass as a Host would, and so must the Host header if
  // the request has one too (RFC 9112 3.2.2 says to ignore it; both are
  // checked, which refuses no client that means this proxy).
  std::optional<std::string_view> target_authority;
  std::optional<std::string_view> origin;
  std::optional<std::string_view> sec_fetch_site;
  std::optional<std::string_view> access_control_request_method;
  std::optional<std::string_view> authorization;
  // X-Api-Key: how Anthropic's clients send their key (Messages route
  // only; it counts as "Authorization: Bearer <key>" when that is absent).
  std::optional<std::string_view> x_api_key;
  std::optional<std::string_view> token;  // X-Llmcache-Token
  // A page without data (the dashboard's HTML, script and style): Host and
  // Origin are checked, credentials are not (a browser navigating to it
  // cannot send a token; the data it shows comes from /stats).
  bool public_page = false;
};

// A request let in. The views point into the AccessRequest's headers.
struct Access {
  // The key to forward upstream: the client's own Bearer key; empty for the
  // server's key (no Authorization, or authenticated by the client token).
  std::string_view api_key;
  // The request's Origin when it is an allowed one: answers carry
  // Access-Control-Allow-Origin for it. Empty without an Origin.
  std::string_view cors_origin;
  // A CORS preflight of an allowed origin (OPTIONS with
  // Access-Control-Request-Method): answer 204 with AppendPreflightHeaders.
  bool preflight = false;
};

// In this order, the first that applies:
//   400 more than one Host, or none on HTTP/1.1, or a malformed one;
//   403 a Host that is not allowed (see AccessPolicy::hosts);
//   403 an Origin that is not allowed, or no Origin and a Sec-Fetch-Site
//       other than same-origin or none (a cross-site page's no-cors fetch);
//   a preflight of an allowed origin: let in (no credentials needed);
//   on routes other than /healthz, /metrics, /admin/* (whose token the
//   admin endpoints check), public pages, and /stats while the operator
//   views are closed (CheckOperatorView then wants the admin token):
//   401 an Authorization that is not `Bearer <non-empty token>` (any route
//       that forwards upstream, and any route when a client token is set),
//   401 with a client token set: neither `X-Llmcache-Token: <token>` nor
//       `Authorization: Bearer <token>`.
// 401s carry WWW-Authenticate: Bearer. Errors are OpenAI-shaped
// (invalid_request_error, permission_error, authentication_error).
std::variant<proxy_util::HttpError, Access> CheckAccess(
    const AccessPolicy& policy, const AccessRequest& request);

// Response headers for an allowed cross-origin request:
// Access-Control-Allow-Origin: <origin>, Access-Control-Expose-Headers (the
// cache and rate-limit headers) and Vary: Origin. Nothing for an empty
// origin.
void AppendCorsHeaders(std::string* out, std::string_view origin);

// The headers of a 204 answer to a preflight: AppendCorsHeaders plus
// Access-Control-Allow-Methods (GET, POST, OPTIONS), Access-Control-Allow-
// Headers (the requested ones when they are a valid list of header names,
// else the ones the proxy reads) and Access-Control-Max-Age.
void AppendPreflightHeaders(std::string* out, std::string_view origin,
                            std::optional<std::string_view> request_headers);

}  // namespace llmcache::net::proxy

#endif  // LLMCACHE_NET_PROXY_SRC_ACCESS_H_
