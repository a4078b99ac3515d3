// ProxyImpl (see server.h) and the public entry points of proxy.h:
// ProxyServer::Start, LogLevelName, LogLevelFromName. With session.cc, the
// only translation unit of the proxy that instantiates Asio templates.
//
// Decisions not spelled out in proxy.h:
//   - Over the connection limit a connection gets a 503 (written without
//     blocking, Retry-After: 1) and is closed; it never becomes a session.
//   - Accept errors: out of descriptors (EMFILE, ENFILE), the spare
//     descriptor is closed, one pending connection accepted, answered 503
//     and closed, and the spare reopened; then accepting goes on at once.
//     Without a spare, and on other errors, it goes on after 50 ms. Logged
//     at most every 10 s (with the count of the ones not logged).
//   - Shutdown closes idle sessions at once, waits up to the grace period
//     for requests in flight, then closes the rest (a request whose answer
//     has not begun gets a 503 first) and joins every thread.

#include "server.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstdio>
#include <exception>
#include <optional>
#include <utility>

#include "completion_request.h"
#include "llmcache/cpus.h"
#include "llmcache/options.h"
#include "proxy_util.h"
#include "session.h"
#include "session_state.h"
#include "stats_json.h"

namespace llmcache::net {
namespace proxy {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

constexpr auto kAcceptRetry = std::chrono::milliseconds(50);
constexpr auto kAcceptLogInterval = std::chrono::seconds(10);

int OpenSpareFd() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

}  // namespace

ProxyImpl::ProxyImpl(ProxyOptions options, std::shared_ptr<Cache> cache)
    : options_(std::move(options)),
      cache_(std::move(cache)),
      metrics_(static_cast<size_t>(std::max(1, options_.threads))) {}

ProxyImpl::~ProxyImpl() {
  Shutdown(std::chrono::milliseconds(10'000));
  // Upstream work (and the session references it holds) goes first, while
  // the workers' io_contexts still exist.
  cached_.reset();
  client_.reset();
  upstream_guard_.reset();
  upstream_.reset();
  // Model-list waiters that no fetch will answer now: they hold sessions.
  {
    std::unordered_map<std::string, std::vector<ModelsWaiter>> fetches;
    {
      std::lock_guard<std::mutex> lock(models_mu_);
      fetches.swap(models_fetches_);
    }
  }
  admin_.reset();
  maintenance_.reset();
  accept_timer_.reset();
  acceptor_.reset();
  workers_.clear();
  if (spare_fd_ >= 0) ::close(spare_fd_);
}

void ProxyImpl::Log(LogLevel level, std::string_view line) {
  if (!LogEnabled(level)) return;
  try {
    if (options_.log) {
      options_.log(level, line);
    } else {
      std::string l = "llmcache: ";
      l.append(line);
      l.push_back('\n');
      std::fwrite(l.data(), 1, l.size(), stderr);
    }
  } catch (...) {
    // Logging never fails a request.
  }
}

void ProxyImpl::LogRequest(std::string_view method, const RequestState& req) {
  const double ms =
      std::chrono::duration<double, std::milli>(SteadyClock::now() - req.t0)
          .count();
  Log(LogLevel::kInfo,
      proxy_util::AccessLogLine(method, req.path, req.status,
                                req.cache ? CacheResultName(*req.cache) : "-",
                                ms, req.note));
}

std::optional<ProxyImpl::ModelsEntry> ProxyImpl::CachedModels() {
  std::lock_guard<std::mutex> lock(models_mu_);
  if (!models_ || options_.models_ttl.count() <= 0 ||
      SteadyClock::now() - models_->fetched > options_.models_ttl) {
    return std::nullopt;
  }
  return models_;
}

ProxyImpl::ModelsEntry ProxyImpl::KeepModels(Response r) {
  ModelsEntry e;
  e.body = std::make_shared<const std::string>(std::move(r.body));
  e.content_type = std::string(r.header("Content-Type"));
  e.fetched = SteadyClock::now();
  e.status = r.status;
  if (e.content_type.empty()) e.content_type = proxy_util::kJson;
  if (r.status != 200) return e;
  // Parsed once per fetch (on this worker): a 200 that is not a list (an
  // HTML error page) is not kept, or /models/{id} would answer every id
  // with a 404 until it expired.
  if (auto index = proxy_util::IndexModels(*e.body)) {
    e.index =
        std::make_shared<const std::unordered_map<std::string, std::string>>(
            std::move(*index));
  }
  if (e.index && options_.models_ttl.count() > 0) {
    std::lock_guard<std::mutex> lock(models_mu_);
    models_ = e;
  }
  return e;
}

bool ProxyImpl::FetchModels(std::string_view key,
                            boost::asio::io_context& parse_on,
                            metrics::Shard& shard, ModelsWaiter done) {
  std::string api_key(key);
  {
    std::lock_guard<std::mutex> lock(models_mu_);
    auto [it, added] = models_fetches_.try_emplace(api_key);
    it->second.push_back(std::move(done));
    if (!added) return false;
  }
  // Past here the fetch must end, or the key's requests wait for ever.
  try {
    SendModelsRequest(api_key, parse_on, shard);
  } catch (const std::exception& e) {
    EndModelsFetch(api_key,
                   InternalError(std::string("model list: ") + e.what()));
  }
  return true;
}

void ProxyImpl::SendModelsRequest(const std::string& api_key,
                                  boost::asio::io_context& parse_on,
                                  metrics::Shard& shard) {
  client().Send(
      ModelsRequest(api_key), nullptr,
      [this, &parse_on, &shard, api_key](Result<Response> r) {
        // Counted once per fetch, however many wait for it.
        if (!r.ok() || r->status != 200) shard.Add(shard.models_errors);
        try {
          boost::asio::post(
              parse_on, [this, api_key, r = std::move(r)]() mutable {
                Result<ModelsEntry> e = InternalError("no model list");
                try {
                  if (r.ok()) {
                    e = KeepModels(*std::move(r));
                  } else {
                    e = r.status();
                  }
                } catch (const std::exception& ex) {
                  e = InternalError(std::string("model list: ") + ex.what());
                }
                EndModelsFetch(api_key, e);
              });
        } catch (const std::exception& ex) {
          EndModelsFetch(
              api_key, InternalError(std::string("model list: ") + ex.what()));
        }
      });
}

void ProxyImpl::EndModelsFetch(const std::string& api_key,
                               const Result<ModelsEntry>& e) {
  std::vector<ModelsWaiter> waiters;
  {
    std::lock_guard<std::mutex> lock(models_mu_);
    auto it = models_fetches_.find(api_key);
    if (it == models_fetches_.end()) return;
    waiters = std::move(it->second);
    models_fetches_.erase(it);
  }
  for (ModelsWaiter& w : waiters) {
    try {
      w(e);
    } catch (const std::exception&) {
      // That waiter's post failed (allocation); the others still hear.
    }
  }
}

ProxyImpl::ModelsAnswer ProxyImpl::AnswerModels(ModelsEntry m,
                                                std::string_view path) {
  const std::optional<std::string> id = proxy_util::ModelIdOfPath(path);
  if (!id || m.status != 200) return {m.status, m.content_type, m.body};
  if (!m.index) {
    return {502, std::string(proxy_util::kJson),
            std::make_shared<const std::string>(proxy_util::ErrorJson(
                502, "upstream_error",
                "the upstream's model list could not be read (not a JSON "
                "object with a \"data\" array)"))};
  }
  const auto it = m.index->find(*id);
  if (it == m.index->end()) {
    // The id is echoed only when it is printable ASCII (as model ids are):
    // a decoded %FF would make the answer invalid UTF-8.
    const bool printable = std::all_of(
        id->begin(), id->end(), [](char c) { return c >= 0x20 && c < 0x7f; });
    return {
        404, std::string(proxy_util::kJson),
        std::make_shared<const std::string>(proxy_util::ErrorJson(
            404, "invalid_request_error",
            (printable ? "model \"" + *id + "\"" : std::string("the model")) +
                " is not in the upstream's model list"))};
  }
  return {200, std::string(proxy_util::kJson),
          std::shared_ptr<const std::string>(m.index, &it->second)};
}

std::pair<int, std::string> ProxyImpl::RunAdminAction(const AdminAction& action,
                                                      std::string_view body) {
  AdminAnswer a = RunAdmin(
      *cache_, action, body,
      [this](LogLevel l, std::string_view m) { Log(l, m); },
      cached_->shared_tier());
  return {a.status, std::move(a.body)};
}

void ProxyImpl::CapConnections() {
  struct rlimit rl;
  uint64_t limit = 0;  // unlimited
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    limit = rl.rlim_cur;
  }
  // Descriptors open already (the store's files, logs; a library user's
  // own) are not available to connections either.
  // Counted with readdir: std::filesystem's iterators end the process
  // (libstdc++ 12) when an allocation fails.
  uint64_t open_now = 0;
  if (DIR* fds = ::opendir("/proc/self/fd"); fds != nullptr) {
    while (const struct dirent* e = ::readdir(fds)) {
      if (e->d_name[0] != '.') ++open_now;
    }
    ::closedir(fds);
  }
  const uint64_t reserve =
      open_now + 64 + 4 * static_cast<uint64_t>(std::max(1, options_.threads)) +
      options_.upstream.max_idle_per_host + (cache_->persistent() ? 256 : 0);
  max_connections_ =
      proxy_util::ConnectionCap(options_.max_connections, limit, reserve);
  metrics_.max_connections.store(max_connections_);
  if (max_connections_ < options_.max_connections) {
    // A few percent below what was asked (the default 10000 under a 20000
    // limit) is worth a line, not a warning at every start.
    Log(max_connections_ < options_.max_connections / 10 * 9 ? LogLevel::kWarn
                                                             : LogLevel::kInfo,
        "max connections capped at " + std::to_string(max_connections_) +
            " (of " + std::to_string(options_.max_connections) +
            ") by the open-file limit " + std::to_string(limit) + " (reserve " +
            std::to_string(reserve) +
            ", and one upstream socket per connection); raise it with "
            "`ulimit -n`");
  }
}

Status ProxyImpl::Init() {
  try {
    Result<AccessPolicy> access = MakeAccessPolicy(options_);
    if (!access.ok()) return access.status();
    access_ = std::move(access).value();
    CapConnections();
    spare_fd_ = OpenSpareFd();
    const int threads = options_.threads;
    const size_t n = static_cast<size_t>(std::max(1, threads));
    CachedClientOptions co = options_.cached;
    co.log = [this](std::string_view line) { Log(LogLevel::kWarn, line); };
    if (options_.clock != nullptr) co.clock = options_.clock;

    upstream_ = std::make_unique<asio::io_context>(1);
    upstream_guard_.emplace(asio::make_work_guard(*upstream_));
    Result<std::shared_ptr<Client>> client =
        Client::Create(upstream_->get_executor(), options_.upstream);
    if (!client.ok()) return client.status();
    client_ = std::move(client).value();
    cached_ = CachedClient::Create(cache_, client_, std::move(co));
    admin_ = std::make_unique<asio::thread_pool>(1);
    maintenance_ = std::make_unique<asio::thread_pool>(1);

    for (size_t i = 0; i < n; ++i) {
      workers_.push_back(std::make_unique<Worker>(i, &metrics_.shard(i)));
      // Creates the worker's reactor (its epoll, eventfd and timerfd
      // descriptors) now: created lazily by the first connection, it could
      // fail for lack of descriptors exactly when they run out.
      tcp::socket warm_up(workers_.back()->ioc);
    }
    boost::system::error_code ec;
    const std::string host =
        options_.host == "localhost" ? "127.0.0.1" : options_.host;
    const asio::ip::address address = asio::ip::make_address(host, ec);
    if (ec) return InvalidArgumentError("bad listen host '" + host + "'");
    const tcp::endpoint endpoint(address, options_.port);
    acceptor_ = std::make_unique<tcp::acceptor>(workers_[0]->ioc);
    accept_timer_ = std::make_unique<asio::steady_timer>(workers_[0]->ioc);
    acceptor_->open(endpoint.protocol(), ec);
    if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_->bind(endpoint, ec);
    if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return UnavailableError("cannot listen on " + host + ":" +
                              std::to_string(options_.port) + ": " +
                              ec.message());
    }
    port_ = acceptor_->local_endpoint(ec).port();
    if (ec) return InternalError("local_endpoint: " + ec.message());
    display_host_ = host == "0.0.0.0"                     ? "127.0.0.1"
                    : host == "::"                        ? "[::1]"
                    : host.find(':') != std::string::npos ? "[" + host + "]"
                                                          : host;
    DoAccept();
    upstream_thread_ = std::thread([this] {
      for (;;) {
        try {
          upstream_->run();
          return;
        } catch (...) {
          // Handlers catch their own exceptions; keep going regardless.
        }
      }
    });
    // Sweeps every quarter of the shortest timeout (the linger's included),
    // 5 to 250 ms apart: a connection is closed that long after its deadline
    // at most.
    sweep_interval_ = std::clamp(
        std::min({options_.read_timeout, options_.idle_timeout,
                  std::chrono::milliseconds(kLingerTimeout)}) /
            4,
        std::chrono::milliseconds(5), std::chrono::milliseconds(250));
    for (auto& w : workers_) {
      Worker* wp = w.get();
      ArmSweep(*wp);
      w->thread = std::thread([this, wp] { RunWorker(*wp); });
    }
    return Status();
  } catch (const std::exception& e) {
    return InternalError(std::string("cannot start the proxy: ") + e.what());
  }
}

void ProxyImpl::RunWorker(Worker& w) {
  for (;;) {
    try {
      w.ioc.run();
      return;
    } catch (...) {
      // A handler threw (allocation failure): keep serving, with the sweep
      // armed again in case it was the sweep's (a wait pending is replaced).
      try {
        ArmSweep(w);
      } catch (...) {
      }
    }
  }
}

void ProxyImpl::ArmSweep(Worker& w) {
  w.sweep.expires_after(sweep_interval_);
  // Also while shutting down: a client stalled in the grace period is still
  // closed at its deadline. ioc.stop() ends it.
  w.sweep.async_wait([this, &w](boost::system::error_code ec) {
    if (ec) return;
    Sweep(w);
    ArmSweep(w);
  });
}

void ProxyImpl::Sweep(Worker& w) {
  try {
    const int64_t now = proxy_util::SteadyNs();
    std::vector<std::shared_ptr<Session>> due;
    {
      std::lock_guard<std::mutex> lock(w.mu);
      for (auto& [id, weak] : w.sessions) {
        std::shared_ptr<Session> s = weak.lock();
        if (!s) continue;
        const int64_t d = s->deadline_ns();
        if (d != 0 && d <= now) due.push_back(std::move(s));
      }
    }
    // Outside the lock: closing takes it.
    for (auto& s : due) s->OnDeadline();
  } catch (...) {
    // Allocation failure: the next sweep tries again.
  }
}

void ProxyImpl::DoAccept() {
  try {
    Worker& target = *workers_[next_worker_++ % workers_.size()];
    acceptor_->async_accept(
        target.ioc,
        [this, &target](boost::system::error_code ec, tcp::socket socket) {
          OnAccept(target, ec, std::move(socket));
        });
  } catch (const std::exception& e) {
    // Allocation failure: accepting must not stop for good.
    Log(LogLevel::kError, std::string("cannot accept: ") + e.what());
    accept_timer_->expires_after(kAcceptRetry);
    accept_timer_->async_wait([this](boost::system::error_code) {
      if (!stopping()) DoAccept();
    });
  }
}

void ProxyImpl::OnAccept(Worker& target, boost::system::error_code ec,
                         tcp::socket socket) {
  if (ec == asio::error::operation_aborted || !acceptor_->is_open() ||
      stopping()) {
    return;
  }
  if (ec) return OnAcceptError(target, ec);
  socket.set_option(tcp::no_delay(true), ec);
  const int64_t open =
      metrics_.open_connections.fetch_add(1, std::memory_order_relaxed);
  if (static_cast<uint64_t>(open) >= max_connections_) {
    metrics_.open_connections.fetch_sub(1, std::memory_order_relaxed);
    metrics_.rejected_connections.fetch_add(1, std::memory_order_relaxed);
    Reject(socket);
    DoAccept();
    return;
  }
  try {
    const uint64_t id = ++next_session_id_;
    std::shared_ptr<Session> session =
        Session::Create(*this, target, std::move(socket), id);
    {
      std::lock_guard<std::mutex> lock(target.mu);
      target.sessions[id] = session;
    }
    asio::post(target.ioc, [session] { session->Start(); });
  } catch (const std::exception& e) {
    Log(LogLevel::kError, std::string("cannot start a session: ") + e.what());
  }
  DoAccept();
}

void ProxyImpl::OnAcceptError(Worker& target, boost::system::error_code ec) {
  metrics_.accept_errors.fetch_add(1, std::memory_order_relaxed);
  const auto now = SteadyClock::now();
  if (!accept_error_logged_ ||
      now - *accept_error_logged_ >= kAcceptLogInterval) {
    std::string line = "accept failed: " + ec.message();
    if (accept_errors_unlogged_ > 0) {
      line += " (and " + std::to_string(accept_errors_unlogged_) +
              " more since the last report)";
    }
    if (ec == asio::error::no_descriptors || ec.value() == ENFILE) {
      line +=
          "; answering 503 while out of file descriptors (open "
          "connections: " +
          std::to_string(metrics_.open_connections.load()) + ")";
    }
    Log(LogLevel::kWarn, line);
    accept_error_logged_ = now;
    accept_errors_unlogged_ = 0;
  } else {
    ++accept_errors_unlogged_;
  }
  const bool out_of_fds =
      ec == asio::error::no_descriptors || ec.value() == ENFILE;
  if (out_of_fds && spare_fd_ >= 0) {
    // Make room for one descriptor: the pending connection gets a 503
    // instead of waiting in the backlog for a slot that may never come.
    ::close(spare_fd_);
    spare_fd_ = -1;
    tcp::socket socket(target.ioc);
    boost::system::error_code aec;
    acceptor_->non_blocking(true, aec);
    if (!aec) acceptor_->accept(socket, aec);
    boost::system::error_code ignored;
    acceptor_->non_blocking(false, ignored);
    const bool accepted = !aec;
    if (accepted) {
      metrics_.rejected_connections.fetch_add(1, std::memory_order_relaxed);
      Reject(socket);
    }
    spare_fd_ = OpenSpareFd();
    if (accepted && spare_fd_ >= 0) {
      DoAccept();
      return;
    }
  }
  // Back off briefly instead of spinning.
  accept_timer_->expires_after(kAcceptRetry);
  accept_timer_->async_wait([this](boost::system::error_code) {
    if (!stopping()) DoAccept();
  });
}

void ProxyImpl::WriteNow(tcp::socket& socket, std::string_view bytes) {
  boost::system::error_code ec;
  socket.non_blocking(true, ec);
  socket.write_some(asio::buffer(bytes.data(), bytes.size()), ec);
}

void ProxyImpl::Reject(tcp::socket& socket, std::string_view type,
                       std::string_view message) {
  boost::system::error_code ec;
  socket.non_blocking(true, ec);
  std::array<char, 4096> scratch;
  for (int i = 0; i < 16 && !ec; ++i)
    socket.read_some(asio::buffer(scratch), ec);
  ec.clear();
  const std::string body = proxy_util::ErrorJson(503, type, message);
  std::string msg;
  proxy_util::AppendResponseHead(&msg, 503, proxy_util::kJson,
                                 static_cast<int64_t>(body.size()), false,
                                 "Retry-After: 1\r\n");
  msg += body;
  WriteNow(socket, msg);
  socket.shutdown(tcp::socket::shutdown_send, ec);
  socket.close(ec);
}

void ProxyImpl::Shutdown(std::chrono::milliseconds grace) {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  if (workers_.empty()) return;  // Init failed before anything ran
  stopping_.store(true);
  // Runs `fn` on every session, on its worker; the count of workers that
  // have not yet run it.
  auto for_each_session = [this](auto fn) {
    auto left = std::make_shared<std::atomic<size_t>>(workers_.size());
    for (auto& w : workers_) {
      Worker* wp = w.get();
      asio::post(wp->ioc, [wp, fn, left] {
        std::vector<std::shared_ptr<Session>> sessions;
        {
          std::lock_guard<std::mutex> lock(wp->mu);
          for (auto& [id, weak] : wp->sessions) {
            if (auto s = weak.lock()) sessions.push_back(std::move(s));
          }
        }
        for (auto& s : sessions) fn(*s);
        left->fetch_sub(1);
      });
    }
    return left;
  };
  try {
    asio::post(workers_[0]->ioc, [this] {
      boost::system::error_code ec;
      acceptor_->close(ec);
      accept_timer_->cancel();
    });
    for_each_session([](Session& s) { s.CloseIfIdle(); });
    const auto deadline = SteadyClock::now() + grace;
    while (metrics_.in_flight.load() > 0 && SteadyClock::now() < deadline &&
           !end_grace_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (metrics_.in_flight.load() > 0) {
      Log(LogLevel::kWarn, "shutdown grace period over; dropping " +
                               std::to_string(metrics_.in_flight.load()) +
                               " in-flight requests");
    }
    // Every worker runs it (their answers are written there) before the
    // loops stop, however busy they are: at most 2 s.
    const auto closing =
        for_each_session([](Session& s) { s.CloseAtShutdown(); });
    const auto until = SteadyClock::now() + std::chrono::seconds(2);
    while (closing->load() > 0 && SteadyClock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    // Let the closes run, then stop.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } catch (...) {
    // post() only throws on allocation failure; stop regardless.
  }
  for (auto& w : workers_) {
    w->guard.reset();
    w->ioc.stop();
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
  upstream_guard_.reset();
  if (upstream_) upstream_->stop();
  if (upstream_thread_.joinable()) upstream_thread_.join();
  if (admin_) admin_->join();
  if (maintenance_) maintenance_->join();
}

ProxyCounters ProxyImpl::counters() const {
  const metrics::Totals t = metrics_.Sum();
  const CachedClientStats p = cached_ ? cached_->stats() : CachedClientStats();
  ProxyCounters c;
  c.requests = t.requests;
  c.hits = p.hits;
  c.misses = p.misses;
  c.bypasses = p.bypasses;
  c.upstream_errors = p.upstream_errors + t.models_errors;
  c.store_errors = p.store_errors;
  c.models_upstream_fetches = t.models_fetches;
  c.open_connections = t.open_connections;
  c.in_flight = t.in_flight;
  c.rejected_connections = t.rejected_connections;
  c.accept_errors = t.accept_errors;
  return c;
}

std::string ProxyImpl::MetricsText() {
  uint64_t entries = 0;
  uint64_t disk_bytes = 0;
  if (Result<CacheStats> s = cache_->GetStats(); s.ok()) {
    entries = s->entries;
    disk_bytes = s->disk_bytes;
  }
  const CachedClientStats pipeline =
      cached_ ? cached_->stats() : CachedClientStats();
  std::string out =
      metrics_.Render(pipeline, entries, disk_bytes, cache_->Health());
  if (SharedTier* shared = cached_ ? cached_->shared_tier() : nullptr) {
    out += metrics::RenderShared(pipeline, shared->Health());
  }
  return out;
}

std::string ProxyImpl::RenderHealthzJson() {
  if (SharedTier* shared = cached_->shared_tier()) {
    const SharedTierHealth h = shared->Health();
    return HealthzJson(cache_->Health(), &h);
  }
  return HealthzJson(cache_->Health());
}

std::string ProxyImpl::RenderStatsJson() {
  std::optional<SharedTierHealth> shared;
  if (SharedTier* tier = cached_ ? cached_->shared_tier() : nullptr) {
    shared = tier->Health();
  }
  return StatsJson(cache_->GetStats(), metrics_.Sum(),
                   cached_ ? cached_->stats() : CachedClientStats(),
                   cache_->Health(), shared ? &*shared : nullptr);
}

}  // namespace proxy

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return "error";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kDebug:
      return "debug";
  }
  return "info";
}

std::optional<LogLevel> LogLevelFromName(std::string_view name) {
  for (LogLevel l :
       {LogLevel::kError, LogLevel::kWarn, LogLevel::kInfo, LogLevel::kDebug}) {
    if (LogLevelName(l) == name) return l;
  }
  if (name == "warning") return LogLevel::kWarn;
  return std::nullopt;
}

Result<std::unique_ptr<ProxyServer>> ProxyServer::Start(
    ProxyOptions options, std::shared_ptr<Cache> cache) {
  if (!cache) return InvalidArgumentError("ProxyServer needs a cache");
  if (options.threads <= 0) {
    options.threads = static_cast<int>(std::min<size_t>(UsableCpus(), 1024));
  }
  if (options.max_header_bytes == 0 || options.max_body_bytes == 0) {
    return InvalidArgumentError("body and header limits must be positive");
  }
  // The TTL ceiling: the operator's TTL unless given; it cuts the default
  // too.
  const int64_t ttl =
      options.cached.ttl_ms.value_or(CacheOptions().default_ttl_ms);
  if (!options.max_ttl_ms) options.max_ttl_ms = ttl;
  if (*options.max_ttl_ms < 0 || ttl < 0) {
    return InvalidArgumentError("TTLs must not be negative");
  }
  if (options.cached.ttl_ms) {
    options.cached.ttl_ms = proxy::ClampTtlMs(ttl, *options.max_ttl_ms);
  }
  // The key builders must accept every body the server accepts.
  options.cached.key_options.max_body_bytes = std::max(
      options.cached.key_options.max_body_bytes, options.max_body_bytes);
  try {
    auto impl = std::make_unique<proxy::ProxyImpl>(std::move(options),
                                                   std::move(cache));
    LLMCACHE_RETURN_IF_ERROR(impl->Init());
    return std::unique_ptr<ProxyServer>(std::move(impl));
  } catch (const std::exception& e) {
    return InternalError(std::string("cannot start the proxy: ") + e.what());
  }
}

}  // namespace llmcache::net
