// llmcache: the command-line tool. Thin: it maps arguments (CLI11) onto the
// verbs in tools/cli/ and the libraries.
//
//   llmcache stats|models|ls|show|key|get|purge|compact|export|import|verify|
//            warm|serve|fake-openrouter ...      (llmcache VERB --help)
//
// Exit codes: 0 ok, 1 failure, 2 usage, 3 database in use (mutating verbs),
// 128 + signal after a long verb stopped on SIGINT/SIGTERM (cli/util.h).

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include "cli/util.h"
#include "cli/verbs.h"
#include "fake_openrouter.h"
#include "llmcache/key.h"
#include "llmcache/options.h"
#include "llmcache/policy.h"
#include "serve.h"

namespace {

// Set for the verbs whose stdout is a log (serve, fake-openrouter).
bool g_stdout_is_a_log = false;

// A name `known` does not take (a misspelt --mode or --endpoint) is a usage
// error, exit 2: exit 1 from `get` would read as "not cached".
template <typename Known>
CLI::Validator KnownName(Known known, std::string what, std::string choices) {
  return CLI::Validator(
      [known, what, choices](std::string& v) {
        return known(v) ? std::string()
                        : "unknown " + what + " '" + v + "' (" + choices + ")";
      },
      "NAME");
}

// Blocks until SIGINT or SIGTERM.
void WaitForSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
}

int FakeOpenRouterVerb(const std::string& listen, bool tls,
                       const std::string& ca_out, const std::string& api_key,
                       int threads, bool quiet) {
  llmcache::fake::FakeOptions o;
  if (!llmcache::cli::ParseListen(listen, &o.host, &o.port)) {
    std::cerr << "llmcache fake-openrouter: --listen wants HOST:PORT, got '"
              << listen << "'\n";
    return 2;
  }
  o.tls = tls;
  o.api_key = api_key;
  o.threads = threads;
  o.log_requests = !quiet;
  if (tls) {
    auto certs = llmcache::fake::TestCertificates::Generate();
    if (!certs.ok()) {
      std::cerr << "llmcache fake-openrouter: " << certs.status() << "\n";
      return 1;
    }
    o.cert_pem = certs->server_cert_pem;
    o.key_pem = certs->server_key_pem;
    std::ofstream out(ca_out);
    out << certs->ca_cert_pem;
    if (!out) {
      std::cerr << "llmcache fake-openrouter: cannot write " << ca_out << "\n";
      return 1;
    }
  }
  // Block the signals before threads start, so that only sigwait sees them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  auto fake = llmcache::fake::FakeOpenRouter::Start(o);
  if (!fake.ok()) {
    std::cerr << "llmcache fake-openrouter: " << fake.status() << "\n";
    return 1;
  }
  std::cout << "fake OpenRouter listening on " << (*fake)->base_url() << "\n";
  if (tls) std::cout << "trust its CA with: " << ca_out << "\n";
  std::cout << "faults by model id: fake/fault-<status>, fake/delay-<ms>, "
               "fake/hang, fake/cut, fake/reset, fake/error-200, ... "
               "(see net/fake/fake_openrouter.h)\n"
            << std::flush;
  WaitForSignal();
  (*fake)->Stop();
  return 0;
}

int Main(int argc, char** argv) {
  namespace cli = llmcache::cli;
  CLI::App app{
      "llmcache: a cache for LLM API calls. Inspect, purge, export, import, "
      "verify and warm a cache (read verbs and `warm --proxy` also while a "
      "service holds it), "
      "serve the caching proxy."};
  app.require_subcommand(1);
  app.footer(
      "Database: --db, else $LLMCACHE_DB, else $XDG_CACHE_HOME/llmcache, else "
      "~/.cache/llmcache.\n"
      "Exit codes: 0 ok, 1 failure (including 'not found' and bad input "
      "lines), 2 usage, 3 database in use by another process (mutating "
      "verbs and serve), 130/143 stopped by SIGINT/SIGTERM (import, export, "
      "verify, "
      "warm, compact and purge --older-than stop at the next entry and keep "
      "what they did; a second signal quits at once).");

  const std::string default_db = llmcache::DefaultDatabasePath();
  std::string db = default_db;
  bool json = false;
  auto add_db = [&](CLI::App* sub) {
    sub->add_option("--db", db, "Database directory")
        ->default_str(default_db)
        ->check(cli::CheckDbPath, "DIR");
  };
  auto add_json = [&](CLI::App* sub) {
    sub->add_flag("--json", json, "Machine-readable output (one JSON object)");
  };
  std::optional<std::string> model;
  cli::SharedArgs shared;
  auto add_redis = [&](CLI::App* sub) {
    sub->add_option("--redis", shared.url,
                    "The shared tier instead of a local database: "
                    "redis[s]://[user:password@]host:port[,host:port...] "
                    "(password also from $LLMCACHE_REDIS_PASSWORD)");
    sub->add_option("--redis-prefix", shared.prefix,
                    "Prefix of llmcache's Redis keys")
        ->capture_default_str();
    sub->add_option("--redis-ca-file", shared.ca_file,
                    "Extra trusted CA certificates (PEM) for rediss://");
  };

  auto* stats = app.add_subcommand(
      "stats", "Hits, misses, bypasses, savings, entries; total and per model");
  add_db(stats);
  add_json(stats);
  add_redis(stats);

  auto* models = app.add_subcommand(
      "models", "One row per model: entries, bytes, hits, oldest/newest");
  add_db(models);
  add_json(models);
  add_redis(models);

  cli::LsArgs ls_args;
  auto* ls = app.add_subcommand("ls", "List entries, newest first");
  add_db(ls);
  add_json(ls);
  ls->add_option("--model", ls_args.model, "Only this model (and variants)");
  ls->add_option("--limit", ls_args.limit, "At most this many (0 = all)")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& v) {
            return v.starts_with('-') ? std::string("must be 0 or more")
                                      : std::string();
          },
          "N>=0"));

  std::string show_key;
  auto* show =
      app.add_subcommand("show", "One entry: metadata and the stored response");
  add_db(show);
  add_json(show);
  show->add_option("KEY", show_key, "Key (64 hex digits)")->required();

  cli::KeyArgs key_args;
  auto add_key_options = [&](CLI::App* sub) {
    sub->add_option("REQUEST", key_args.input,
                    "Request body file, or - for stdin")
        ->capture_default_str();
    sub->add_option("--namespace", key_args.ns, "Namespace, as the service");
    sub->add_option("--scope", key_args.scope,
                    "Tenant scope, as the service uses it");
    sub->add_option("--api-key-env", key_args.api_key_env,
                    "Use the scope the proxy gives the API key in this "
                    "environment variable")
        ->check(CLI::Validator(
            [](std::string& name) -> std::string {
              const char* v = std::getenv(name.c_str());
              if (v == nullptr || *v == '\0') return "$" + name + " is not set";
              return std::string();
            },
            "VAR"));
    sub->add_option("--mode", key_args.mode,
                    "Cache mode: deterministic, always, never")
        ->capture_default_str()
        ->check(KnownName(
            [](std::string_view v) {
              return llmcache::CacheModeFromName(v).has_value();
            },
            "mode", "deterministic, always, never"));
    sub->add_option("--endpoint", key_args.endpoint,
                    "The API the body is for: chat_completions, embeddings, "
                    "responses, messages")
        ->capture_default_str()
        ->check(KnownName(
            [](std::string_view v) {
              return llmcache::EndpointFromName(v).has_value();
            },
            "endpoint", "chat_completions, embeddings, responses, messages"));
  };
  auto* key = app.add_subcommand(
      "key",
      "Print a request's key (first line) and the cache decision: why do two "
      "requests not share an entry?");
  key->footer("Exit codes: 0 ok, 1 failure, 2 usage.");  // no database
  add_key_options(key);
  add_json(key);
  key->add_flag("--canonical", key_args.canonical,
                "Also print the canonical JSON the key hashes");

  auto* get = app.add_subcommand(
      "get", "Compute a request's key and show whether it is cached");
  add_db(get);
  add_json(get);
  add_key_options(get);

  cli::PurgeArgs purge_args;
  auto* purge = app.add_subcommand(
      "purge",
      "Remove entries: one of --model, --all, --key, --namespace, --expired, "
      "--older-than");
  add_db(purge);
  add_json(purge);
  add_redis(purge);
  purge->add_option("--model", purge_args.model,
                    "Every entry of this model (drops its column family)");
  purge->add_flag("--all", purge_args.all, "Every entry");
  purge->add_option("--key", purge_args.key, "One entry");
  purge->add_option("--namespace", purge_args.ns, "Every entry of a namespace");
  purge->add_flag("--expired", purge_args.expired, "Every expired entry");
  purge->add_option("--older-than", purge_args.older_than,
                    "Entries created longer ago than this (90s, 15m, 2h, 7d)");
  purge->add_flag("-y,--yes", purge_args.yes,
                  "Do not ask for confirmation on a terminal");

  auto* compact = app.add_subcommand(
      "compact", "Full compaction: drop expired entries, print space");
  add_db(compact);
  add_json(compact);

  std::string export_out = "-";
  auto* exp = app.add_subcommand(
      "export",
      "Write entries as JSON lines (key, model, namespace, created, "
      "expires, usage, response)");
  add_db(exp);
  add_redis(exp);
  exp->add_option("--model", model, "Only this model (and variants)");
  exp->add_option("-o,--output", export_out, "File, or - for stdout")
      ->capture_default_str();

  std::string import_in = "-";
  bool import_per_entry = false;
  bool import_compact = false;
  uint64_t import_batch_mib = 64;
  auto* imp =
      app.add_subcommand("import",
                         "Read entries written by export; malformed lines are "
                         "reported by number and skipped");
  add_db(imp);
  add_json(imp);
  imp->add_option("FILE", import_in, "JSONL file, or - for stdin")
      ->capture_default_str();
  CLI::Option* imp_per_entry =
      imp->add_flag("--per-entry", import_per_entry,
                    "Insert entries one at a time instead of writing sorted "
                    "table files (slower; for comparison)");
  imp->add_flag("--compact", import_compact,
                "Compact afterwards: rewrites the loaded files (not "
                "compressed) with the store's compression (ZSTD with a "
                "dictionary, ~0.4x their size); otherwise the periodic "
                "compaction does");
  CLI::Option* imp_batch =
      imp->add_option("--batch-mib", import_batch_mib,
                      "Entries per batch of table files, in MiB; the import "
                      "holds up to twice this in memory, and a crash keeps "
                      "or drops each batch whole")
          ->check(CLI::Range(1, 4096))
          ->capture_default_str();
  std::string import_proxy, import_admin_token;
  imp->add_option("--proxy", import_proxy,
                  "Send the entries to a running `llmcache serve` at this "
                  "URL (e.g. http://127.0.0.1:8080; plain http on loopback "
                  "only), which stores them in the database it holds "
                  "(POST /admin/import, entry by entry; --compact then "
                  "asks it to compact)")
      ->excludes(imp_per_entry)
      ->excludes(imp_batch);
  imp->add_option("--admin-token", import_admin_token,
                  "The proxy's admin token (its --admin-token); prefer the "
                  "environment variable, since a flag's value shows in the "
                  "process list")
      ->envname("LLMCACHE_ADMIN_TOKEN");

  auto* verify = app.add_subcommand(
      "verify", "Decode every entry; report corrupt ones by key");
  add_db(verify);
  add_redis(verify);
  add_json(verify);
  verify->add_option("--model", model, "Only this model (and variants)");

  cli::WarmArgs warm_args;
  int64_t warm_ttl = -1;
  auto* warm = app.add_subcommand(
      "warm",
      "Send each request of a JSONL file (one request body per line) "
      "through the cached client, skipping what is cached; API key from "
      "$OPENROUTER_API_KEY");
  add_db(warm);
  add_json(warm);
  warm->add_option("FILE", warm_args.input, "JSONL file, or - for stdin")
      ->required();
  CLI::Option* warm_upstream =
      warm->add_option("--upstream", warm_args.upstream, "Upstream base URL")
          ->capture_default_str();
  warm->add_option("--proxy", warm_args.proxy,
                   "Send through a running `llmcache serve` at this URL "
                   "(e.g. http://127.0.0.1:8080; plain http on loopback "
                   "only), which stores the answers: for a database the "
                   "proxy holds, which is then only read, to skip what is "
                   "cached. --namespace and --ttl go as its X-Cache-* "
                   "headers; give --mode and --shared-cache as the proxy "
                   "has them")
      ->excludes(warm_upstream);
  warm->add_option("--client-token", warm_args.proxy_token,
                   "The proxy's access token (its --client-token), sent as "
                   "X-Llmcache-Token; prefer the environment variable, since "
                   "a flag's value shows in the process list")
      ->envname("LLMCACHE_CLIENT_TOKEN");
  warm->add_option("--ca-file", warm_args.ca_file,
                   "Extra trusted CA (PEM) for the upstream or proxy");
  warm->add_option("-j,--concurrency", warm_args.concurrency,
                   "Requests in flight")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  warm->add_option("--mode", warm_args.mode,
                   "Cache mode: deterministic, always, never")
      ->capture_default_str();
  warm->add_option("--namespace", warm_args.ns, "Namespace, as the service");
  warm->add_option("--endpoint", warm_args.endpoint,
                   "The API of the file's bodies (chat_completions, "
                   "embeddings, responses, messages); a line "
                   "{\"endpoint\":NAME,\"body\":{...}} names its own")
      ->capture_default_str();
  warm->add_flag("--shared-cache", warm_args.shared_cache,
                 "Store in the shared scope (as `serve --shared-cache`) "
                 "instead of the API key's");
  // The proxy's X-Cache-TTL takes at most 12 digits.
  warm->add_option("--ttl", warm_ttl,
                   "TTL of stored entries, seconds (0 = never expires)")
      ->check(CLI::Range(int64_t{0}, int64_t{999'999'999'999}));
  warm->add_option("--timeout", warm_args.timeout_s,
                   "Deadline of one upstream request, seconds")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{7 * 86'400}));

  std::function<int()> run_serve;
  CLI::App* serve = llmcache::tools::AddServeCommand(app, &run_serve);

  auto* fake = app.add_subcommand(
      "fake-openrouter",
      "Run a local fake of the OpenRouter API (no API key needed)");
  fake->footer("Exit codes: 0 stopped by a signal, 1 failure, 2 usage.");
  std::string listen = "127.0.0.1:8089";
  bool tls = false;
  std::string ca_out = "fake-openrouter-ca.pem";
  std::string api_key;
  int threads = 2;
  bool quiet = false;
  fake->add_option("--listen", listen, "Address to listen on (HOST:PORT)")
      ->capture_default_str();
  fake->add_flag("--tls", tls, "Serve HTTPS with a freshly generated test CA");
  fake->add_option("--ca-out", ca_out, "Where --tls writes the CA certificate")
      ->capture_default_str();
  fake->add_option("--api-key", api_key,
                   "Only accept this bearer token (default: any)");
  fake->add_option("--threads", threads, "Server threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  fake->add_flag("-q,--quiet", quiet, "Do not log requests");

  // An unknown verb is a usage error even with --help after it (the parser
  // would print the main help and exit 0).
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands({})) {
      known = known || sub->check_name(argv[1]);
    }
    if (!known) {
      std::cerr << "llmcache: unknown verb '" << argv[1]
                << "' (llmcache --help lists them)\n";
      return cli::kExitUsage;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : cli::kExitUsage;
  }
  const cli::Io io{std::cin,
                   std::cout,
                   std::cerr,
                   isatty(STDIN_FILENO) == 1,
                   isatty(STDERR_FILENO) == 1,
                   isatty(STDOUT_FILENO) == 1};
  key_args.json = json;
  // The long verbs that stop cleanly at the next entry (the others stop at
  // once, as without a handler); export and verify of the shared tier too.
  // (purge --older-than: after its confirmation, in cli::Purge.)
  if (imp->parsed() || exp->parsed() || verify->parsed() || warm->parsed() ||
      compact->parsed()) {
    cli::CatchInterrupts();
  }
  if (!shared.url.empty()) {
    if (stats->parsed()) return cli::SharedStats(shared, false, json, io);
    if (models->parsed()) return cli::SharedStats(shared, true, json, io);
    if (purge->parsed()) {
      purge_args.json = json;
      return cli::SharedPurge(shared, purge_args, io);
    }
    if (exp->parsed()) return cli::SharedExport(shared, model, export_out, io);
    if (verify->parsed()) return cli::SharedVerify(shared, model, json, io);
  }
  if (stats->parsed()) return cli::Stats(db, json, io);
  if (models->parsed()) return cli::Models(db, json, io);
  if (ls->parsed()) {
    ls_args.json = json;
    return cli::Ls(db, ls_args, io);
  }
  if (show->parsed()) return cli::Show(db, show_key, json, io);
  if (key->parsed()) return cli::Key(key_args, io);
  if (get->parsed()) return cli::Get(db, key_args, io);
  if (purge->parsed()) {
    purge_args.json = json;
    return cli::Purge(db, purge_args, io);
  }
  if (compact->parsed()) return cli::Compact(db, json, io);
  if (exp->parsed()) return cli::Export(db, model, export_out, io);
  if (imp->parsed() && !import_proxy.empty()) {
    return cli::ImportViaProxy(import_proxy, import_admin_token, import_in,
                               json, import_compact, io);
  }
  if (imp->parsed())
    return cli::Import(db, import_in, json, import_per_entry, import_compact,
                       import_batch_mib, io);
  if (verify->parsed()) return cli::Verify(db, model, json, io);
  if (warm->parsed()) {
    warm_args.json = json;
    if (warm_ttl >= 0) warm_args.ttl_s = warm_ttl;
    return cli::Warm(db, warm_args, io);
  }
  if (serve->parsed()) {
    g_stdout_is_a_log = true;
    for (int i = 1; i < argc; ++i) {
      const std::string_view arg = argv[i];
      const std::string_view flag = arg.substr(0, arg.find('='));
      std::string_view instead;
      std::string what = std::string(flag) + " on the command line";
      if (arg.starts_with("--api-key") || arg.starts_with("--admin-token")) {
        instead = "OPENROUTER_API_KEY / LLMCACHE_ADMIN_TOKEN";
      } else if (flag == "--redis-password") {
        instead = "LLMCACHE_REDIS_PASSWORD";
      } else if (flag == "--redis") {
        // A password in the URL: redis://[user]:password@host.
        const std::string_view url = arg.size() > flag.size()
                                         ? arg.substr(flag.size() + 1)
                                     : i + 1 < argc ? argv[i + 1]
                                                    : "";
        // [user]:password before the last '@' (redis://user:@host: none).
        const size_t at = url.rfind('@');
        const size_t from =
            url.find("//") == std::string_view::npos ? 0 : url.find("//") + 2;
        const std::string_view userinfo =
            at == std::string_view::npos || at < from
                ? std::string_view()
                : url.substr(from, at - from);
        const size_t colon = userinfo.find(':');
        if (colon != std::string_view::npos && colon + 1 < userinfo.size()) {
          instead = "LLMCACHE_REDIS_URL or LLMCACHE_REDIS_PASSWORD";
          what = "a password in --redis";
        }
      }
      if (!instead.empty()) {
        std::cerr << "llmcache serve: warning: " << what
                  << " is visible to every local user "
                     "(ps, /proc); prefer "
                  << instead << " or the config file\n";
      }
    }
    return run_serve();
  }
  if (fake->parsed()) {
    g_stdout_is_a_log = true;
    return FakeOpenRouterVerb(listen, tls, ca_out, api_key, threads, quiet);
  }
  return cli::kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  int rc = 1;
  try {
    rc = Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "llmcache: " << e.what() << "\n";
  }
  // Output that could not be written (a full disk) is a failure, not an
  // exit 0 with a file cut short: `llmcache stats --json > stats.json`.
  errno = 0;
  std::cout.flush();
  if (!std::cout || std::fflush(stdout) != 0 || std::ferror(stdout)) {
    const int err = errno;
    // serve's and fake-openrouter's stdout is a log, which may be closed
    // (its reader gone): a clean stop is still a clean stop.
    if (rc == 0 && !g_stdout_is_a_log) {
      std::cerr << "llmcache: cannot write the output"
                << (err != 0 ? std::string(": ") + std::strerror(err) : "")
                << "\n";
      rc = 1;
    }
  }
  // A verb stopped by a signal (its work closed and reported) ends by that
  // signal, so that a shell loop around it stops too: a shell takes a
  // normal exit after SIGINT for a program that handled Ctrl-C itself.
  if (const int sig = llmcache::cli::InterruptSignal(); sig != 0) {
    std::cout.flush();
    std::cerr.flush();
    signal(sig, SIG_DFL);
    raise(sig);
  }
  return rc;
}
