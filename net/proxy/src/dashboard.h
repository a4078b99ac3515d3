// GET /dashboard: a live page of the proxy's savings, served by the proxy
// itself with no external resource (no CDN, no font, no image): the HTML,
// its script (/dashboard.js) and its style (/dashboard.css) are constants
// compiled in. The page holds no data: its script polls GET /stats (same
// origin) every 2 s and builds the DOM from it with textContent only (model
// ids come from clients and may hold markup), drawing the hit rate of the
// last 10 minutes as inline SVG. When /stats answers 401 or 403 (operator
// views closed, access.h) it asks for the admin token, keeps it in
// sessionStorage and sends it as `Authorization: Bearer`.
//
// Every answer carries DashboardHeaders(): a Content-Security-Policy that
// allows only the proxy's own script, style and connections (no inline
// script or style, no framing, no form posts), nosniff, no referrer and
// no caching.
//
// Thread safety: constants only.

#ifndef LLMCACHE_NET_PROXY_SRC_DASHBOARD_H_
#define LLMCACHE_NET_PROXY_SRC_DASHBOARD_H_

#include <string_view>

namespace llmcache::net::proxy {

struct DashboardAsset {
  std::string_view path;          // "/dashboard", "/dashboard.js", ...
  std::string_view content_type;  // with charset
  std::string_view body;
};

// The asset served at `path` (/dashboard or /dashboard/, /dashboard.js,
// /dashboard.css), nullptr for any other path.
const DashboardAsset* FindDashboardAsset(std::string_view path);

// Header lines ("Name: value\r\n") of every dashboard answer: the CSP,
// X-Content-Type-Options, Referrer-Policy, Cache-Control and framing and
// cross-origin embedding refusals.
std::string_view DashboardHeaders();

// The Content-Security-Policy value alone.
std::string_view DashboardCsp();

}  // namespace llmcache::net::proxy

#endif  // LLMCACHE_NET_PROXY_SRC_DASHBOARD_H_
