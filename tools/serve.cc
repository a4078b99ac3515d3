// `llmcache serve`: flags, environment and config file -> ProxyOptions, the
// cache opened, the proxy run until SIGINT/SIGTERM, then a graceful shutdown.
//
// Logging: lines go to stderr through one buffer, flushed every 200 ms and
// at once for warnings and errors, so the per-request line (level info, the
// default) costs a formatted append, not a write(2).

#include "serve.h"

#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cli/util.h"
#include "llmcache/cache.h"
#include "llmcache/net/proxy.h"
#include "llmcache/options.h"
#include "llmcache/policy.h"

namespace llmcache::tools {
namespace {

using net::LogLevel;

struct ServeConfig {
  std::string listen = "127.0.0.1:8080";
  std::string db;
  bool memory = false;
  std::string upstream = "https://openrouter.ai/api/v1";
  int threads = 0;
  std::string ca_file;
  std::string api_key;
  bool shared_cache = false;
  std::string admin_token;
  std::string mode = "deterministic";
  int64_t ttl_s = 24 * 3600;
  std::string ns;
  size_t max_body_bytes = 8u << 20;
  size_t max_header_bytes = 16u << 10;
  size_t max_connections = 10000;
  std::string log_level = "info";
  double shutdown_grace_s = 10;
  double upstream_timeout_s = 120;
  int upstream_attempts = 4;
  double read_timeout_s = 30;
  double idle_timeout_s = 60;
  double models_ttl_s = 60;
  size_t memory_bytes = 64u << 20;
  std::string config;
};

std::chrono::milliseconds Ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

// Buffered stderr logger. Thread-safe.
class Logger {
 public:
  Logger() : flusher_([this] { FlushLoop(); }) {}
  ~Logger() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    flusher_.join();
    Flush();
  }

  void Write(LogLevel level, std::string_view line) {
    char stamp[32];
    const std::time_t now = std::time(nullptr);
    std::tm tm;
    gmtime_r(&now, &tm);
    const size_t n =
        std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    std::lock_guard<std::mutex> lock(mu_);
    buf_.append(stamp, n);
    buf_.push_back(' ');
    buf_.append(net::LogLevelName(level));
    buf_.push_back(' ');
    buf_.append(line);
    buf_.push_back('\n');
    if (level <= LogLevel::kWarn || buf_.size() > (64u << 10)) FlushLocked();
  }

  void Flush() {
    std::lock_guard<std::mutex> lock(mu_);
    FlushLocked();
  }

 private:
  void FlushLocked() {
    if (buf_.empty()) return;
    std::fwrite(buf_.data(), 1, buf_.size(), stderr);
    std::fflush(stderr);
    buf_.clear();
  }

  void FlushLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(200));
      FlushLocked();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::string buf_;
  bool stop_ = false;
  std::thread flusher_;
};

// Applies the config file's values to the options not set by a flag or an
// environment variable. CLI::Error on a bad file or value.
void ApplyConfigFile(CLI::App& sub, const std::string& path) {
  CLI::ConfigTOML format;
  const std::vector<CLI::ConfigItem> items = format.from_file(path);
  for (const CLI::ConfigItem& item : items) {
    if (item.name == "++" || item.name == "--") continue;  // section markers
    if (!item.parents.empty() &&
        !(item.parents.size() == 1 && item.parents[0] == "serve")) {
      throw CLI::ConfigError("unknown section '" + item.parents[0] + "' in " +
                             path + " (use [serve] or none)");
    }
    if (item.name == "config") continue;
    CLI::Option* opt = sub.get_option_no_throw("--" + item.name);
    if (opt == nullptr) {
      throw CLI::ConfigError("unknown setting '" + item.name + "' in " + path);
    }
    if (opt->count() > 0) continue;  // a flag or the environment set it
    opt->add_result(item.inputs);
    opt->run_callback();
  }
}

int Run(CLI::App& sub, ServeConfig& c) {
  // Block the signals before any thread starts, so only sigwait sees them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  try {
    if (!c.config.empty()) ApplyConfigFile(sub, c.config);
  } catch (const CLI::Error& e) {
    std::cerr << "llmcache serve: config file " << c.config << ": " << e.what()
              << "\n";
    return 2;
  }

  net::ProxyOptions o;
  if (!cli::ParseListen(c.listen, &o.host, &o.port)) {
    std::cerr << "llmcache serve: --listen wants HOST:PORT, got '" << c.listen
              << "'\n";
    return 2;
  }
  const std::optional<CacheMode> mode = CacheModeFromName(c.mode);
  if (!mode) {
    std::cerr << "llmcache serve: --mode must be deterministic, always or "
                 "never, got '"
              << c.mode << "'\n";
    return 2;
  }
  const std::optional<LogLevel> level = net::LogLevelFromName(c.log_level);
  if (!level) {
    std::cerr << "llmcache serve: --log-level must be error, warn, info or "
                 "debug, got '"
              << c.log_level << "'\n";
    return 2;
  }
  o.threads = c.threads;
  o.upstream.base_url = c.upstream;
  o.upstream.api_key = c.api_key;
  o.upstream.extra_ca_file = c.ca_file;
  o.upstream.headers_timeout = Ms(c.upstream_timeout_s);
  o.upstream.max_attempts = c.upstream_attempts;
  o.cached.mode = *mode;
  o.cached.ttl_ms = c.ttl_s * 1000;
  o.cached.default_namespace = c.ns;
  o.shared_cache = c.shared_cache;
  o.admin_token = c.admin_token;
  o.max_body_bytes = c.max_body_bytes;
  o.max_header_bytes = c.max_header_bytes;
  o.max_connections = c.max_connections;
  o.read_timeout = Ms(c.read_timeout_s);
  o.idle_timeout = Ms(c.idle_timeout_s);
  o.models_ttl = Ms(c.models_ttl_s);
  o.log_level = *level;
  auto logger = std::make_shared<Logger>();
  o.log = [logger](LogLevel l, std::string_view line) {
    logger->Write(l, line);
  };

  CacheOptions co;
  co.path =
      c.memory ? std::string() : (c.db.empty() ? DefaultDatabasePath() : c.db);
  co.default_ttl_ms = c.ttl_s * 1000;
  co.memory_tier_bytes = c.memory_bytes;
  Result<std::unique_ptr<Cache>> opened = Cache::Open(co);
  if (!opened.ok()) {
    std::cerr << "llmcache serve: cannot open the cache database"
              << (co.path.empty() ? std::string() : " at " + co.path) << ": "
              << opened.status().message() << "\n";
    if (std::optional<cli::LockHolder> holder =
            co.path.empty() ? std::nullopt : cli::FindLockHolder(co.path)) {
      std::cerr << "llmcache serve: it is held by process " << holder->pid
                << (holder->command.empty() ? "" : " (" + holder->command + ")")
                << "; stop it, or give this proxy another --db\n";
    }
    return 1;
  }
  std::shared_ptr<Cache> cache(std::move(opened).value());

  const std::string upstream = o.upstream.base_url;
  Result<std::unique_ptr<net::ProxyServer>> server =
      net::ProxyServer::Start(std::move(o), cache);
  if (!server.ok()) {
    std::cerr << "llmcache serve: " << server.status().message() << "\n";
    return 1;
  }
  std::cout << "llmcache serve: listening on " << (*server)->base_url()
            << " (upstream " << upstream << ", "
            << (co.path.empty() ? std::string("memory only")
                                : "database " + co.path)
            << ")" << std::endl;

  int sig = 0;
  sigwait(&set, &sig);
  logger->Write(LogLevel::kInfo, std::string("received ") +
                                     (sig == SIGINT ? "SIGINT" : "SIGTERM") +
                                     ", shutting down");
  (*server)->Shutdown(Ms(c.shutdown_grace_s));
  server->reset();
  cache.reset();  // closes the store (writes statistics)
  logger->Write(LogLevel::kInfo, "stopped");
  logger->Flush();
  return 0;
}

}  // namespace

CLI::App* AddServeCommand(CLI::App& app, std::function<int()>* run) {
  auto c = std::make_shared<ServeConfig>();
  CLI::App* sub = app.add_subcommand(
      "serve",
      "Run the caching proxy: an OpenAI-compatible HTTP server in front of "
      "OpenRouter");
  sub->add_option("--config", c->config,
                  "TOML/INI file of settings named like the long flags "
                  "(flags > environment > file > defaults)")
      ->envname("LLMCACHE_CONFIG")
      ->check(CLI::ExistingFile);
  sub->add_option("--listen", c->listen, "Address to listen on (HOST:PORT)")
      ->envname("LLMCACHE_LISTEN")
      ->capture_default_str();
  sub->add_option("--db", c->db,
                  "Database directory (default: $LLMCACHE_DB, else "
                  "$XDG_CACHE_HOME/llmcache, else ~/.cache/llmcache)")
      ->envname("LLMCACHE_DB");
  sub->add_flag("--memory", c->memory,
                "Keep the cache in memory only (nothing on disk)")
      ->envname("LLMCACHE_MEMORY");
  sub->add_option("--upstream", c->upstream,
                  "Upstream base URL (/chat/completions and /models are "
                  "appended)")
      ->envname("LLMCACHE_UPSTREAM")
      ->capture_default_str();
  sub->add_option("--threads", c->threads,
                  "Worker threads (default: the number of CPUs)")
      ->envname("LLMCACHE_THREADS")
      ->check(CLI::Range(0, 256));
  sub->add_option("--ca-file", c->ca_file,
                  "PEM file of extra CAs trusted for the upstream")
      ->envname("LLMCACHE_CA_FILE");
  sub->add_option("--api-key", c->api_key,
                  "Upstream API key used when a client sends none (never "
                  "logged)")
      ->envname("OPENROUTER_API_KEY");
  sub->add_flag("--shared-cache", c->shared_cache,
                "All API keys share one cache scope (default: one per key)")
      ->envname("LLMCACHE_SHARED_CACHE");
  sub->add_option("--admin-token", c->admin_token,
                  "Enables /admin/* for 'Authorization: Bearer <token>'")
      ->envname("LLMCACHE_ADMIN_TOKEN");
  sub->add_option("--mode", c->mode,
                  "Cache policy: deterministic (temperature 0 only), always, "
                  "never")
      ->envname("LLMCACHE_MODE")
      ->capture_default_str();
  sub->add_option("--ttl", c->ttl_s,
                  "Seconds a stored response lives (0 = forever)")
      ->envname("LLMCACHE_TTL")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--namespace", c->ns,
                  "Namespace of keys when a request names none")
      ->envname("LLMCACHE_NAMESPACE");
  sub->add_option("--max-body-bytes", c->max_body_bytes,
                  "Larger request bodies get 413")
      ->envname("LLMCACHE_MAX_BODY_BYTES")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--max-header-bytes", c->max_header_bytes,
                  "Larger request headers get 431")
      ->envname("LLMCACHE_MAX_HEADER_BYTES")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--max-connections", c->max_connections,
                  "Connections beyond this get 503 and are closed")
      ->envname("LLMCACHE_MAX_CONNECTIONS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--log-level", c->log_level,
                  "error, warn, info (one line per request) or debug")
      ->envname("LLMCACHE_LOG_LEVEL")
      ->capture_default_str();
  sub->add_option("--shutdown-grace", c->shutdown_grace_s,
                  "Seconds in-flight requests get to finish on SIGINT/SIGTERM")
      ->envname("LLMCACHE_SHUTDOWN_GRACE")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--upstream-timeout", c->upstream_timeout_s,
                  "Seconds to wait for the upstream's response headers")
      ->envname("LLMCACHE_UPSTREAM_TIMEOUT")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--upstream-attempts", c->upstream_attempts,
                  "Attempts per upstream request (1 = no retries)")
      ->envname("LLMCACHE_UPSTREAM_ATTEMPTS")
      ->capture_default_str()
      ->check(CLI::Range(1, 10));
  sub->add_option("--read-timeout", c->read_timeout_s,
                  "Seconds to read a request or write a response chunk")
      ->envname("LLMCACHE_READ_TIMEOUT")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--idle-timeout", c->idle_timeout_s,
                  "Seconds a keep-alive connection may stay idle")
      ->envname("LLMCACHE_IDLE_TIMEOUT")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--models-ttl", c->models_ttl_s,
                  "Seconds GET /models answers are kept in memory")
      ->envname("LLMCACHE_MODELS_TTL")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--memory-bytes", c->memory_bytes,
                  "Byte budget of the in-memory tier of hot entries")
      ->envname("LLMCACHE_MEMORY_BYTES")
      ->capture_default_str();
  *run = [sub, c] {
    try {
      return Run(*sub, *c);
    } catch (const std::exception& e) {
      std::cerr << "llmcache serve: " << e.what() << "\n";
      return 1;
    }
  };
  return sub;
}

}  // namespace llmcache::tools
