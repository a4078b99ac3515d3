// The verbs of the `llmcache` command. Each returns an exit code (see
// ExitCode in cli/util.h) and writes its report to io.out, errors and
// progress to io.err. tools/llmcache.cc only maps arguments onto these.

#ifndef LLMCACHE_TOOLS_CLI_VERBS_H_
#define LLMCACHE_TOOLS_CLI_VERBS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "cli/util.h"
#include "llmcache/cache.h"

namespace llmcache::cli {

// `stats`: totals, bypasses by reason, savings; and per model.
int Stats(const std::string& db, bool json, const Io& io);

// `models`: one row per model, with its oldest and newest entry (from the
// ends of the time index: Cache::AgeRanges).
int Models(const std::string& db, bool json, const Io& io);

struct LsArgs {
  std::optional<std::string> model;
  uint64_t limit = 100;  // 0 = all
  bool json = false;
};
// `ls`: entries, newest first (ties by key), read from the time index
// (Cache::ForEachEntryByAge) only as far as the limit: a truncated
// listing's total is the statistics' entry count.
int Ls(const std::string& db, const LsArgs& args, const Io& io);

// `show KEY`: one entry's metadata and pretty-printed response.
int Show(const std::string& db, const std::string& key_hex, bool json,
         const Io& io);

struct KeyArgs {
  std::string input = "-";  // file or "-" for stdin
  bool canonical = false;
  std::string ns;
  std::string scope;
  // Name of an environment variable holding an API key: its scope, as the
  // proxy derives it (ApiKeyScope), is used. Wins over `scope`.
  std::string api_key_env;
  std::string mode = "deterministic";
  // The endpoint the body is for (EndpointFromName): chat_completions,
  // embeddings, responses, messages.
  std::string endpoint = "chat_completions";
  bool json = false;
};
// `key`: the key of a request and the cache decision.
int Key(const KeyArgs& args, const Io& io);
// `get`: the key of a request and whether it is cached.
int Get(const std::string& db, const KeyArgs& args, const Io& io);

struct PurgeArgs {
  std::optional<std::string> model;
  bool all = false;
  std::optional<std::string> key;
  std::optional<std::string> ns;
  bool expired = false;
  std::optional<std::string> older_than;
  bool yes = false;
  bool json = false;
};
// `purge`: exactly one selector. --older-than shows progress and reports
// its rate.
int Purge(const std::string& db, const PurgeArgs& args, const Io& io);

// The shared tier (Redis / Redis Cluster) for `stats`, `models` and
// `purge --redis URL`: no local database, no lock.
struct SharedArgs {
  std::string url;  // password: in it, else $LLMCACHE_REDIS_PASSWORD
  std::string prefix = "llmcache:";
  int64_t timeout_ms = 2000;
  std::string ca_file;
};
// `export --redis` / `verify --redis`: the shared tier's live entries, in
// export's format / checked as verify checks the database.
int SharedExport(const SharedArgs& args,
                 const std::optional<std::string>& model,
                 const std::string& output, const Io& io);
int SharedVerify(const SharedArgs& args,
                 const std::optional<std::string>& model, bool json,
                 const Io& io);
// `stats --redis` (fleet totals and per model) / `models --redis`
// (`per_model_only`).
int SharedStats(const SharedArgs& args, bool per_model_only, bool json,
                const Io& io);
// `purge --redis`: --model or --all (a new generation: every instance
// misses the old entries at once) or --key (DEL).
int SharedPurge(const SharedArgs& args, const PurgeArgs& purge, const Io& io);

// The rate of a walk over `entries` entries in `seconds` (0 when no time was
// measured), and "1.25 s, 12345 entries/s" for a verb's final line
// (export, verify, purge --older-than).
double EntriesPerSecond(uint64_t entries, double seconds);
std::string RateText(uint64_t entries, double seconds);

// `compact`: full compaction, space before and after.
int Compact(const std::string& db, bool json, const Io& io);

// `export`: one JSON object per entry and line to `output` ("-" = io.out).
int Export(const std::string& db, const std::optional<std::string>& model,
           const std::string& output, const Io& io);

// Export and verify over any source of entries (the local database, or the
// shared tier): `walk` is Cache::ForEachEntry's shape; `total` (0 when
// unknown) drives the progress bar.
using EntryWalker =
    std::function<Status(const std::optional<std::string>& model,
                         const std::function<bool(const EntryView&)>& fn,
                         const std::function<void(std::string_view key,
                                                  const Status&)>& on_corrupt)>;
int ExportWith(const EntryWalker& walk, uint64_t total,
               const std::optional<std::string>& model,
               const std::string& output, const Io& io);
// `files`, when given, checks the store's files whole after the walk (each
// damaged one is a problem, reported with what it holds), also when the walk
// stopped at one.
int VerifyWith(const EntryWalker& walk, uint64_t total,
               const std::optional<std::string>& model, bool as_json,
               const Io& io,
               const std::function<Result<std::vector<Cache::FileProblem>>()>&
                   files = nullptr);

// `import`: entries from `input` ("-" = io.in), as written by export,
// written as sorted table files (Cache::NewBulkLoader), or with `per_entry`
// one Cache::Insert each (the slower former path, kept for comparison).
// With `compact`, a full compaction follows (the loaded files are not
// compressed; it rewrites them with the store's compression). A batch holds
// `batch_mib` MiB of entries (BulkLoadOptions::max_buffer_bytes).
int Import(const std::string& db, const std::string& input, bool json,
           bool per_entry, bool compact, uint64_t batch_mib, const Io& io);

// `import --proxy URL`: the lines of `input` sent to a running `llmcache
// serve` at `proxy` (its root URL) in requests of about 1 MiB, POST
// /admin/import with `admin_token`; the proxy stores them in the database it
// holds, entry by entry. A request over the proxy's body limit is split in
// halves. With `compact`, POST /admin/compact follows. Reports as `import`.
int ImportViaProxy(const std::string& proxy, const std::string& admin_token,
                   const std::string& input, bool json, bool compact,
                   const Io& io);

// `verify`: decodes every entry and parses every stored response.
int Verify(const std::string& db, const std::optional<std::string>& model,
           bool json, const Io& io);

struct WarmArgs {
  // JSONL: a request body per line, for `endpoint`; or a line
  // {"endpoint": NAME, "body": {...}} for a body of another endpoint.
  std::string input;  // "-" = io.in
  std::string endpoint = "chat_completions";
  std::string upstream = "https://openrouter.ai/api/v1";
  // A running `llmcache serve` (its base URL; "/v1" when it has no path) to
  // send the requests through instead of the upstream: the database is then
  // only read, to skip what is cached, and the proxy stores the answers.
  std::string proxy;
  std::string proxy_token;  // the proxy's --client-token, if it has one
  std::string ca_file;
  int concurrency = 4;
  std::string mode = "deterministic";
  std::string ns;
  bool shared_cache = false;
  std::optional<int64_t> ttl_s;
  int64_t timeout_s = 600;
  bool json = false;
};
// `warm`: sends every request not yet cached through the cached client, or
// through a running proxy (WarmArgs::proxy).
int Warm(const std::string& db, const WarmArgs& args, const Io& io);

}  // namespace llmcache::cli

#endif  // LLMCACHE_TOOLS_CLI_VERBS_H_
