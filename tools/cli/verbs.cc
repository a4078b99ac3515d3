// Reporting verbs: stats, models, ls, show, key, get (the mutating purge
// and compact are in mutate.cc).

#include "cli/verbs.h"

#include <ftw.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <vector>

#include "cli/json_print.h"
#include "cli/progress.h"
#include "llmcache/key.h"
#include "llmcache/net/json_util.h"
#include "llmcache/policy.h"
#include "llmcache/purge.h"
#include "llmcache/stats_json.h"

namespace llmcache::cli {
namespace json = boost::json;

namespace {

// Bytes of every file under the database directory (what the operator's
// disk sees, also in inspection mode where the engine knows no file sizes).
// Walked with nftw, not std::filesystem's iterators, which in libstdc++ 12
// end the process (std::terminate) when an allocation fails.
// A symbolic link to the directory is followed (nftw's FTW_PHYS would not
// follow even the starting path); links inside it are not.
uint64_t DirectoryBytes(const std::string& path) {
  static thread_local uint64_t total;
  total = 0;
  std::unique_ptr<char, decltype(&std::free)> real(
      ::realpath(path.c_str(), nullptr), &std::free);
  (void)::nftw(
      real != nullptr ? real.get() : path.c_str(),
      [](const char*, const struct stat* st, int type, struct FTW*) {
        if (type == FTW_F && S_ISREG(st->st_mode)) {
          total += static_cast<uint64_t>(st->st_size);
        }
        return 0;
      },
      16, FTW_PHYS);
  return total;
}

// A left-aligned text table; numeric columns are right-aligned.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : width_(header.size(), 0) {
    rows_.push_back(std::move(header));
  }
  // Cells are printed as Printable() makes them.
  void Add(std::vector<std::string> row) {
    for (std::string& cell : row) cell = Printable(cell);
    rows_.push_back(std::move(row));
  }
  // Columns at least this wide (for a table printed in chunks).
  void SetMinWidths(const std::vector<size_t>& widths) {
    for (size_t i = 0; i < widths.size() && i < width_.size(); ++i) {
      width_[i] = std::max(width_[i], widths[i]);
    }
  }
  // Prints the rows added since the last call (the header with the first),
  // each column as wide as its widest cell so far, and forgets them: a long
  // listing is printed in chunks, aligned by its first one, not held whole.
  void Print(std::ostream& out, const std::vector<bool>& right_align) {
    for (const auto& r : rows_) {
      for (size_t i = 0; i < r.size() && i < width_.size(); ++i) {
        width_[i] = std::max(width_[i], DisplayWidth(r[i]));
      }
    }
    for (const auto& r : rows_) {
      std::string line;
      for (size_t i = 0; i < r.size() && i < width_.size(); ++i) {
        const bool right = i < right_align.size() && right_align[i];
        const std::string fill(width_[i] - DisplayWidth(r[i]), ' ');
        if (i > 0) line += "  ";
        if (right) line += fill;
        line += r[i];
        if (!right && i + 1 < r.size()) line += fill;
      }
      out << line << "\n";
    }
    rows_.clear();
  }

 private:
  std::vector<std::vector<std::string>> rows_;
  std::vector<size_t> width_;
};

std::string Percent(double f) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%.1f%%", f * 100);
  return buf;
}

double Usd(int64_t nanousd) { return static_cast<double>(nanousd) / 1e9; }

json::object UsageJson(const Usage& u) {
  return json::object{{"prompt_tokens", u.prompt_tokens},
                      {"completion_tokens", u.completion_tokens},
                      {"cached_tokens", u.cached_tokens},
                      {"cache_write_tokens", u.cache_write_tokens},
                      {"cost_nanousd", u.cost_nanousd}};
}

std::string_view EntryEndpointName(uint8_t flags) {
  return EndpointName(EntryEndpoint(flags));
}

json::array FlagNames(uint8_t flags) {
  json::array a;
  if (flags & kEntryFlagFromStream) a.emplace_back("stream");
  if (flags & kEntryFlagToolCalls) a.emplace_back("tool_calls");
  if (flags & kEntryFlagImported) a.emplace_back("imported");
  return a;
}

std::string TtlLeft(const EntryMeta& m, int64_t now) {
  if (m.expires_ms == 0) return "never";
  if (m.ExpiredAt(now)) return "expired";
  return FormatDuration(m.expires_ms - now);
}

// The full description of an entry (show, get).
json::object EntryJson(const std::string& key_hex, const Entry& e,
                       size_t stored_bytes, int64_t now) {
  json::object o{{"key", key_hex},
                 {"endpoint", EntryEndpointName(e.meta.flags)},
                 {"model", e.meta.model},
                 {"resolved_model", e.meta.resolved_model},
                 {"namespace", e.meta.ns},
                 {"created_ms", e.meta.created_ms},
                 {"expires_ms", e.meta.expires_ms},
                 {"age_ms", now - e.meta.created_ms},
                 {"expired", e.meta.ExpiredAt(now)},
                 {"size", stored_bytes},
                 {"flags", FlagNames(e.meta.flags)},
                 {"usage", UsageJson(e.meta.usage)}};
  boost::system::error_code ec;
  json::value body = net::json_util::ParseJson(e.body, ec);
  if (ec) {
    o["response"] = e.body;
    o["response_is_json"] = false;
  } else {
    o["response"] = std::move(body);
  }
  return o;
}

void PrintEntry(const std::string& key_hex, const Entry& e, size_t stored_bytes,
                int64_t now, std::ostream& out) {
  const EntryMeta& m = e.meta;
  out << "key             " << key_hex << "\n"
      << "endpoint        " << EntryEndpointName(m.flags) << "\n"
      << "model           " << Printable(m.model) << "\n"
      << "resolved model  "
      << (m.resolved_model.empty() ? "-" : Printable(m.resolved_model)) << "\n"
      << "namespace       " << (m.ns.empty() ? "(none)" : Printable(m.ns))
      << "\n"
      << "created         " << FormatTime(m.created_ms) << " ("
      << FormatDuration(now - m.created_ms) << " ago)\n"
      << "expires         "
      << (m.expires_ms == 0 ? std::string("never")
                            : FormatTime(m.expires_ms) + " (" +
                                  (m.ExpiredAt(now) ? std::string("expired")
                                                    : "in " + TtlLeft(m, now)) +
                                  ")")
      << "\n"
      << "size            " << FormatBytes(stored_bytes) << "\n"
      << "tokens          " << m.usage.prompt_tokens << " prompt + "
      << m.usage.completion_tokens << " completion";
  if (m.usage.cached_tokens > 0) {
    out << " (" << m.usage.cached_tokens << " prompt-cached)";
  }
  out << "\n"
      << "cost            " << FormatUsd(m.usage.cost_nanousd) << "\n";
  json::array flags = FlagNames(m.flags);
  if (!flags.empty()) {
    out << "flags          ";
    for (const auto& f : flags) out << " " << f.as_string();
    out << "\n";
  }
  out << "response:\n";
  boost::system::error_code ec;
  json::value body = net::json_util::ParseJson(e.body, ec);
  if (ec) {
    out << Printable(e.body) << "\n";
  } else {
    // Boost.JSON escapes C0 controls in strings, not DEL or C1 ones.
    std::ostringstream pretty;
    PrettyPrint(body, pretty);
    out << Printable(pretty.str(), /*keep_newlines=*/true);
    out << "\n";
  }
}

struct ComputedKey {
  RequestKey key;
  RequestInfo info;
  Decision decision;
  std::string ns;
  std::string scope;
};

// Reads and keys the request of `args`; prints errors.
std::optional<ComputedKey> ComputeKey(const KeyArgs& args, const Io& io,
                                      std::string* canonical) {
  std::optional<CacheMode> mode = CacheModeFromName(args.mode);
  if (!mode) {
    io.err << "llmcache: unknown --mode '" << args.mode
           << "' (deterministic, always, never)\n";
    return std::nullopt;
  }
  std::optional<std::string> body = ReadInput(args.input, io);
  if (!body) return std::nullopt;
  ComputedKey k;
  k.ns = args.ns;
  k.scope = args.scope;
  if (!args.api_key_env.empty()) {
    const char* v = std::getenv(args.api_key_env.c_str());
    if (v == nullptr || *v == '\0') {
      io.err << "llmcache: --api-key-env: $" << args.api_key_env
             << " is not set\n";
      return std::nullopt;
    }
    k.scope = ApiKeyScope(v);
  }
  const std::optional<Endpoint> endpoint = EndpointFromName(args.endpoint);
  if (!endpoint) {
    io.err << "llmcache: unknown --endpoint '" << args.endpoint
           << "' (chat_completions, embeddings, responses, messages)\n";
    return std::nullopt;
  }
  KeyBuilder builder;
  Result<RequestKey> key =
      builder.Compute(*body, KeyScope{k.ns, k.scope}, *endpoint, &k.info);
  if (!key.ok()) {
    io.err << "llmcache: the request "
           << (args.input == "-" ? "on stdin" : args.input)
           << " cannot be keyed: " << key.status().message() << "\n";
    return std::nullopt;
  }
  k.key = std::move(*key);
  k.decision = Decide(k.info, *mode);
  if (canonical != nullptr) {
    Result<std::string> c = builder.Canonicalize(*body, *endpoint);
    if (!c.ok()) {
      io.err << "llmcache: " << c.status() << "\n";
      return std::nullopt;
    }
    *canonical = std::move(*c);
  }
  return k;
}

// Opens `db` for reading and reads its statistics into *stats; null (with
// the error printed) on failure.
std::unique_ptr<Cache> OpenWithStats(const std::string& db, const Io& io,
                                     std::optional<CacheStats>* stats) {
  std::unique_ptr<Cache> cache = OpenForReading(db, io);
  if (!cache) return nullptr;
  Result<CacheStats> st = cache->GetStats();
  if (!st.ok()) {
    io.err << "llmcache: " << st.status() << "\n";
    return nullptr;
  }
  *stats = std::move(*st);
  return cache;
}

std::string DecisionText(const Decision& d) {
  if (d.cache) return "cacheable";
  return "bypass: " + std::string(BypassReasonName(d.reason));
}

}  // namespace

double EntriesPerSecond(uint64_t entries, double seconds) {
  return seconds > 0 ? static_cast<double>(entries) / seconds : 0.0;
}

std::string RateText(uint64_t entries, double seconds) {
  char buf[64];
  const double rate = EntriesPerSecond(entries, seconds);
  std::snprintf(buf, sizeof(buf),
                rate < 10 ? "%.2f s, %.1f entries/s" : "%.2f s, %.0f entries/s",
                seconds, rate);
  return buf;
}

int Stats(const std::string& db, bool as_json, const Io& io) {
  std::optional<CacheStats> st;
  std::unique_ptr<Cache> cache = OpenWithStats(db, io, &st);
  if (!cache) return kExitFailure;
  CacheStats& s = *st;
  if (s.disk_bytes == 0) s.disk_bytes = DirectoryBytes(db);
  json::object bypass;
  uint64_t bypass_total = 0;
  for (size_t i = 1; i < s.bypasses.size(); ++i) {
    bypass[BypassReasonName(static_cast<BypassReason>(i))] = s.bypasses[i];
    bypass_total += s.bypasses[i];
  }
  if (as_json) {
    // The engine's one shape (the proxy's /stats "cache" section too), with
    // the database path in front.
    json::object out{{"database", db}};
    json::value stats = json::parse(CacheStatsJson(s));
    for (auto& member : stats.as_object()) {
      out.emplace(member.key(), std::move(member.value()));
    }
    PrintJsonLine(out, io.out);
    return kExitOk;
  }
  std::ostream& out = io.out;
  out << "database       " << db << "\n"
      << "entries        " << s.entries << " (" << FormatBytes(s.bytes)
      << " uncompressed, " << FormatBytes(s.disk_bytes) << " on disk)\n";
  if (s.stored_bytes > 0 && s.bytes == 0) {
    // No entries to compare with (all purged): no percentage.
    out << "compressed     " << FormatBytes(s.stored_bytes)
        << " (no entries: removed ones, keys, indexes and filters that no "
           "compaction has dropped yet)\n";
  } else if (s.stored_bytes > 0) {
    out << "compressed     " << FormatBytes(s.stored_bytes) << " ("
        << Percent(s.compression_ratio())
        << " of the entries' uncompressed size";
    // Over 100%: the table files' bytes are more than entries (keys,
    // indexes and filters: most of a small database), and a purge's
    // entries stay in them until a compaction drops them.
    if (s.compression_ratio() > 1.0) {
      out << ": the files also hold keys, indexes, filters and removed "
             "entries that no compaction has dropped yet";
    }
    out << ")\n";
  }
  out << "hits           " << s.hits << "\n"
      << "misses         " << s.misses << " (" << s.expired << " expired)\n"
      << "hit rate       " << Percent(s.hit_rate()) << "\n"
      << "bypasses       " << bypass_total;
  if (bypass_total > 0) {
    out << " (";
    bool first = true;
    for (const auto& kv : bypass) {
      if (kv.value().as_uint64() == 0) continue;
      if (!first) out << ", ";
      first = false;
      out << kv.key() << " " << kv.value().as_uint64();
    }
    out << ")";
  }
  out << "\n"
      << "inserts        " << s.inserts << "\n"
      << "flushes        " << s.flushes << "\n"
      << "evictions      " << s.evictions << "\n"
      << "purged         " << s.purged << "\n"
      << "store errors   " << s.store_errors << "\n"
      << "tokens saved   " << s.tokens_saved << "\n"
      << "cost saved     " << FormatUsd(s.cost_saved_nanousd) << "\n";
  // The provider's prompt cache (upstream; not the response cache above).
  uint64_t pc_read = 0, pc_write = 0;
  int64_t pc_saved = 0, pc_premium = 0;
  for (const ModelStats& m : s.models) {
    pc_read += m.provider_cache_read_tokens;
    pc_write += m.provider_cache_write_tokens;
    pc_saved += m.provider_cache_saved_nanousd;
    pc_premium += m.provider_cache_write_premium_nanousd;
  }
  out << "provider cache " << pc_read << " tokens read (saved "
      << FormatUsd(pc_saved) << "), " << pc_write << " written (premium "
      << FormatUsd(pc_premium) << ")\n";
  if (!s.models.empty()) {
    out << "\n";
    Table t(
        {"MODEL", "ENTRIES", "BYTES", "HITS", "TOKENS SAVED", "COST SAVED"});
    for (const ModelStats& m : s.models) {
      t.Add({m.model, std::to_string(m.entries), FormatBytes(m.bytes),
             std::to_string(m.hits), std::to_string(m.tokens_saved),
             FormatUsd(m.cost_saved_nanousd)});
    }
    t.Print(out, {false, true, true, true, true, true});
  }
  return kExitOk;
}

int Models(const std::string& db, bool as_json, const Io& io) {
  std::optional<CacheStats> st;
  std::unique_ptr<Cache> cache = OpenWithStats(db, io, &st);
  if (!cache) return kExitFailure;
  // Oldest and newest entries from the ends of the time index: a few reads
  // per model, whatever the number of entries. Only models the statistics
  // say have entries are asked for (one without any would cost a scan of
  // the index).
  std::vector<std::string> counted;
  for (const ModelStats& m : st->models) {
    if (m.entries > 0) counted.push_back(m.model);
  }
  Result<std::map<std::string, AgeRange, std::less<>>> ranges =
      cache->AgeRanges(counted);
  if (!ranges.ok()) {
    io.err << "llmcache: " << ranges.status() << "\n";
    return kExitFailure;
  }
  auto range_of = [&](const std::string& model) -> const AgeRange* {
    auto it = ranges->find(model);
    return it == ranges->end() ? nullptr : &it->second;
  };
  const int64_t now = NowMs();
  if (as_json) {
    json::array models;
    for (const ModelStats& m : st->models) {
      json::object o{{"model", m.model},
                     {"entries", m.entries},
                     {"bytes", m.bytes},
                     {"hits", m.hits},
                     {"tokens_saved", m.tokens_saved},
                     {"cost_saved_usd", Usd(m.cost_saved_nanousd)},
                     {"last_resolved_model", m.last_resolved_model},
                     {"drift_events", m.drift_events},
                     {"own_column_family", m.own_column_family}};
      if (const AgeRange* r = range_of(m.model)) {
        o["oldest_ms"] = r->oldest_ms;
        o["newest_ms"] = r->newest_ms;
      } else {
        o["oldest_ms"] = nullptr;
        o["newest_ms"] = nullptr;
      }
      models.push_back(std::move(o));
    }
    // `models` no longer reads every entry, so it finds no corrupt ones
    // (`verify` does); the member stays for readers of this shape.
    PrintJsonLine(
        json::object{{"models", std::move(models)}, {"corrupt_entries", 0}},
        io.out);
    return kExitOk;
  }
  if (st->models.empty()) {
    io.out << "no models in " << db << "\n";
    return kExitOk;
  }
  Table t({"MODEL", "ENTRIES", "BYTES", "HITS", "OLDEST", "NEWEST",
           "LAST RESOLVED MODEL", "DRIFTS"});
  for (const ModelStats& m : st->models) {
    const AgeRange* r = range_of(m.model);
    t.Add({m.model, std::to_string(m.entries), FormatBytes(m.bytes),
           std::to_string(m.hits),
           r ? FormatDuration(now - r->oldest_ms) + " ago" : "-",
           r ? FormatDuration(now - r->newest_ms) + " ago" : "-",
           m.last_resolved_model.empty() ? "-" : m.last_resolved_model,
           std::to_string(m.drift_events)});
  }
  t.Print(io.out, {false, true, true, true, true, true, false, true});
  return kExitOk;
}

int Ls(const std::string& db, const LsArgs& args, const Io& io) {
  std::unique_ptr<Cache> cache = OpenForReading(db, io);
  if (!cache) return kExitFailure;
  if (args.model) {
    if (std::optional<std::string> e = UnknownModel(*cache, *args.model)) {
      io.err << "llmcache ls: " << *e << "\n";
      return kExitFailure;
    }
  }
  const int64_t now = NowMs();
  // Rows are printed in chunks as the walk finds them, so that a listing of
  // every entry (--limit 0) starts at once and holds one chunk, not the
  // database: the JSON object's "entries" come first, then its totals.
  constexpr size_t kChunk = 4096;
  Table table(
      {"KEY", "ENDPOINT", "MODEL", "AGE", "TTL LEFT", "SIZE", "TOKENS"});
  const std::vector<bool> right = {false, false, false, true, true, true, true};
  // The statistics, read once if at all: model names for the widths, entry
  // counts for the total of a truncated listing.
  std::optional<Result<CacheStats>> stats_once;
  auto stats = [&]() -> const Result<CacheStats>& {
    if (!stats_once) stats_once.emplace(cache->GetStats());
    return *stats_once;
  };
  if (!args.json && (args.limit == 0 || args.limit > kChunk)) {
    // Later chunks align with the first when their cells fit the widest a
    // listing usually has: a key, "chat_completions", the longest model
    // name with a variant (":thinking"), ages of years, sizes and token
    // counts of millions.
    size_t model_width = 24;
    if (const Result<CacheStats>& st = stats(); st.ok()) {
      for (const ModelStats& m : st->models) {
        model_width =
            std::max(model_width, DisplayWidth(Printable(m.model)) + 10);
      }
    }
    table.SetMinWidths({64, 16, model_width, 9, 9, 10, 15});
  }
  std::string json_chunk;
  if (args.json) BeginJsonEntries(io.out);
  uint64_t listed = 0, corrupt = 0;
  bool truncated = false;
  auto flush = [&] {
    if (args.json) {
      io.out << json_chunk;
      json_chunk.clear();
    } else {
      table.Print(io.out, right);
    }
  };
  // Newest first from the time index: the walk stops at the entry past the
  // limit (which tells that the listing is truncated), so it reads what is
  // printed, not the database.
  Status s = cache->ForEachEntryByAge(
      args.model, /*newest_first=*/true,
      [&](const EntryView& v) {
        if (args.limit != 0 && listed == args.limit) {
          truncated = true;
          return false;
        }
        const EntryMeta& m = v.entry.meta;
        if (args.json) {
          if (listed != 0) json_chunk += ',';
          json_chunk += json::serialize(
              json::object{{"key", DigestToHex(v.digest)},
                           {"endpoint", EntryEndpointName(m.flags)},
                           {"model", m.model},
                           {"resolved_model", m.resolved_model},
                           {"namespace", m.ns},
                           {"created_ms", m.created_ms},
                           {"expires_ms", m.expires_ms},
                           {"size", v.stored_bytes},
                           {"prompt_tokens", m.usage.prompt_tokens},
                           {"completion_tokens", m.usage.completion_tokens},
                           {"cost_nanousd", m.usage.cost_nanousd}});
        } else {
          table.Add({DigestToHex(v.digest),
                     std::string(EntryEndpointName(m.flags)), m.model,
                     FormatDuration(now - m.created_ms), TtlLeft(m, now),
                     FormatBytes(v.stored_bytes),
                     std::to_string(m.usage.prompt_tokens) + "+" +
                         std::to_string(m.usage.completion_tokens)});
        }
        if (++listed % kChunk == 0) flush();
        return true;
      },
      [&](std::string_view key, const Status& st) {
        ++corrupt;
        io.err << "llmcache: corrupt entry " << key << ": " << st.message()
               << "\n";
      });
  flush();
  // The total of a truncated listing is the statistics' entry count (the
  // entries were not all read); at least one more than printed.
  uint64_t total = listed;
  if (truncated) {
    uint64_t counted = 0;
    if (const Result<CacheStats>& st = stats(); st.ok()) {
      if (!args.model) {
        counted = st->entries;
      } else {
        const std::string_view base = BaseModel(*args.model);
        for (const ModelStats& m : st->models) {
          if (m.model == base) counted = m.entries;
        }
      }
    }
    total = std::max<uint64_t>(counted, listed + 1);
  }
  if (args.json) {
    json::object tail{{"total", total}, {"truncated", truncated}};
    if (!s.ok()) tail["error"] = s.ToString();
    EndJsonEntries(tail, io.out);
  }
  if (!s.ok()) {
    io.err << "llmcache: " << s << "\n";
    return kExitFailure;
  }
  if (truncated) {
    io.err << "(" << listed << " of " << total
           << " entries; --limit 0 lists all)\n";
  }
  return corrupt > 0 ? kExitFailure : kExitOk;
}

int Show(const std::string& db, const std::string& key_hex, bool as_json,
         const Io& io) {
  Result<Digest> digest = DigestFromHex(key_hex);
  if (!digest.ok()) {
    io.err << "llmcache: '" << key_hex
           << "' is not a key (64 hex digits, as `llmcache ls` prints)\n";
    return kExitUsage;
  }
  std::unique_ptr<Cache> cache = OpenForReading(db, io);
  if (!cache) return kExitFailure;
  Result<std::shared_ptr<const Entry>> e = cache->Find(*digest);
  if (!e.ok()) {
    io.err << "llmcache: " << e.status() << "\n";
    return kExitFailure;
  }
  if (*e == nullptr) {
    io.err << "llmcache: no entry " << DigestToHex(*digest) << " in " << db
           << "\n";
    return kExitFailure;
  }
  const Entry& entry = **e;
  const size_t size = StoredSize(entry);
  const int64_t now = NowMs();
  if (as_json) {
    PrintJsonLine(EntryJson(DigestToHex(*digest), entry, size, now), io.out);
  } else {
    PrintEntry(DigestToHex(*digest), entry, size, now, io.out);
  }
  return kExitOk;
}

int Key(const KeyArgs& args, const Io& io) {
  std::string canonical;
  std::optional<ComputedKey> k =
      ComputeKey(args, io, args.canonical ? &canonical : nullptr);
  if (!k) return kExitFailure;
  if (args.json) {
    json::object o{
        {"key", k->key.Hex()},
        {"cacheable", k->decision.cache},
        {"bypass_reason",
         k->decision.cache ? json::value(nullptr)
                           : json::value(BypassReasonName(k->decision.reason))},
        {"endpoint", EndpointName(k->info.endpoint)},
        {"model", k->key.model},
        {"base_model", k->key.base_model},
        {"stream", k->info.stream},
        {"namespace", k->ns},
        {"scope", k->scope}};
    if (args.canonical) o["canonical"] = canonical;
    PrintJsonLine(o, io.out);
    return kExitOk;
  }
  io.out << k->key.Hex() << "\n"
         << "decision   " << DecisionText(k->decision) << " (mode " << args.mode
         << ")\n"
         << "endpoint   " << EndpointName(k->info.endpoint) << "\n"
         << "model      " << Printable(k->key.model);
  if (k->key.base_model != k->key.model) {
    io.out << " (column family of " << Printable(k->key.base_model) << ")";
  }
  io.out << "\n"
         << "namespace  " << (k->ns.empty() ? "(none)" : k->ns) << "\n"
         << "scope      " << (k->scope.empty() ? "(shared)" : k->scope) << "\n";
  if (args.canonical) io.out << "canonical  " << canonical << "\n";
  return kExitOk;
}

int Get(const std::string& db, const KeyArgs& args, const Io& io) {
  std::optional<ComputedKey> k = ComputeKey(args, io, nullptr);
  if (!k) return kExitFailure;
  if (k->info.input_is_batch) {
    // Nothing is stored under a batch's own key: each input is an entry
    // of its own, so "not cached" would be wrong whatever is stored.
    io.err << "llmcache get: an embeddings request whose \"input\" is an "
              "array is stored input by input, not as one entry; look each "
              "input up as a request of its own\n";
    return kExitUsage;
  }
  std::unique_ptr<Cache> cache = OpenForReading(db, io);
  if (!cache) return kExitFailure;
  LookupOptions lo;
  lo.record_stats = false;
  Result<LookupResult> r = cache->Lookup(k->key, lo);
  if (!r.ok()) {
    io.err << "llmcache: " << r.status() << "\n";
    return kExitFailure;
  }
  const char* outcome = r->outcome == LookupOutcome::kHit       ? "hit"
                        : r->outcome == LookupOutcome::kExpired ? "expired"
                                                                : "miss";
  const int64_t now = NowMs();
  const size_t size = r->hit() ? StoredSize(*r->entry) : 0;
  if (args.json) {
    json::object o{{"key", k->key.Hex()},
                   {"cached", r->hit()},
                   {"outcome", outcome},
                   {"cacheable", k->decision.cache}};
    if (!k->decision.cache) {
      o["bypass_reason"] = BypassReasonName(k->decision.reason);
    }
    if (r->hit()) o["entry"] = EntryJson(k->key.Hex(), *r->entry, size, now);
    PrintJsonLine(o, io.out);
    return r->hit() ? kExitOk : kExitFailure;
  }
  io.out << k->key.Hex() << "\n";
  if (!k->decision.cache) {
    io.out << "note: this request bypasses the cache ("
           << BypassReasonName(k->decision.reason)
           << "): the service would not look it up\n";
  }
  if (r->hit()) {
    io.out << "cached\n";
    PrintEntry(k->key.Hex(), *r->entry, size, now, io.out);
  } else if (r->outcome == LookupOutcome::kExpired) {
    io.out << "not cached (an expired entry is waiting for compaction)\n";
  } else {
    io.out << "not cached\n";
  }
  // Like `show` of a key that is not there (and grep): a script can test
  // the exit status.
  return r->hit() ? kExitOk : kExitFailure;
}

}  // namespace llmcache::cli
