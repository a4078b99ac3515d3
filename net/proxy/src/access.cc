// Host, Origin and credential checks of the proxy. See access.h.

#include "access.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <boost/beast/core/string.hpp>
#include <cctype>
#include <charconv>

namespace llmcache::net::proxy {
namespace {

using proxy_util::HttpError;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// A port of 1-5 digits, at most 65535; nullopt otherwise.
std::optional<int> ParsePort(std::string_view s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  int v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v > 65535) {
    return std::nullopt;
  }
  return v;
}

// The canonical text of an IP literal (IPv6 without brackets), or nullopt.
std::optional<std::string> CanonicalIp(std::string_view s, int family) {
  if (s.empty() || s.size() > 45) return std::nullopt;
  const std::string z(s);
  std::array<unsigned char, 16> bytes{};
  if (inet_pton(family, z.c_str(), bytes.data()) != 1) return std::nullopt;
  char text[INET6_ADDRSTRLEN];
  if (inet_ntop(family, bytes.data(), text, sizeof(text)) == nullptr) {
    return std::nullopt;
  }
  return std::string(text);
}

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' ||
           c == '-' || c == '_';
  });
}

// A Host header's host, or an origin's authority: "name", "name:port",
// "a.b.c.d[:port]", "[v6][:port]".
struct HostPort {
  std::string host;  // lowercase; IP literals canonical, IPv6 in brackets
  bool ip_literal = false;
  std::optional<int> port;
};

std::optional<HostPort> ParseHostPort(std::string_view s) {
  HostPort out;
  std::string_view host;
  std::string_view port;
  bool has_port = false;
  if (!s.empty() && s.front() == '[') {
    const size_t close = s.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    std::optional<std::string> ip =
        CanonicalIp(s.substr(1, close - 1), AF_INET6);
    if (!ip) return std::nullopt;
    out.host = "[" + *ip + "]";
    out.ip_literal = true;
    const std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port = rest.substr(1);
      has_port = true;
    }
  } else {
    const size_t colon = s.find(':');
    host = s.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = s.substr(colon + 1);
      has_port = true;
      if (port.find(':') != std::string_view::npos) return std::nullopt;
    }
    if (std::optional<std::string> ip = CanonicalIp(host, AF_INET)) {
      out.host = *ip;
      out.ip_literal = true;
    } else {
      if (host.size() > 1 && host.back() == '.') host.remove_suffix(1);
      if (!ValidName(host)) return std::nullopt;
      out.host = Lower(host);
    }
  }
  if (has_port) {
    out.port = ParsePort(port);
    if (!out.port) return std::nullopt;
  }
  return out;
}

// An allowed-host setting: a name or an IP literal (IPv6 with or without
// brackets), without a port.
std::optional<std::string> AllowedHostName(std::string_view s) {
  s = Trim(s);
  if (std::optional<std::string> v6 = CanonicalIp(s, AF_INET6)) {
    return "[" + *v6 + "]";
  }
  std::optional<HostPort> hp = ParseHostPort(s);
  if (!hp || hp->port) return std::nullopt;
  return hp->host;
}

HttpError Error(int status, std::string_view type, std::string message) {
  HttpError e;
  e.status = status;
  e.type = type;
  e.message = std::move(message);
  if (status == 401) {
    proxy_util::AppendHeader(&e.extra_headers, "WWW-Authenticate", "Bearer");
  }
  return e;
}

HttpError Unauthorized(std::string message) {
  return Error(401, "authentication_error", std::move(message));
}

bool HostAllowed(const AccessPolicy& policy, const HostPort& hp) {
  if (policy.any_host) return true;
  if (hp.ip_literal && policy.any_ip_literal) return true;
  return std::find(policy.hosts.begin(), policy.hosts.end(), hp.host) !=
         policy.hosts.end();
}

bool OriginAllowed(const AccessPolicy& policy, std::string_view origin) {
  if (policy.any_origin) return true;
  std::optional<std::string> n = NormalizeOrigin(origin);
  return n && std::find(policy.origins.begin(), policy.origins.end(), *n) !=
                  policy.origins.end();
}

// A list of header names (tokens) separated by commas and spaces.
bool ValidHeaderList(std::string_view s) {
  if (s.size() > 1024) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' ||
           c == '_' || c == ',' || c == ' ' || c == '.';
  });
}

constexpr std::string_view kExposeHeaders =
    "X-Cache, X-Cache-Key, X-Cache-Bypass-Reason, X-Cache-TTL, X-Cache-Stored, "
    "Age, "
    "Retry-After, X-Generation-Id, X-RateLimit-Limit, X-RateLimit-Remaining, "
    "X-RateLimit-Reset";
constexpr std::string_view kAllowHeaders =
    "Authorization, Content-Type, Cache-Control, X-Cache-TTL, "
    "X-Cache-Namespace, X-Llmcache-Token, HTTP-Referer, X-Title, "
    "X-OpenRouter-Title, X-OpenRouter-Categories, X-Session-Id, X-Api-Key, "
    "Anthropic-Version, Anthropic-Beta";

}  // namespace

std::optional<std::string> NormalizeOrigin(std::string_view origin) {
  origin = Trim(origin);
  const size_t sep = origin.find("://");
  if (sep == std::string_view::npos || sep == 0) return std::nullopt;
  const std::string_view scheme = origin.substr(0, sep);
  if (!std::isalpha(static_cast<unsigned char>(scheme.front())) ||
      !std::all_of(scheme.begin(), scheme.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '+' ||
               c == '.' || c == '-';
      })) {
    return std::nullopt;
  }
  std::string_view authority = origin.substr(sep + 3);
  if (!authority.empty() && authority.back() == '/') authority.remove_suffix(1);
  if (authority.empty() ||
      authority.find_first_of("/?#@ ") != std::string_view::npos) {
    return std::nullopt;
  }
  std::optional<HostPort> hp = ParseHostPort(authority);
  if (!hp) return std::nullopt;
  std::string out = Lower(scheme);
  const bool default_port = hp->port && ((out == "http" && *hp->port == 80) ||
                                         (out == "https" && *hp->port == 443));
  out += "://";
  out += hp->host;
  if (hp->port && !default_port) {
    out += ':';
    out += std::to_string(*hp->port);
  }
  return out;
}

Result<AccessPolicy> MakeAccessPolicy(const ProxyOptions& options) {
  AccessPolicy p;
  p.hosts = {"localhost", "127.0.0.1", "[::1]"};
  const std::string_view listen = options.host;
  if (std::optional<std::string> v4 = CanonicalIp(listen, AF_INET)) {
    if (*v4 == "0.0.0.0") {
      p.any_ip_literal = true;
    } else {
      p.hosts.push_back(*v4);
    }
  } else if (std::optional<std::string> v6 = CanonicalIp(listen, AF_INET6)) {
    if (*v6 == "::") {
      p.any_ip_literal = true;
    } else {
      p.hosts.push_back("[" + *v6 + "]");
    }
  } else if (std::optional<std::string> name = AllowedHostName(listen)) {
    p.hosts.push_back(*name);
  }
  for (const std::string& h : options.allow_hosts) {
    if (Trim(h) == "*") {
      p.any_host = true;
      continue;
    }
    std::optional<std::string> name = AllowedHostName(h);
    if (!name) {
      return InvalidArgumentError(
          "bad allowed host '" + h +
          "': want a host name or IP address without a port, or *");
    }
    p.hosts.push_back(std::move(*name));
  }
  for (const std::string& o : options.allow_origins) {
    if (Trim(o) == "*") {
      p.any_origin = true;
      continue;
    }
    std::optional<std::string> n = NormalizeOrigin(o);
    if (!n) {
      return InvalidArgumentError("bad allowed origin '" + o +
                                  "': want scheme://host[:port] (no path), "
                                  "e.g. http://localhost:3000, or *");
    }
    p.origins.push_back(std::move(*n));
  }
  p.client_token = options.client_token;
  p.admin_token = options.admin_token;
  p.operator_views_open =
      OperatorViewsOpen(options.host, options.operator_views_open);
  p.operator_views_closed_by_flag = options.operator_views_open == false;
  return p;
}

bool OperatorViewsOpen(std::string_view listen_host,
                       std::optional<bool> open_flag) {
  if (open_flag) return *open_flag;
  std::string_view h = Trim(listen_host);
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') {
    h = h.substr(1, h.size() - 2);
  }
  if (std::optional<std::string> v4 = CanonicalIp(h, AF_INET)) {
    return v4->starts_with("127.");
  }
  if (std::optional<std::string> v6 = CanonicalIp(h, AF_INET6)) {
    // ::1, and 127.0.0.0/8 mapped into IPv6.
    return *v6 == "::1" || v6->starts_with("::ffff:127.");
  }
  // A name: only localhost is known to stay on this machine (another name
  // may resolve to any interface).
  std::string name = Lower(h);
  if (!name.empty() && name.back() == '.') name.pop_back();
  return name == "localhost";
}

std::optional<HttpError> CheckOperatorView(
    const AccessPolicy& policy, std::string_view admin_token,
    std::optional<std::string_view> authorization) {
  if (policy.operator_views_open) return std::nullopt;
  const std::string why = policy.operator_views_closed_by_flag
                              ? "closed (--open-operator-views=false)"
                              : "closed because this proxy listens beyond "
                                "loopback";
  if (admin_token.empty()) {
    return Error(
        403, "permission_error",
        "this proxy's operator views (/stats, /metrics, the dashboard's data) "
        "are " +
            why +
            ": set --admin-token and send 'Authorization: Bearer <admin "
            "token>'" +
            (policy.operator_views_closed_by_flag
                 ? std::string()
                 : ", or open them to everyone who can reach the proxy with "
                   "--open-operator-views"));
  }
  const std::string_view bearer = authorization
                                      ? proxy_util::BearerToken(*authorization)
                                      : std::string_view();
  if (!bearer.empty() && proxy_util::ConstantTimeEquals(bearer, admin_token)) {
    return std::nullopt;
  }
  return Unauthorized("this proxy's operator views (/stats, /metrics) are " +
                      why +
                      ": they need 'Authorization: Bearer <admin token>'");
}

std::variant<HttpError, Access> CheckAccess(const AccessPolicy& policy,
                                            const AccessRequest& r) {
  // Host: who the client thinks it is talking to.
  if (!r.repeated.empty()) {
    return Error(400, "invalid_request_error",
                 "more than one " + std::string(r.repeated) + " header");
  }
  // A Host header, or the authority of an absolute-form target.
  const auto host_refused =
      [&policy](std::string_view value,
                std::string_view what) -> std::optional<HttpError> {
    std::optional<HostPort> hp = ParseHostPort(value);
    if (!hp) {
      return Error(400, "invalid_request_error",
                   "malformed " + std::string(what));
    }
    if (HostAllowed(policy, *hp)) return std::nullopt;
    return Error(403, "permission_error",
                 "Host '" + hp->host +
                     "' is not one this proxy answers to (allow it with "
                     "--allow-host)");
  };
  if (!r.host) {
    if (r.version >= 11) {
      return Error(400, "invalid_request_error",
                   "an HTTP/1.1 request needs a Host header");
    }
  } else if (auto e = host_refused(Trim(*r.host), "Host header")) {
    return *std::move(e);
  }
  if (r.target_authority) {
    if (auto e = host_refused(*r.target_authority,
                              "authority in the request target")) {
      return *std::move(e);
    }
  }

  // Origin: which web page (if any) sent it.
  Access access;
  if (r.origin) {
    if (!OriginAllowed(policy, *r.origin)) {
      return Error(403, "permission_error",
                   "cross-origin requests from this origin are not allowed "
                   "(allow it with --allow-origin)");
    }
    access.cors_origin = *r.origin;
    if (r.method == "OPTIONS" && r.access_control_request_method) {
      access.preflight = true;
      return access;
    }
  } else if (r.sec_fetch_site) {
    const std::string_view site = Trim(*r.sec_fetch_site);
    if (!boost::beast::iequals(site, "same-origin") &&
        !boost::beast::iequals(site, "none")) {
      return Error(403, "permission_error",
                   "cross-site requests without an allowed Origin are refused");
    }
  }

  // What the request asks of the server.
  if (!r.method_known) {
    return Error(501, "not_implemented",
                 "method '" + std::string(r.method) +
                     "' is not implemented (methods are case-sensitive)");
  }
  if (r.expect && r.version >= 11 && !Trim(*r.expect).empty() &&
      !boost::beast::iequals(Trim(*r.expect), "100-continue")) {
    return Error(417, "invalid_request_error",
                 "Expect: only 100-continue is supported");
  }

  // Credentials.
  using metrics::Route;
  if (r.route == Route::kHealthz || r.route == Route::kMetrics ||
      r.route == Route::kAdmin || r.public_page ||
      (r.route == Route::kStats && !policy.operator_views_open)) {
    return access;
  }
  const bool forwards =
      r.route == Route::kChatCompletions || r.route == Route::kModels ||
      r.route == Route::kEmbeddings || r.route == Route::kResponses ||
      r.route == Route::kMessages;
  const std::string& token = policy.client_token;
  std::optional<std::string_view> bearer;
  if (r.authorization) {
    const std::string_view b = proxy_util::BearerToken(*r.authorization);
    if (!b.empty()) {
      bearer = b;
    } else if (forwards || !token.empty()) {
      return Unauthorized(
          "Authorization must be 'Bearer <API key>'; other schemes are not "
          "accepted");
    }
  } else if (r.x_api_key && r.route == Route::kMessages) {
    const std::string_view k = Trim(*r.x_api_key);
    if (!k.empty()) bearer = k;
  }
  if (token.empty()) {
    if (forwards && bearer) access.api_key = *bearer;
    return access;
  }
  if (r.token) {
    if (!proxy_util::ConstantTimeEquals(Trim(*r.token), token)) {
      return Unauthorized("wrong X-Llmcache-Token");
    }
    if (forwards && bearer && !proxy_util::ConstantTimeEquals(*bearer, token)) {
      access.api_key = *bearer;
    }
    return access;
  }
  if (bearer && proxy_util::ConstantTimeEquals(*bearer, token)) return access;
  // An operator view's own token (beyond loopback /stats takes only it,
  // CheckOperatorView; here the client token opens it too).
  if (r.route == Route::kStats && bearer && !policy.admin_token.empty() &&
      proxy_util::ConstantTimeEquals(*bearer, policy.admin_token)) {
    return access;
  }
  if (r.route == Route::kStats) {
    return Unauthorized(
        policy.admin_token.empty()
            ? "this proxy's statistics need its access token: send "
              "'Authorization: Bearer <client token>'"
            : "this proxy's statistics need its admin token or its access "
              "token: send 'Authorization: Bearer <token>'");
  }
  return Unauthorized(
      "this proxy needs its access token: send 'X-Llmcache-Token: <token>' "
      "(with your own key in Authorization), or 'Authorization: Bearer "
      "<token>' to use the proxy's key");
}

void AppendCorsHeaders(std::string* out, std::string_view origin) {
  if (origin.empty()) return;
  proxy_util::AppendHeader(out, "Access-Control-Allow-Origin", origin);
  proxy_util::AppendHeader(out, "Access-Control-Expose-Headers",
                           kExposeHeaders);
  proxy_util::AppendHeader(out, "Vary", "Origin");
}

void AppendPreflightHeaders(std::string* out, std::string_view origin,
                            std::optional<std::string_view> request_headers) {
  AppendCorsHeaders(out, origin);
  proxy_util::AppendHeader(out, "Access-Control-Allow-Methods",
                           "GET, POST, OPTIONS");
  const std::string_view asked =
      request_headers ? Trim(*request_headers) : std::string_view();
  proxy_util::AppendHeader(
      out, "Access-Control-Allow-Headers",
      !asked.empty() && ValidHeaderList(asked) ? asked : kAllowHeaders);
  proxy_util::AppendHeader(out, "Access-Control-Max-Age", "600");
}

}  // namespace llmcache::net::proxy
