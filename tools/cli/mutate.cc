// The mutating verbs: purge and compact.

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "cli/json_print.h"
#include "cli/progress.h"
#include "cli/verbs.h"
#include "llmcache/purge.h"

namespace llmcache::cli {
namespace json = boost::json;

int Purge(const std::string& db, const PurgeArgs& args, const Io& io) {
  std::vector<std::pair<std::string_view, std::string>> given;
  if (args.model) given.emplace_back("model", *args.model);
  if (args.all) given.emplace_back("all", "");
  if (args.key) given.emplace_back("key", *args.key);
  if (args.ns) given.emplace_back("namespace", *args.ns);
  if (args.expired) given.emplace_back("expired", "");
  if (args.older_than) given.emplace_back("older_than", *args.older_than);
  if (given.size() != 1) {
    io.err << "llmcache purge: give exactly one of --model, --all, --key, "
              "--namespace, --expired, --older-than\n";
    return kExitUsage;
  }
  Result<PurgeSelector> selector =
      ParsePurgeSelector(given[0].first, given[0].second);
  if (!selector.ok()) {
    io.err << "llmcache purge: " << selector.status().message() << "\n";
    return kExitUsage;
  }
  const std::string what = selector->Describe();

  // The same purge through a proxy's admin endpoint, for the hint when one
  // holds the database: "purge?namespace=docs".
  std::string admin_op = "purge?" + std::string(given[0].first) + "=";
  if (given[0].second.empty()) admin_op += "1";
  for (const char c : given[0].second) {
    if (std::isalnum(static_cast<unsigned char>(c)) ||
        std::string_view("-._~/:").find(c) != std::string_view::npos) {
      admin_op += c;
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      admin_op += '%';
      admin_op += kHex[static_cast<unsigned char>(c) >> 4];
      admin_op += kHex[static_cast<unsigned char>(c) & 0xF];
    }
  }
  int rc = kExitOk;
  std::unique_ptr<Cache> cache =
      OpenForWriting(db, /*create=*/false, io, &rc, "purge", admin_op);
  if (!cache) return rc;
  // A mistyped model would remove nothing and say so with exit 0.
  if (selector->kind == PurgeKind::kModel) {
    if (std::optional<std::string> e = UnknownModel(*cache, *args.model)) {
      io.err << "llmcache purge: nothing removed: " << *e << "\n";
      return kExitFailure;
    }
  }
  if (!Confirm(io, args.yes, "Remove " + what + " from " + db + "?")) {
    io.err << "llmcache purge: not confirmed; nothing removed\n";
    return kExitFailure;
  }
  // An age purge goes in steps: stopped between two (not at the question,
  // where Ctrl-C quits as usual).
  if (selector->kind == PurgeKind::kOlderThan) CatchInterrupts();
  // Deletes one by one: a large such purge compacts after it (below).
  const bool one_by_one = selector->kind == PurgeKind::kOlderThan ||
                          selector->kind == PurgeKind::kExpired ||
                          selector->kind == PurgeKind::kNamespace;
  const Result<CacheStats> before =
      one_by_one ? cache->GetStats() : Result<CacheStats>(CacheStats());
  uint64_t removed = 0;
  Status s;
  bool interrupted = false;  // an age purge stopped before its cutoff
  const auto start = std::chrono::steady_clock::now();
  if (selector->kind != PurgeKind::kOlderThan) {
    Result<uint64_t> n = llmcache::Purge(*cache, *selector);
    s = n.status();
    if (n.ok()) removed = *n;
  } else {
    // The creation times of the old entries, oldest first from the time
    // index (the walk stops at the first young entry: it costs the old
    // entries, not the database); then the engine's purge by age, in steps
    // of increasing age so that the bar moves. The last step is the
    // selector's cutoff: what it removes is exactly what it says. (Few steps:
    // each walks the index records the previous ones deleted again.)
    const int64_t cutoff = NowMs() - selector->age_ms;
    std::vector<int64_t> created;
    {
      Progress scan(io.err, io.stderr_is_tty, "scanning");
      s = cache->ForEachEntryByAge(
          std::nullopt, /*newest_first=*/false,
          [&](const EntryView& v) {
            if (InterruptSignal() != 0) {
              interrupted = true;
              return false;
            }
            if (v.entry.meta.created_ms >= cutoff) return false;
            created.push_back(v.entry.meta.created_ms);
            scan.Add();
            return true;
          },
          [&](std::string_view, const Status&) { scan.Add(); });
    }
    Progress purge(io.err, io.stderr_is_tty, "purging", created.size());
    const size_t step = std::max<size_t>(4096, created.size() / 20);
    interrupted = interrupted || InterruptSignal() != 0;
    for (size_t i = step; s.ok() && i < created.size(); i += step) {
      if (InterruptSignal() != 0) {
        interrupted = true;
        break;
      }
      // Entries created before created[i]: the next `step` oldest.
      Result<uint64_t> n = cache->PurgeCreatedBefore(created[i]);
      s = n.status();
      if (n.ok()) removed += *n;
      purge.Update(removed);
    }
    if (s.ok() && !interrupted) {
      // The cutoff of the scan, not an age from now: a purge of many
      // entries took seconds, and the cutoff moved on with the clock.
      Result<uint64_t> n = cache->PurgeCreatedBefore(cutoff);
      s = n.status();
      if (n.ok()) removed += *n;
      purge.Update(removed);
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (!s.ok()) {
    io.err << "llmcache purge: " << s << " (after removing " << removed
           << " entries)\n";
    return kExitFailure;
  }
  // A purge by age, expiry or namespace deletes entries one by one: their
  // deleted creation-time records stay in the files until a compaction
  // reaches them, and every walk from their end of a model's records steps
  // over each (after an age purge of 7.07M of 10M entries, `models` took
  // 1.83 s instead of 0.09 s, a purge that removed nothing 3.98 s instead of
  // 0.05 s), and their space is not given back. A service's compactions
  // get there in time; a purge of at least a tenth of the entries compacts
  // the database at once (as `llmcache compact`: 37 s there).
  double compact_seconds = -1;
  bool compact_interrupted = false;
  if (one_by_one && !interrupted && before.ok() && removed >= 1024 &&
      removed * 10 >= before->entries) {
    if (!args.json) io.err << "compacting what the purge removed...\n";
    const auto compact_start = std::chrono::steady_clock::now();
    CompactOptions co;
    co.cancel = InterruptFlag();
    const Status c = cache->Compact(co);
    compact_seconds = std::chrono::duration<double>(
                          std::chrono::steady_clock::now() - compact_start)
                          .count();
    if (!c.ok()) {
      // The purge is done; only its space waits for a later compaction.
      io.err << "llmcache purge: removed " << removed
             << " entries; the compaction after it did not finish: " << c
             << " (`llmcache compact` does it)\n";
      compact_seconds = -1;
      compact_interrupted = c.code() == StatusCode::kCancelled;
    }
  }
  // A key that is not stored is "not found" (exit 1, as `show`); the other
  // selectors name sets, which may be empty.
  const bool not_found = selector->kind == PurgeKind::kKey && removed == 0;
  if (args.json) {
    json::object o{{"removed", removed},
                   {"what", what},
                   {"seconds", seconds},
                   {"entries_per_second", EntriesPerSecond(removed, seconds)}};
    if (compact_seconds >= 0) o["compact_seconds"] = compact_seconds;
    if (interrupted) o["interrupted"] = InterruptName();
    PrintJsonLine(o, io.out);
  } else {
    io.out << "removed " << removed << (removed == 1 ? " entry" : " entries")
           << " (" << what << ") in " << RateText(removed, seconds);
    if (compact_seconds >= 0) {
      char buf[48];
      std::snprintf(buf, sizeof(buf), "; compacted in %.2f s", compact_seconds);
      io.out << buf;
    }
    io.out << "\n";
  }
  if (compact_interrupted) return InterruptExitCode();
  if (interrupted) {
    io.err << "llmcache purge: interrupted (" << InterruptName() << "): the "
           << removed
           << " oldest are removed; the same purge again removes what "
              "remains of "
           << what << "\n";
    return InterruptExitCode();
  }
  if (not_found) {
    io.err << "llmcache purge: not found: " << what << " is not stored\n";
    return kExitFailure;
  }
  return kExitOk;
}

int Compact(const std::string& db, bool as_json, const Io& io) {
  int rc = kExitOk;
  std::unique_ptr<Cache> cache =
      OpenForWriting(db, /*create=*/false, io, &rc, "compact");
  if (!cache) return rc;
  Result<CacheStats> before = cache->GetStats();
  if (!before.ok()) {
    io.err << "llmcache compact: " << before.status() << "\n";
    return kExitFailure;
  }
  CompactOptions co;
  co.cancel = InterruptFlag();
  Status s = cache->Compact(co);
  if (s.code() == StatusCode::kCancelled) {
    io.err << "llmcache compact: interrupted (" << InterruptName()
           << "): what it compacted stays compacted, nothing is lost; the "
              "same command again finishes the work\n";
    return InterruptExitCode();
  }
  if (!s.ok()) {
    io.err << "llmcache compact: " << s << "\n";
    return kExitFailure;
  }
  Result<CacheStats> after = cache->GetStats();
  if (!after.ok()) {
    io.err << "llmcache compact: " << after.status() << "\n";
    return kExitFailure;
  }
  const uint64_t b = before->disk_bytes, a = after->disk_bytes;
  if (as_json) {
    PrintJsonLine(json::object{{"disk_bytes_before", b},
                               {"disk_bytes_after", a},
                               {"entries", after->entries}},
                  io.out);
  } else {
    io.out << "before  " << FormatBytes(b) << "\n"
           << "after   " << FormatBytes(a) << "\n"
           << "saved   "
           << (b >= a ? FormatBytes(b - a)
                      : std::string("-").append(FormatBytes(a - b)))
           << "\n";
  }
  return kExitOk;
}

}  // namespace llmcache::cli
