// The proxy's admin endpoints, POST /admin/flush, /admin/purge,
// /admin/compact and /admin/import,
// without any HTTP machinery: ValidateAdminRequest checks the method, the
// admin token (compared in constant time) and the query, and names either
// the error to answer or what to purge; RunAdminPurge purges and renders the
// JSON answer. The session only routes /admin/* here (when an admin token is
// configured), runs RunAdmin on the maintenance thread and writes the answer.
// No Beast.
//
// Thread safety: free functions; RunAdminPurge is as thread-safe as the
// Cache.

#ifndef LLMCACHE_NET_PROXY_SRC_ADMIN_H_
#define LLMCACHE_NET_PROXY_SRC_ADMIN_H_

#include <string>
#include <string_view>
#include <variant>

#include "llmcache/cache.h"
#include "llmcache/net/proxy.h"
#include "llmcache/net/shared_tier.h"
#include "llmcache/purge.h"
#include "proxy_util.h"

namespace llmcache::net::proxy {

// A request to /admin/<op>, as read from HTTP.
struct AdminRequest {
  std::string_view op;             // the path after "/admin/"
  std::string_view method;         // "POST", "GET", ...
  std::string_view authorization;  // the Authorization header ("" if absent)
  std::string_view query;          // after '?', not decoded
};

// POST /admin/compact: a full manual compaction (Cache::Compact), which drops
// expired entries and returns their space.
struct AdminCompact {};

// POST /admin/import: the body's lines, in the layout `llmcache export`
// writes, stored as `llmcache import --per-entry` stores them.
struct AdminImport {};

// What to do: answer the error, purge, compact or import.
using AdminAction = std::variant<proxy_util::HttpError, PurgeSelector,
                                 AdminCompact, AdminImport>;

// In this order: 404 for an op other than flush, purge, compact and import,
// 405 for a
// method other than POST, 401 (with WWW-Authenticate: Bearer) unless the
// request carries `Authorization: Bearer <admin_token>`, 400 unless the query
// has exactly one selector that the op accepts (flush: model or all; purge: any
// of ParsePurgeSelector's; compact and import: none). `admin_token` must not
// be empty.
AdminAction ValidateAdminRequest(const AdminRequest& request,
                                 std::string_view admin_token);

struct AdminAnswer {
  int status = 200;
  std::string body;  // JSON
};

// Purges what `selector` names from `cache`. 200 with
// {"<selector name>": <value, or true for all/expired>,
//  ["older_than_seconds": N,] "removed": N}; when the store fails, 503
// service_unavailable while it cannot write (a full disk, a degraded
// store), else 500 server_error. Logs the outcome to `log` (kInfo, or kError on
// failure). With a shared tier, a model or whole-cache flush also bumps its
// generation there, first (every instance then misses the old entries), and
// a key purge deletes the key there too (other instances may keep a local
// copy until its TTL); the answer gains "shared":
// {"generation": N} or {"removed": bool}. A shared tier that fails makes it
// a 503 (the local purge is done; other instances may still serve the old
// entries). Namespace, age and expiry purges are local: shared entries age
// out by their TTL.
AdminAnswer RunAdminPurge(Cache& cache, const PurgeSelector& selector,
                          const LogSink& log, SharedTier* shared = nullptr);

// Compacts `cache`: 200 {"compacted":true,"ms":N}, or 503/500 as a purge.
AdminAnswer RunAdminCompact(Cache& cache, const LogSink& log);

// Stores the entries of `body`, lines in the layout `llmcache export` writes
// (ParseImportLine; blank lines, a final line without its '\n' and CRLF line
// ends are accepted), one Cache::Insert each, as `llmcache import
// --per-entry` does: an entry already stored is replaced, an entry already
// expired is skipped, a malformed line is skipped and reported. 200 with
// {"lines":N,"imported":N,"expired":N,"malformed":N,"errors":[{"line":L,
// "error":"..."}, ... at most 20],"ms":N}. A store failure stops the import:
// 500 server_error (503 as a purge) naming the line, with the entries
// before it stored (the
// error object also has "line" and "imported", as numbers). The
// entries go to the local tiers only: a shared tier is filled as requests
// are served.
AdminAnswer RunAdminImport(Cache& cache, std::string_view body,
                           const LogSink& log);

// Runs `action`, which is not an HttpError: RunAdminPurge, RunAdminCompact,
// or RunAdminImport of `body`.
AdminAnswer RunAdmin(Cache& cache, const AdminAction& action,
                     std::string_view body, const LogSink& log,
                     SharedTier* shared);

}  // namespace llmcache::net::proxy

#endif  // LLMCACHE_NET_PROXY_SRC_ADMIN_H_
