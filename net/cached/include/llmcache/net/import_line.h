// One line of `llmcache import` and of the proxy's POST /admin/import: the
// format `llmcache export` writes (one JSON object per entry; see the
// README's `export` row), validated and turned into what Cache::Insert
// takes. No database: the import verb and the admin endpoint store what this
// accepts, and the fuzz target calls it on arbitrary bytes.

#ifndef LLMCACHE_NET_IMPORT_LINE_H_
#define LLMCACHE_NET_IMPORT_LINE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "llmcache/cache.h"
#include "llmcache/key.h"

namespace llmcache::net {

struct ImportLine {
  RequestKey key;
  std::string body;
  // usage, flags (with kEntryFlagImported), created_ms, expires_ms and, for
  // entries that never expire, ttl_ms 0. The caller points `ns` and
  // `resolved_model` at the members below.
  InsertOptions options;
  std::string ns;
  std::string resolved_model;
};

// Validates one export line (without its line end) read at `now_ms` (Unix
// ms). False with *error (one sentence) on anything malformed: not a JSON
// object, a bad key, model, namespace, time, flags or usage member, or a
// `response` that is not a clean chat completion the service would store.
// Already-expired entries are accepted (the caller skips them).
//
// A line in exactly the layout `llmcache export` writes (its members in its
// order, no whitespace, no \u escapes) is read by a direct scan; any other
// line, and any line that scan does not accept, by Boost.JSON
// (ParseImportLineGeneral), which alone writes the error messages. Both give
// the same result for every line (tests and the fuzz target compare them).
bool ParseImportLine(std::string_view line, int64_t now_ms, ImportLine* out,
                     std::string* error);

// The direct scan alone: true only for a line in the layout `llmcache
// export` writes that ParseImportLineGeneral accepts, filled as it fills it.
// False says nothing about the line (`out` is then unspecified).
bool ParseExportLayout(std::string_view line, int64_t now_ms, ImportLine* out);

// The same through Boost.JSON only: any member order, whitespace, escapes
// and Unicode.
bool ParseImportLineGeneral(std::string_view line, int64_t now_ms,
                            ImportLine* out, std::string* error);

// True if `s` has a C0 control character. Such a model, namespace or
// resolved model is a malformed import line, and the cached client refuses
// a request naming one (its entry could not be restored from an export).
bool HasControlCharacters(std::string_view s);

}  // namespace llmcache::net

#endif  // LLMCACHE_NET_IMPORT_LINE_H_
