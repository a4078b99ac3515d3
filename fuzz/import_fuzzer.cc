// Fuzz target: `llmcache import`'s line parser (llmcache/net/import_line.h) and
// the engine's entry value format (engine/src/format.h) on arbitrary bytes.
//
// The input is split into lines as the import verb splits it (a trailing CR
// dropped, blank lines skipped). Invariants checked:
//   - never a crash; a rejected line has an error message;
//   - the direct scan of exported lines and the general parser
//     (ParseImportLineGeneral) accept the same lines with the same fields
//     and reject the same with the same message;
//   - an accepted line has a 64-hex key, a non-empty model, times and flags
//     in range, the imported flag, and a body that is a cacheable completion;
//   - what it stores survives: its metadata and body encode and decode back
//     to the same Entry (format.h), and inserted into a memory-mode cache it
//     is found under its key with the same body and metadata;
//   - the whole input as a stored value: DecodeEntry, PeekEntryTimes and the
//     column-family and model-prefix decoders reject or accept it without a
//     crash, and a value that decodes re-encodes to a value that decodes to
//     the same Entry.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "llmcache/net/import_line.h"
#include "format.h"
#include "fuzz_check.h"
#include "llmcache/cache.h"
#include "llmcache/net/completion.h"

namespace {

// A fixed "now" (2026-01-01T00:00:00Z), so that an input means the same on
// every run.
constexpr int64_t kNowMs = 1'767'225'600'000;

void CheckValue(std::string_view value) {
  llmcache::Entry entry;
  const llmcache::Status s = llmcache::DecodeEntry(value, &entry);
  int64_t created = 0, expires = 0;
  const bool peeked = llmcache::PeekEntryTimes(value, &created, &expires);
  if (!s.ok()) {
    FUZZ_CHECK(!s.message().empty());
    return;
  }
  FUZZ_CHECK(peeked && created == entry.meta.created_ms &&
             expires == entry.meta.expires_ms);
  std::string again;
  FUZZ_CHECK(llmcache::EncodeEntry(entry.meta, entry.body, &again).ok());
  llmcache::Entry decoded;
  FUZZ_CHECK(llmcache::DecodeEntry(again, &decoded).ok());
  FUZZ_CHECK(decoded == entry);
  FUZZ_CHECK(llmcache::StoredSize(entry) == again.size());
}

// The direct scan of exported lines and the general parser agree: the
// same acceptance, error and fields.
void CheckSameAsGeneral(std::string_view line, bool ok,
                        const std::string& error,
                        const llmcache::net::ImportLine& parsed) {
  llmcache::net::ImportLine general;
  std::string general_error;
  const bool general_ok = llmcache::net::ParseImportLineGeneral(
      line, kNowMs, &general, &general_error);
  FUZZ_CHECK(ok == general_ok);
  llmcache::net::ImportLine scanned;
  if (llmcache::net::ParseExportLayout(line, kNowMs, &scanned)) {
    FUZZ_CHECK(general_ok);
  }
  if (!ok) {
    FUZZ_CHECK(error == general_error);
    return;
  }
  const llmcache::InsertOptions& a = parsed.options;
  const llmcache::InsertOptions& b = general.options;
  FUZZ_CHECK(parsed.key.digest == general.key.digest &&
             parsed.key.model == general.key.model &&
             parsed.key.base_model == general.key.base_model &&
             parsed.body == general.body && parsed.ns == general.ns &&
             parsed.resolved_model == general.resolved_model);
  FUZZ_CHECK(a.usage == b.usage && a.flags == b.flags &&
             a.created_ms == b.created_ms && a.expires_ms == b.expires_ms &&
             a.ttl_ms == b.ttl_ms);
}

void CheckLine(std::string_view line, llmcache::Cache& cache) {
  llmcache::net::ImportLine parsed;
  std::string error;
  const bool ok = llmcache::net::ParseImportLine(line, kNowMs, &parsed, &error);
  CheckSameAsGeneral(line, ok, error, parsed);
  if (!ok) {
    FUZZ_CHECK(!error.empty());
    return;
  }
  const llmcache::InsertOptions& o = parsed.options;
  FUZZ_CHECK(!parsed.key.model.empty());
  FUZZ_CHECK(parsed.key.base_model == llmcache::BaseModel(parsed.key.model));
  FUZZ_CHECK(o.created_ms > 0 && o.created_ms <= kNowMs + 5 * 60'000);
  FUZZ_CHECK(o.expires_ms == 0 || o.expires_ms >= o.created_ms);
  FUZZ_CHECK((o.flags & llmcache::kEntryFlagImported) != 0);
  FUZZ_CHECK(o.usage.cost_nanousd >= 0);
  const auto completion = llmcache::net::ParseCompletion(parsed.body);
  FUZZ_CHECK(completion.ok());
  FUZZ_CHECK(llmcache::net::WhyNotCacheable(200, *completion).empty());

  // The value the store would write, and back.
  llmcache::EntryMeta meta;
  meta.flags = o.flags;
  meta.created_ms = o.created_ms;
  meta.expires_ms = o.expires_ms;
  meta.usage = o.usage;
  meta.model = parsed.key.model;
  meta.resolved_model = parsed.resolved_model;
  meta.ns = parsed.ns;
  std::string value;
  FUZZ_CHECK(llmcache::EncodeEntry(meta, parsed.body, &value).ok());
  llmcache::Entry decoded;
  FUZZ_CHECK(llmcache::DecodeEntry(value, &decoded).ok());
  FUZZ_CHECK(decoded.meta == meta && decoded.body == parsed.body);

  // Stored in a memory-mode cache, as the import verb stores it.
  if (parsed.options.expires_ms != 0 && parsed.options.expires_ms <= kNowMs) {
    return;  // the verb skips it
  }
  parsed.options.ns = parsed.ns;
  parsed.options.resolved_model = parsed.resolved_model;
  FUZZ_CHECK(cache.Insert(parsed.key, parsed.body, parsed.options).ok());
  const auto found = cache.Find(parsed.key.digest);
  FUZZ_CHECK(found.ok() && *found != nullptr);
  const llmcache::Entry& e = **found;
  FUZZ_CHECK(e.body == parsed.body);
  FUZZ_CHECK(e.meta.model == parsed.key.model && e.meta.ns == parsed.ns &&
             e.meta.resolved_model == parsed.resolved_model &&
             e.meta.usage == o.usage && e.meta.created_ms == o.created_ms &&
             e.meta.expires_ms == o.expires_ms && e.meta.flags == o.flags);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  // A memory-mode cache of its own per input: no state carries over.
  llmcache::CacheOptions options;
  // Shards of 16 MiB: every entry of a fuzz input fits.
  options.memory_tier_bytes = 256u << 20;
  auto cache = llmcache::Cache::Open(options);
  FUZZ_CHECK(cache.ok());

  size_t pos = 0;
  while (pos <= input.size()) {
    size_t end = input.find('\n', pos);
    if (end == std::string_view::npos) end = input.size();
    std::string_view line = input.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    CheckLine(line, **cache);
  }

  CheckValue(input);
  if (auto model = llmcache::ColumnFamilyNameToModel(input); model.ok()) {
    const auto back = llmcache::ColumnFamilyNameToModel(
        llmcache::ModelToColumnFamilyName(*model));
    FUZZ_CHECK(back.ok() && *back == *model);
  }
  std::string_view rest = input;
  std::string_view model;
  while (llmcache::ConsumeModelPrefix(&rest, &model)) {
    std::string prefix;
    llmcache::AppendModelPrefix(model, &prefix);
    std::string_view again = prefix;
    std::string_view model2;
    FUZZ_CHECK(llmcache::ConsumeModelPrefix(&again, &model2));
    FUZZ_CHECK(model2 == model && again.empty());
  }
  return 0;
}
