// ProxyImpl, the ProxyServer behind `llmcache serve`: its threads and
// io_contexts, the acceptor and the connection limit, shutdown, logging, the
// GET /models memory cache and the counters. Each accepted connection is a
// Session (session.h), which reads, routes and answers its requests; this
// file only owns them.
//
// Threads:
//   - N workers, each running its own io_context (concurrency hint 1). A
//     connection lives on one worker for its whole life, so its handlers
//     never run concurrently and need no strand. The acceptor runs on
//     worker 0 and hands sockets out round robin. Each worker's sweep timer
//     closes its connections whose deadline (session.h) has passed.
//   - One upstream thread runs the Client (and CachedClient's callbacks);
//     results are posted back to the connection's worker.
//   - One admin thread reads the store for /stats and /metrics, and one
//     maintenance thread runs the /admin/* actions (purges, compactions,
//     imports: seconds to minutes), one at a time; both off the workers, and
//     a long purge does not hold up a scrape.
//
// Thread safety: the accessors may be used from any thread; Worker::sessions
// is guarded by Worker::mu.

#ifndef LLMCACHE_NET_PROXY_SRC_SERVER_H_
#define LLMCACHE_NET_PROXY_SRC_SERVER_H_

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "access.h"
#include "admin.h"
#include "llmcache/net/proxy.h"
#include "metrics.h"

namespace llmcache::net::proxy {

struct RequestState;  // session_state.h

class Session;

// One worker thread and its io_context.
struct Worker {
  Worker(size_t i, metrics::Shard* s)
      : index(i),
        ioc(1),
        guard(boost::asio::make_work_guard(ioc)),
        shard(s),
        sweep(ioc) {}
  const size_t index;
  boost::asio::io_context ioc;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type>
      guard;
  metrics::Shard* const shard;  // this worker's counters
  // Closes this worker's connections past their deadline (ArmSweep).
  boost::asio::steady_timer sweep;
  std::thread thread;
  std::mutex mu;  // guards sessions
  std::unordered_map<uint64_t, std::weak_ptr<Session>> sessions;
};

class ProxyImpl final : public ProxyServer {
 public:
  using SteadyClock = std::chrono::steady_clock;

  ProxyImpl(ProxyOptions options, std::shared_ptr<Cache> cache);
  ~ProxyImpl() override;

  // Creates the clients and threads, binds and starts accepting.
  Status Init();

  uint16_t port() const override { return port_; }
  size_t max_connections() const override { return max_connections_; }
  std::string base_url() const override {
    return "http://" + display_host_ + ":" + std::to_string(port_);
  }
  void Shutdown(std::chrono::milliseconds grace) override;
  void EndGrace() override { end_grace_.store(true); }
  ProxyCounters counters() const override;
  std::string MetricsText() override;
  // The GET /stats JSON (reads the store: call it on the admin thread).
  std::string RenderStatsJson();
  // The GET /healthz JSON (cheap: any thread).
  std::string RenderHealthzJson();

  // A 503 of `type` saying `message` (with Retry-After: 1), written without
  // blocking after reading what the client sent (closing over unread bytes
  // resets the connection, and the client could lose the answer); then the
  // socket is closed.
  static void Reject(boost::asio::ip::tcp::socket& socket,
                     std::string_view type = "overloaded",
                     std::string_view message = "too many connections");
  // Writes what the socket takes of `bytes` now, without blocking.
  static void WriteNow(boost::asio::ip::tcp::socket& socket,
                       std::string_view bytes);

  // For sessions.
  const ProxyOptions& options() const { return options_; }
  const AccessPolicy& access() const { return access_; }
  Cache& cache() { return *cache_; }
  CachedClient& cached() { return *cached_; }
  Client& client() { return *client_; }
  metrics::Registry& registry() { return metrics_; }
  // The operator views (/stats, /metrics) run on admin(); the admin actions
  // (/admin/*: purges, compactions, imports, which may take minutes) one at
  // a time on maintenance(), so that a scrape never waits for them.
  boost::asio::thread_pool& admin() { return *admin_; }
  boost::asio::thread_pool& maintenance() { return *maintenance_; }
  const std::string& server_key() const { return client_->options().api_key; }
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }

  bool LogEnabled(LogLevel level) const {
    return static_cast<int>(level) <= static_cast<int>(options_.log_level);
  }
  // Drops lines above the log level; never throws.
  void Log(LogLevel level, std::string_view line);
  // The access log line of request `req` (at kInfo).
  void LogRequest(std::string_view method, const RequestState& req);

  // GET /models answers kept in memory for ProxyOptions::models_ttl.
  struct ModelsEntry {
    std::shared_ptr<const std::string> body;
    std::string content_type;
    SteadyClock::time_point fetched;
    int status = 200;  // the upstream's (only a 200 is kept)
    // Its models by id; null when a 200's body is not a model list (then
    // it is passed on to list requests but not kept).
    std::shared_ptr<const std::unordered_map<std::string, std::string>> index;
  };
  std::optional<ModelsEntry> CachedModels();
  // The upstream request for the model list, with the client's `api_key`.
  static Request ModelsRequest(std::string_view api_key) {
    Request up;
    up.method = "GET";
    up.path = "/models";
    up.api_key = std::string(api_key);
    return up;
  }
  // The entry of the upstream's answer `r`, indexed and kept when a 200
  // whose body is a model list.
  ModelsEntry KeepModels(Response r);
  // Asks upstream for the model list with `api_key`, or joins the fetch of
  // that key under way: one fetch answers every request of the key that
  // asks meanwhile (another key's answer may be a 401 for it). `done` is
  // called once, on `parse_on` (the first caller's worker, which reads the
  // list with KeepModels) for every waiter. True if this call started the
  // fetch; a failed fetch counts once in `shard`'s models_errors.
  using ModelsWaiter = std::function<void(Result<ModelsEntry>)>;
  bool FetchModels(std::string_view api_key, boost::asio::io_context& parse_on,
                   metrics::Shard& shard, ModelsWaiter done);
  // What GET `path` answers from the upstream's answer `m`: the list itself,
  // or for /models/{id} that model's object (404 when the list has none, 502
  // when the list could not be read; an upstream error as it came).
  struct ModelsAnswer {
    int status;
    std::string content_type;
    std::shared_ptr<const std::string> body;
  };
  ModelsAnswer AnswerModels(ModelsEntry m, std::string_view path);

  // Runs a validated /admin action on the store, with `body` (import's
  // lines): its status and JSON. On the maintenance thread.
  std::pair<int, std::string> RunAdminAction(const AdminAction& action,
                                             std::string_view body);

 private:
  // FetchModels' upstream call; its answer ends the key's fetch.
  void SendModelsRequest(const std::string& api_key,
                         boost::asio::io_context& parse_on,
                         metrics::Shard& shard);
  // Hands `e` to every waiter of the key's fetch, which ends.
  void EndModelsFetch(const std::string& api_key, const Result<ModelsEntry>& e);
  void DoAccept();
  void OnAccept(Worker& target, boost::system::error_code ec,
                boost::asio::ip::tcp::socket socket);
  // accept failed with `ec`: counts and logs it (at most every 10 s); out of
  // descriptors, answers one pending connection 503 with the spare
  // descriptor's slot. Then accepts again, at once or after 50 ms.
  void OnAcceptError(Worker& target, boost::system::error_code ec);
  // Computes max_connections_ from the open-file limit; logs a cap.
  void CapConnections();
  void RunWorker(Worker& w);
  // Every sweep_interval_, on w's thread: closes w's connections past their
  // deadline (Session::OnDeadline).
  void ArmSweep(Worker& w);
  void Sweep(Worker& w);

  // Declared first: destroyed last (sessions touch it when they die).
  const ProxyOptions options_;
  std::shared_ptr<Cache> cache_;
  metrics::Registry metrics_;
  AccessPolicy access_;
  size_t max_connections_ = 0;

  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<boost::asio::io_context> upstream_;
  std::optional<
      boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>
      upstream_guard_;
  std::thread upstream_thread_;
  std::unique_ptr<boost::asio::thread_pool> admin_;
  std::unique_ptr<boost::asio::thread_pool> maintenance_;
  std::shared_ptr<Client> client_;
  std::shared_ptr<CachedClient> cached_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::unique_ptr<boost::asio::steady_timer> accept_timer_;
  // A descriptor on /dev/null, closed to make room for answering one
  // connection 503 when accept runs out of descriptors (-1: none held).
  int spare_fd_ = -1;
  // Accept errors not yet logged, and when one was last logged (acceptor
  // thread only).
  uint64_t accept_errors_unlogged_ = 0;
  std::optional<SteadyClock::time_point> accept_error_logged_;
  std::chrono::milliseconds sweep_interval_{250};
  size_t next_worker_ = 0;
  uint64_t next_session_id_ = 0;
  uint16_t port_ = 0;
  std::string display_host_;

  std::atomic<bool> stopping_{false};
  std::atomic<bool> end_grace_{false};
  std::mutex stop_mu_;
  bool stopped_ = false;

  std::mutex models_mu_;
  std::optional<ModelsEntry> models_;
  // The waiters of each key's fetch under way.
  std::unordered_map<std::string, std::vector<ModelsWaiter>> models_fetches_;
};

}  // namespace llmcache::net::proxy

#endif  // LLMCACHE_NET_PROXY_SRC_SERVER_H_
