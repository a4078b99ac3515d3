// `llmcache serve`: flags, environment and config file -> ProxyOptions, the
// cache opened, the proxy run until SIGINT/SIGTERM, then a graceful shutdown.
//
// Logging: lines go to stderr through one buffer, flushed every 200 ms and
// at once for warnings and errors, so the per-request line (level info, the
// default) costs a formatted append, not a write(2).
//
// File descriptors: at start the soft open-file limit (RLIMIT_NOFILE) is
// raised to the hard one (logged at info); the proxy caps its connections to
// what the limit allows (proxy.h).

#include "serve.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cli/heap.h"
#include "cli/util.h"
#include "llmcache/cache.h"
#include "llmcache/cpus.h"
#include "llmcache/net/proxy.h"
#include "llmcache/net/redis_tier.h"
#include "llmcache/options.h"
#include "llmcache/policy.h"
#include "llmcache/status.h"

namespace llmcache::tools {
namespace {

// CLI11's NonNegativeNumber and PositiveNumber word a refusal as "Value 0
// not in range 0.000000 to <the largest double: 309 digits>", and take nan.
// Seconds may be as large as wanted (inf: never; Ms saturates); a count or
// a byte size (`count`) is at most 1e15 (beyond 2^64 it would wrap, and a
// negative one wrapped to 2^64 - 1).
CLI::Validator NumberAtLeast(bool allow_zero, bool count = false) {
  return CLI::Validator(
      [allow_zero, count](std::string& in) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(in, v) ||
            !(allow_zero ? v >= 0 : v > 0) || (count && !(v <= 1e15))) {
          return std::string("want a number ") + (allow_zero ? ">= 0" : "> 0") +
                 (count ? " and at most 1e15" : "") +
                 " (plain digits, no unit), got '" + in + "'";
        }
        return std::string();
      },
      allow_zero ? "NUMBER >= 0" : "NUMBER > 0");
}
// CLI11 takes any number as a flag's value, so LLMCACHE_FLUSH_ON_DRIFT=2
// would be true; a switch accepts only the words that say true or false.
const CLI::Validator kSwitchWord(
    [](std::string& in) -> std::string {
      std::string v = in;
      for (char& ch : v) {
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      }
      for (const char* word :
           {"true", "false", "1", "0", "yes", "no", "on", "off"}) {
        if (v == word) return std::string();
      }
      return "want true/false, 1/0, yes/no or on/off, got '" + in + "'";
    },
    "");
const CLI::Validator kNonNegative = NumberAtLeast(true);
const CLI::Validator kPositive = NumberAtLeast(false);
const CLI::Validator kCount = NumberAtLeast(true, true);
const CLI::Validator kPositiveCount = NumberAtLeast(false, true);

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
  std::vector<std::string> allow_origins;
  std::vector<std::string> allow_hosts;
  std::string client_token;
  // Applied only when given (flag, environment or file): unset = open on
  // loopback only.
  bool open_operator_views = false;
  std::string mode = "deterministic";
  int64_t ttl_s = 24 * 3600;
  int64_t max_ttl_s = -1;  // -1: ttl_s
  uint64_t max_disk_bytes = 0;
  std::string ns;
  size_t max_body_bytes = 8u << 20;
  size_t max_header_bytes = 16u << 10;
  size_t max_connections = 10000;
  std::string log_level = "info";
  double shutdown_grace_s = 10;
  double upstream_timeout_s = 120;
  double upstream_stream_idle_s = 120;
  double upstream_request_timeout_s = 600;
  int upstream_attempts = 4;
  double read_timeout_s = 30;
  double idle_timeout_s = 60;
  double stream_keepalive_s = 15;
  double models_ttl_s = 60;
  std::string prompt_cache = "off";
  bool flush_on_drift = false;
  double pricing_refresh_s = 600;
  size_t memory_bytes = 64u << 20;
  std::string config;
  // The shared tier.
  std::string redis;
  std::string redis_password;
  std::string redis_prefix = "llmcache:";
  int64_t redis_timeout_ms = 10;
  std::string redis_ca_file;
  int64_t redis_lease_ms = 5000;
  int64_t redis_spin_us = 100;
  double redis_lease_wait_s = 60;
};

// Seconds as milliseconds, at most 1e9 s (~31.7 years: never, in effect).
// Larger values (1e10, 1e30, inf) would overflow the deadlines' nanosecond
// arithmetic and wrap round to a timeout of nearly nothing.
std::chrono::milliseconds Ms(double seconds) {
  constexpr double kMaxSeconds = 1e9;
  return std::chrono::milliseconds(
      static_cast<int64_t>(std::min(seconds, kMaxSeconds) * 1000));
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

// Raises the soft open-file limit to the hard one (to fs.nr_open when the
// hard one is unlimited). Logs what it did: info, or warn on failure.
void RaiseOpenFileLimit(const net::LogSink& log) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    log(LogLevel::kWarn, std::string("cannot read the open-file limit: ") +
                             std::strerror(errno));
    return;
  }
  const auto text = [](rlim_t v) {
    return v == RLIM_INFINITY ? std::string("unlimited") : std::to_string(v);
  };
  rlim_t target = rl.rlim_max;
  if (target == RLIM_INFINITY) {
    // Linux refuses a soft limit above fs.nr_open.
    std::ifstream nr_open("/proc/sys/fs/nr_open");
    unsigned long long n = 0;
    if (nr_open >> n && n > 0) target = static_cast<rlim_t>(n);
  }
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < target) {
    const rlim_t before = rl.rlim_cur;
    rl.rlim_cur = target;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
      log(LogLevel::kWarn, "cannot raise the open-file limit from " +
                               text(before) + " to " + text(target) + ": " +
                               std::strerror(errno));
      return;
    }
    log(LogLevel::kInfo, "open-file limit raised from " + text(before) +
                             " to " + text(target) + " (hard " +
                             text(rl.rlim_max) + ")");
    return;
  }
  log(LogLevel::kInfo, "open-file limit " + text(rl.rlim_cur) + " (hard " +
                           text(rl.rlim_max) + ")");
}

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
  // Few heap arenas, and free memory given back (the health watch below):
  // the resident set stays nearer the budgets under churn (cli/heap.h).
  // Busy: the workers, the upstream thread and RocksDB's background work.
  cli::LimitHeapArenas(
      (c.threads > 0 ? static_cast<size_t>(c.threads) : UsableCpus()) + 2);
  // Block the signals before any thread starts, so only sigwait sees them.
  // SIGHUP (the terminal or the session went away) stops gracefully too,
  // unless it is ignored (nohup): a blocked signal would still reach sigwait.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  struct sigaction hup {};
  if (sigaction(SIGHUP, nullptr, &hup) != 0 || hup.sa_handler != SIG_IGN) {
    sigaddset(&set, SIGHUP);
  }
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // Whatever reads the log may go away (a pipe to a restarted collector):
  // the write then fails with EPIPE instead of ending the service.
  signal(SIGPIPE, SIG_IGN);

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
  const std::optional<net::PromptCacheMode> prompt_cache =
      net::PromptCacheModeFromName(c.prompt_cache);
  if (!prompt_cache) {
    std::cerr << "llmcache serve: --prompt-cache must be off or auto, got '"
              << c.prompt_cache << "'\n";
    return 2;
  }
  // Seconds to the end of the year 9999 (Unix time): no entry lives longer.
  constexpr int64_t kLongestTtlS = kMaxEntryTimeMs / 1000;
  for (const auto& [flag, s] :
       {std::pair{"--ttl", c.ttl_s}, std::pair{"--max-ttl", c.max_ttl_s}}) {
    if (s > kLongestTtlS) {
      std::cerr << "llmcache serve: " << flag << " " << s
                << " is longer than an entry can live (at most " << kLongestTtlS
                << " s: until the end of the year 9999)\n";
      return 2;
    }
  }
  if (c.max_ttl_s >= 0 && c.max_ttl_s != 0 &&
      (c.ttl_s == 0 || c.ttl_s > c.max_ttl_s)) {
    std::cerr << "llmcache serve: --ttl " << c.ttl_s
              << (c.ttl_s == 0 ? " (forever)" : "") << " exceeds --max-ttl "
              << c.max_ttl_s << " (0 = forever needs --max-ttl 0)\n";
    return 2;
  }
  o.threads = c.threads;
  o.upstream.base_url = c.upstream;
  o.upstream.api_key = c.api_key;
  o.upstream.extra_ca_file = c.ca_file;
  o.upstream.headers_timeout = Ms(c.upstream_timeout_s);
  o.upstream.stream_idle_timeout = Ms(c.upstream_stream_idle_s);
  o.upstream.request_timeout = Ms(c.upstream_request_timeout_s);
  o.upstream.max_attempts = c.upstream_attempts;
  o.cached.mode = *mode;
  o.cached.ttl_ms = c.ttl_s * 1000;
  o.cached.default_namespace = c.ns;
  o.cached.prompt_cache = *prompt_cache;
  o.cached.flush_on_model_drift = c.flush_on_drift;
  o.cached.pricing_refresh_ms = Ms(c.pricing_refresh_s).count();
  if (c.max_ttl_s >= 0) o.max_ttl_ms = c.max_ttl_s * 1000;
  o.shared_cache = c.shared_cache;
  o.admin_token = c.admin_token;
  o.allow_origins = c.allow_origins;
  o.allow_hosts = c.allow_hosts;
  o.client_token = c.client_token;
  if (sub.get_option("--open-operator-views")->count() > 0) {
    o.operator_views_open = c.open_operator_views;
  }
  o.max_body_bytes = c.max_body_bytes;
  o.max_header_bytes = c.max_header_bytes;
  o.max_connections = c.max_connections;
  o.read_timeout = Ms(c.read_timeout_s);
  o.idle_timeout = Ms(c.idle_timeout_s);
  o.stream_keepalive = Ms(c.stream_keepalive_s);
  o.models_ttl = Ms(c.models_ttl_s);
  o.log_level = *level;
  auto logger = std::make_shared<Logger>();
  o.log = [logger](LogLevel l, std::string_view line) {
    logger->Write(l, line);
  };
  RaiseOpenFileLimit([&](LogLevel l, std::string_view line) {
    if (l <= *level) logger->Write(l, line);
  });

  CacheOptions co;
  co.path =
      c.memory ? std::string() : (c.db.empty() ? DefaultDatabasePath() : c.db);
  if (c.memory && !c.db.empty()) {
    // Both given (perhaps the database from $LLMCACHE_DB): memory wins, and
    // the operator is told that nothing goes to the database.
    std::cerr << "llmcache serve: --memory: the database " << c.db
              << " (--db or $LLMCACHE_DB) is not opened; entries are kept "
                 "in memory only and are lost when the proxy stops\n";
  }
  co.default_ttl_ms = c.ttl_s * 1000;
  co.memory_tier_bytes = c.memory_bytes;
  co.max_disk_bytes = c.max_disk_bytes;
  Result<std::unique_ptr<Cache>> opened = Cache::Open(co);
  if (!opened.ok()) {
    std::cerr << "llmcache serve: cannot open the cache database"
              << (co.path.empty() ? std::string() : " at " + co.path) << ": "
              << opened.status().message() << "\n";
    // Held by another process: exit 3, as the mutating verbs (also when the
    // holder cannot be named: it just ended, or lives in another pid
    // namespace).
    if (co.path.empty() ||
        opened.status().code() != StatusCode::kFailedPrecondition ||
        opened.status().message().find("locked") == std::string_view::npos) {
      return 1;
    }
    if (std::optional<cli::LockHolder> holder = cli::FindLockHolder(co.path)) {
      std::cerr << "llmcache serve: it is held by process " << holder->pid
                << (holder->command.empty() ? "" : " (" + holder->command + ")")
                << "; stop it, or give this proxy another --db\n";
    }
    return cli::kExitBusy;
  }
  std::shared_ptr<Cache> cache(std::move(opened).value());

  std::shared_ptr<net::RedisTier> tier;
  if (!c.redis.empty()) {
    Result<net::RedisUrl> url = net::RedisUrl::Parse(c.redis);
    if (!url.ok()) {
      std::cerr << "llmcache serve: --redis: " << url.status().message()
                << "\n";
      return 2;
    }
    // The password: in the URL, or (kept out of `ps` and shell history)
    // LLMCACHE_REDIS_PASSWORD or the config file's redis-password.
    if (url->password.empty()) url->password = c.redis_password;
    if (!url->user.empty() && url->password.empty()) {
      std::cerr << "llmcache serve: --redis names the user '" << url->user
                << "' but no password: put it in --redis-password or "
                   "$LLMCACHE_REDIS_PASSWORD (or the URL)\n";
      return 2;
    }
    net::RedisTierOptions ro;
    ro.redis.url = std::move(*url);
    ro.redis.command_timeout_ms = c.redis_timeout_ms;
    ro.redis.tls_ca_file = c.redis_ca_file;
    ro.redis.spin_us = c.redis_spin_us;
    ro.prefix = c.redis_prefix;
    // The local database remembers which flushes it has seen, so that one
    // missed while this proxy was down drops the model at start.
    if (!co.path.empty()) {
      ro.generations_file = co.path + "/LLMCACHE-SHARED-GENERATIONS";
    }
    ro.lease_ms = c.redis_lease_ms;
    ro.lease_wait_ms = Ms(c.redis_lease_wait_s).count();
    ro.redis.log = [logger](std::string_view line) {
      logger->Write(LogLevel::kWarn, line);
    };
    ro.redis.info_log = [logger](std::string_view line) {
      logger->Write(LogLevel::kInfo, line);
    };
    ro.log = ro.redis.log;
    Result<std::shared_ptr<net::RedisTier>> created =
        net::RedisTier::Create(std::move(ro));
    if (!created.ok()) {
      std::cerr << "llmcache serve: shared tier: " << created.status().message()
                << "\n";
      return created.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
    }
    tier = std::move(*created);
    const net::SharedTierHealth h = tier->Health();
    logger->Write(
        h.available ? LogLevel::kInfo : LogLevel::kWarn,
        "shared tier " + h.url +
            (h.cluster ? " (cluster, " + std::to_string(h.nodes) + " masters)"
                       : std::string()) +
            (h.available ? ": connected"
                         : ": not reachable yet; serving from the "
                           "local tiers until it is"));
    o.cached.shared = tier;
  }

  const std::string upstream = o.upstream.base_url;
  const std::string listen_host = o.host;
  Result<std::unique_ptr<net::ProxyServer>> server =
      net::ProxyServer::Start(std::move(o), cache);
  if (!server.ok()) {
    std::cerr << "llmcache serve: " << server.status().message() << "\n";
    // Bad settings (an origin, a host, the upstream URL) are usage errors.
    return server.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
  }
  // A wildcard address is said as such (every interface), with the URL
  // that reaches it from this machine.
  const bool every_interface = listen_host == "0.0.0.0" || listen_host == "::";
  std::cout << "llmcache serve: listening on "
            << (every_interface
                    ? (listen_host == "::" ? "[::]:" : "0.0.0.0:") +
                          std::to_string((*server)->port()) +
                          " (every interface; " + (*server)->base_url() +
                          " from this machine)"
                    : (*server)->base_url())
            << " (upstream " << upstream << ", "
            << (co.path.empty() ? std::string("memory only")
                                : "database " + co.path)
            << (tier ? ", shared tier " + tier->Health().url : std::string())
            << ")" << std::endl;
  // For the CLI's hints on a database this process holds (cli/util.h).
  // On a full disk it cannot be written: the health watch below writes it
  // once the store has recovered.
  bool serve_file_written = true;
  if (!co.path.empty() &&
      !cli::WriteServeFile(co.path, getpid(), (*server)->base_url())) {
    serve_file_written = false;
    logger->Write(LogLevel::kWarn,
                  "cannot write " + co.path +
                      "/LLMCACHE-SERVE: " + std::strerror(errno) +
                      " (tried again every second while the store is "
                      "healthy)");
  }

  // The store's health in the log, as it changes (/healthz has it too): a
  // store that opened degraded (a full disk) and every degradation and
  // recovery after it.
  std::mutex health_mu;
  std::condition_variable health_cv;
  bool health_stop = false;
  std::thread health_watch([&] {
    // By the counts, so that a degradation and recovery between two looks
    // are both told.
    uint64_t degradations = 0, recoveries = 0;
    std::unique_lock<std::mutex> lock(health_mu);
    for (int second = 1;; ++second) {
      // A trim of ~100k free chunks takes ~30 ms (and holds each arena's
      // lock meanwhile): once a minute, when there is much to give back.
      if (second % 60 == 0) cli::ReturnFreeHeap(64u << 20);
      const StoreHealth h = cache->Health();
      if (h.degradations != degradations) {
        degradations = h.degradations;
        logger->Write(LogLevel::kWarn,
                      "store degraded: " + h.last_error +
                          " (lookups go on; nothing is stored until it "
                          "recovers, which it retries by itself)");
      }
      if (h.recoveries != recoveries) {
        recoveries = h.recoveries;
        logger->Write(LogLevel::kInfo, "store recovered: storing again");
      }
      if (!serve_file_written && !h.degraded) {
        serve_file_written =
            cli::WriteServeFile(co.path, getpid(), (*server)->base_url());
        if (serve_file_written) {
          logger->Write(LogLevel::kInfo,
                        "wrote " + co.path + "/LLMCACHE-SERVE");
        }
      }
      if (health_cv.wait_for(lock, std::chrono::seconds(1),
                             [&] { return health_stop; })) {
        break;
      }
    }
  });
  auto stop_health_watch = [&] {
    {
      std::lock_guard<std::mutex> lock(health_mu);
      health_stop = true;
    }
    health_cv.notify_all();
    if (health_watch.joinable()) health_watch.join();
  };

  int sig = 0;
  sigwait(&set, &sig);
  logger->Write(LogLevel::kInfo, std::string("received ") +
                                     (sig == SIGINT   ? "SIGINT"
                                      : sig == SIGHUP ? "SIGHUP"
                                                      : "SIGTERM") +
                                     ", shutting down");
  // A second signal during the grace period ends it: what is still in
  // flight is dropped (an operator who presses Ctrl-C twice).
  std::atomic<bool> stopped{false};
  std::thread second([&] {
    int again = 0;
    sigwait(&set, &again);
    if (stopped.load()) return;
    logger->Write(LogLevel::kWarn,
                  "second signal: dropping the requests still in flight");
    (*server)->EndGrace();
  });
  (*server)->Shutdown(Ms(c.shutdown_grace_s));
  stopped.store(true);
  pthread_kill(second.native_handle(), SIGTERM);  // wakes its sigwait
  second.join();
  if (tier) {
    (void)tier->FlushStats();  // the last fleet counters
    // Before the proxy's io_contexts go: a request cut by the grace period
    // may still wait on the tier (a lead held elsewhere), and the tier's
    // answer is posted to the proxy's upstream executor.
    tier->Shutdown();
  }
  stop_health_watch();
  server->reset();
  if (!co.path.empty()) cli::RemoveServeFile(co.path, getpid());
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
      ->envname("LLMCACHE_DB")
      ->check(cli::CheckDbPath, "DIR");
  sub->add_flag("--memory", c->memory,
                "Keep the cache in memory only (nothing on disk)")
      ->envname("LLMCACHE_MEMORY")
      ->check(kSwitchWord);
  sub->add_option("--upstream", c->upstream,
                  "Upstream base URL (/chat/completions and /models are "
                  "appended)")
      ->envname("LLMCACHE_UPSTREAM")
      ->capture_default_str();
  sub->add_option("--threads", c->threads,
                  "Worker threads (default: the CPUs this process may use)")
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
      ->envname("LLMCACHE_SHARED_CACHE")
      ->check(kSwitchWord);
  sub->add_option("--admin-token", c->admin_token,
                  "Enables /admin/* for 'Authorization: Bearer <token>'")
      ->envname("LLMCACHE_ADMIN_TOKEN");
  sub->add_option("--allow-origin", c->allow_origins,
                  "Origin (scheme://host[:port]) whose web pages may use the "
                  "proxy (CORS); repeatable or comma-separated; '*' = any "
                  "page. Requests from other origins get 403 (default: no "
                  "browser page may)")
      ->envname("LLMCACHE_ALLOW_ORIGIN")
      ->delimiter(',');
  sub->add_option("--allow-host", c->allow_hosts,
                  "Host name clients may reach the proxy by, besides "
                  "localhost, 127.0.0.1, [::1] and the listen address (and "
                  "any IP when listening on 0.0.0.0 or ::); repeatable or "
                  "comma-separated; '*' = any. Other Host headers get 403 "
                  "(DNS rebinding)")
      ->envname("LLMCACHE_ALLOW_HOST")
      ->delimiter(',');
  sub->add_option("--client-token", c->client_token,
                  "Access token every client must present (except on "
                  "/healthz, /metrics and /admin/*): 'X-Llmcache-Token: "
                  "<token>' (with the client's own key in Authorization), or "
                  "'Authorization: Bearer <token>' to use --api-key upstream. "
                  "Never logged")
      ->envname("LLMCACHE_CLIENT_TOKEN");
  sub->add_flag("--open-operator-views", c->open_operator_views,
                "Serve /stats and /metrics (every tenant's models and spend; "
                "the data of the /dashboard page) without the admin token "
                "even when listening beyond loopback. By default they are "
                "open on loopback only, and elsewhere need 'Authorization: "
                "Bearer <admin token>'; =false closes them on loopback too")
      ->envname("LLMCACHE_OPEN_OPERATOR_VIEWS")
      ->check(kSwitchWord);
  sub->add_option("--mode", c->mode,
                  "Cache policy: deterministic (temperature 0 only), always, "
                  "never")
      ->envname("LLMCACHE_MODE")
      ->capture_default_str();
  sub->add_option("--ttl", c->ttl_s,
                  "Seconds a stored response lives (0 = forever)")
      ->envname("LLMCACHE_TTL")
      ->capture_default_str()
      ->check(kNonNegative);
  sub->add_option("--max-ttl", c->max_ttl_s,
                  "Longest lifetime in seconds a client may ask for with "
                  "X-Cache-TTL (longer ones, and 0, get this); 0 = no "
                  "ceiling, clients may ask for 0 = forever (default: --ttl)")
      ->envname("LLMCACHE_MAX_TTL")
      ->check(kNonNegative);
  sub->add_option("--namespace", c->ns,
                  "Namespace of keys when a request names none")
      ->envname("LLMCACHE_NAMESPACE");
  sub->add_option("--max-body-bytes", c->max_body_bytes,
                  "Larger request bodies get 413")
      ->envname("LLMCACHE_MAX_BODY_BYTES")
      ->capture_default_str()
      ->check(kPositiveCount);
  sub->add_option("--max-header-bytes", c->max_header_bytes,
                  "Larger request headers get 431")
      ->envname("LLMCACHE_MAX_HEADER_BYTES")
      ->capture_default_str()
      ->check(kPositiveCount);
  sub->add_option("--max-connections", c->max_connections,
                  "Connections beyond this get 503 and are closed")
      ->envname("LLMCACHE_MAX_CONNECTIONS")
      ->capture_default_str()
      ->check(kPositiveCount);
  sub->add_option("--log-level", c->log_level,
                  "error, warn, info (one line per request) or debug")
      ->envname("LLMCACHE_LOG_LEVEL")
      ->capture_default_str();
  sub->add_option(
         "--shutdown-grace", c->shutdown_grace_s,
         "Seconds in-flight requests get to finish on SIGINT, SIGTERM or "
         "SIGHUP (a second signal ends it)")
      ->envname("LLMCACHE_SHUTDOWN_GRACE")
      ->capture_default_str()
      ->check(kNonNegative);
  sub->add_option("--upstream-timeout", c->upstream_timeout_s,
                  "Seconds to wait for the upstream's response headers")
      ->envname("LLMCACHE_UPSTREAM_TIMEOUT")
      ->capture_default_str()
      ->check(kPositive);
  sub->add_option("--upstream-stream-idle", c->upstream_stream_idle_s,
                  "Seconds a streamed answer may go without a byte from the "
                  "upstream before it is cut")
      ->envname("LLMCACHE_UPSTREAM_STREAM_IDLE")
      ->capture_default_str()
      ->check(kPositive);
  sub->add_option("--upstream-request-timeout", c->upstream_request_timeout_s,
                  "Seconds one upstream attempt may take, first byte to last "
                  "(a long stream included)")
      ->envname("LLMCACHE_UPSTREAM_REQUEST_TIMEOUT")
      ->capture_default_str()
      ->check(kPositive);
  sub->add_option("--upstream-attempts", c->upstream_attempts,
                  "Attempts per upstream request (1 = no retries)")
      ->envname("LLMCACHE_UPSTREAM_ATTEMPTS")
      ->capture_default_str()
      ->check(CLI::Range(1, 10));
  sub->add_option("--read-timeout", c->read_timeout_s,
                  "Seconds to read a request or write a response chunk")
      ->envname("LLMCACHE_READ_TIMEOUT")
      ->capture_default_str()
      ->check(kPositive);
  sub->add_option("--idle-timeout", c->idle_timeout_s,
                  "Seconds a keep-alive connection may stay idle")
      ->envname("LLMCACHE_IDLE_TIMEOUT")
      ->capture_default_str()
      ->check(kPositive);
  sub->add_option("--stream-keepalive", c->stream_keepalive_s,
                  "Seconds a stream may wait for its first event before its "
                  "head and an SSE comment go, and between comments (0: "
                  "never)")
      ->envname("LLMCACHE_STREAM_KEEPALIVE")
      ->capture_default_str()
      ->check(kNonNegative);
  sub->add_option("--models-ttl", c->models_ttl_s,
                  "Seconds GET /models answers are kept in memory")
      ->envname("LLMCACHE_MODELS_TTL")
      ->capture_default_str()
      ->check(kNonNegative);
  sub->add_option("--prompt-cache", c->prompt_cache,
                  "Provider prompt caching: auto adds cache breakpoints "
                  "(system prompt, conversation so far, large blocks) to "
                  "requests for Claude and Gemini models on their way "
                  "upstream, never to the key; off sends bodies as they "
                  "came. A request's X-LLMCache-Prompt-Cache: off|auto "
                  "overrides it")
      ->envname("LLMCACHE_PROMPT_CACHE")
      ->capture_default_str();
  sub->add_flag("--flush-on-drift", c->flush_on_drift,
                "Flush a model's entries when the model it resolves to "
                "upstream changes (a drift is logged either way)")
      ->envname("LLMCACHE_FLUSH_ON_DRIFT")
      ->check(kSwitchWord);
  sub->add_option("--pricing-refresh", c->pricing_refresh_s,
                  "Seconds between fetches of the upstream's /models prices "
                  "(prompt-cache savings in /stats and /metrics); 0 = never "
                  "fetch")
      ->envname("LLMCACHE_PRICING_REFRESH")
      ->capture_default_str()
      ->check(kNonNegative);
  sub->add_option("--max-disk-bytes", c->max_disk_bytes,
                  "Disk budget of the database: past it the oldest entries "
                  "are evicted (to 90%); 0 = unbounded")
      ->envname("LLMCACHE_MAX_DISK_BYTES")
      ->capture_default_str()
      ->check(kCount);
  sub->add_option("--memory-bytes", c->memory_bytes,
                  "Byte budget of the in-memory tier of hot entries")
      ->envname("LLMCACHE_MEMORY_BYTES")
      ->capture_default_str()
      ->check(kCount);
  sub->add_option("--redis", c->redis,
                  "Shared tier on Redis for many instances: "
                  "redis[s]://[user:password@]host:port[/db]; several "
                  "host:port seeds, comma-separated, mean Redis Cluster")
      ->envname("LLMCACHE_REDIS_URL");
  sub->add_option("--redis-password", c->redis_password,
                  "Redis password when the URL has none (prefer the "
                  "environment or the config file: flags show in ps)")
      ->envname("LLMCACHE_REDIS_PASSWORD");
  sub->add_option("--redis-prefix", c->redis_prefix,
                  "Prefix of every Redis key llmcache writes")
      ->envname("LLMCACHE_REDIS_PREFIX")
      ->capture_default_str();
  sub->add_option("--redis-timeout-ms", c->redis_timeout_ms,
                  "Deadline of each Redis operation; past it the request "
                  "goes on without the shared tier")
      ->envname("LLMCACHE_REDIS_TIMEOUT_MS")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{60'000}));
  sub->add_option("--redis-ca-file", c->redis_ca_file,
                  "Extra trusted CA certificates (PEM) for rediss://")
      ->envname("LLMCACHE_REDIS_CA_FILE");
  sub->add_option("--redis-spin-us", c->redis_spin_us,
                  "Microseconds the Redis I/O thread polls after any work "
                  "before it sleeps (lower hit latency for some CPU; 0 = "
                  "never)")
      ->envname("LLMCACHE_REDIS_SPIN_US")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{100'000}));
  sub->add_option("--redis-lease-ms", c->redis_lease_ms,
                  "Lease of a cross-instance single flight (renewed while "
                  "the leader waits for upstream)")
      ->envname("LLMCACHE_REDIS_LEASE_MS")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{100}, int64_t{600'000}));
  sub->add_option("--redis-lease-wait", c->redis_lease_wait_s,
                  "Seconds an instance waits for another's answer to the "
                  "same request before asking upstream itself")
      ->envname("LLMCACHE_REDIS_LEASE_WAIT")
      ->capture_default_str()
      ->check(kPositive);
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
