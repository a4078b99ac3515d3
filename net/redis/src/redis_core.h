// The logic of RedisClient without Asio: routing, cluster topology,
// redirections, the breaker, subscriptions and counters (Core), over
// connections and an I/O runtime that redis_client.cc implements on Asio.
//
//   Core     the client's state, used on its one I/O thread (Health and the
//            entry points excepted). Owned by the public handle and by the
//            I/O thread's function, so it outlives every handler that runs.
//   Conn     one node's connection, re-opened with backoff after a failure:
//            a command connection, or the dedicated one of a Subscribe.
//   Op       one user command, through its redirections and retries.
//   Runtime  the I/O thread, its event loop and the factory of Conns.

#ifndef LLMCACHE_NET_REDIS_SRC_REDIS_CORE_H_
#define LLMCACHE_NET_REDIS_SRC_REDIS_CORE_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "llmcache/net/redis.h"
#include "redis_breaker.h"
#include "redis_topology.h"

namespace llmcache::net::redis_internal {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using InternalCallback = std::function<void(Result<RedisReply>)>;

struct Op {
  std::vector<std::string> argv;
  size_t key_index = 0;
  RedisClient::Callback done;
  TimePoint deadline;
  int64_t timeout_ms = 0;
  int redirects = 0;
  bool probe = false;  // the breaker's half-open probe
  bool follow = true;  // follow MOVED/ASK (not for CommandAllMasters)
  bool finished = false;
};
using OpPtr = std::shared_ptr<Op>;

struct Subscription {
  std::string channel;
  RedisClient::MessageHandler on_message;
  std::function<void()> on_subscribed;
  size_t next_node = 1;  // after a failure, the next node to try
};

class Core;

class Conn {
 public:
  enum class State { kConnecting, kUp, kBackoff, kClosed };

  Conn(Core* core, RedisUrl::Node node, std::shared_ptr<Subscription> sub)
      : core_(core), node_(std::move(node)), sub_(std::move(sub)) {}
  virtual ~Conn() = default;

  // Opens a connection (AUTH and SELECT first in its pipeline).
  virtual void Connect() = 0;
  // Queues `op` (after ASKING when `asking`); fails it at once when the node
  // is between attempts.
  virtual void Send(const OpPtr& op, bool asking) = 0;
  // Queues one of our own commands. False (callback not called) when the
  // node is between attempts.
  virtual bool SendInternal(const std::vector<std::string>& argv,
                            int64_t timeout_ms, InternalCallback done) = 0;
  // Final close (shutdown, or a node no longer wanted): pending commands
  // get `status`.
  virtual void Close(const Status& status) = 0;
  // Connect() again after the backoff (50 ms doubling to 2 s).
  virtual void ScheduleReconnect() = 0;

  State state() const { return state_; }
  const RedisUrl::Node& node() const { return node_; }
  void set_node(RedisUrl::Node node) { node_ = std::move(node); }
  const std::shared_ptr<Subscription>& sub() const { return sub_; }
  bool ever_up() const { return ever_up_; }
  // What a command gets while the node is between attempts.
  Status FailFastStatus() const;

 protected:
  Core* const core_;
  RedisUrl::Node node_;
  const std::shared_ptr<Subscription> sub_;
  State state_ = State::kBackoff;
  Status last_error_;
  bool ever_up_ = false;
};

class Runtime {
 public:
  virtual ~Runtime() = default;
  // Starts the I/O thread, which holds `core` until it ends.
  virtual void Start(std::shared_ptr<Core> core) = 0;
  virtual void Post(std::function<void()> fn) = 0;
  virtual void PostAfter(std::chrono::milliseconds delay,
                         std::function<void()> fn) = 0;
  virtual std::shared_ptr<Conn> MakeConn(Core* core, RedisUrl::Node node,
                                         std::shared_ptr<Subscription> sub) = 0;
  virtual bool OnIoThread() const = 0;
  // Lets the loop end once idle; joins the thread (detaches it when called
  // on it).
  virtual void Stop() = 0;
};

class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(RedisOptions options, std::unique_ptr<Runtime> runtime);

  // The entry points, from any thread.
  void Start();
  void Command(std::vector<std::string> argv, size_t key_index,
               int64_t timeout_ms, RedisClient::Callback done);
  void CommandAllMasters(
      std::vector<std::string> argv,
      std::function<void(std::vector<Result<RedisReply>>)> done);
  void Subscribe(std::string channel, RedisClient::MessageHandler on_message,
                 std::function<void()> on_subscribed);
  void ScanAll(std::string pattern, size_t count,
               std::function<void(std::vector<std::string>)> on_keys,
               std::function<void(Status)> done);
  RedisHealth Health() const;
  void Shutdown();

  // For the connections and the runtime, on the I/O thread.
  const RedisOptions& options() const { return options_; }
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  int64_t internal_timeout_ms() const {
    return std::max(options_.connect_timeout_ms, options_.command_timeout_ms);
  }
  void Finish(const OpPtr& op, Result<RedisReply> result);
  void OnOpReply(Conn& conn, const OpPtr& op, RedisReply reply);
  void OnConnecting(const std::shared_ptr<Conn>& conn);
  void OnConnUp(const std::shared_ptr<Conn>& conn);
  void OnConnDown(const std::shared_ptr<Conn>& conn, const Status& status,
                  bool was_up);
  void OnPush(Subscription& sub, const RedisReply& reply);
  void LogError(const std::string& message);
  void LogInfo(const std::string& message);

 private:
  enum class Mode { kUnknown, kStandalone, kCluster };
  void Init();
  void Admit(const OpPtr& op);
  void Dispatch(const OpPtr& op);
  std::shared_ptr<Conn> GetConn(const RedisUrl::Node& node);
  std::shared_ptr<Conn> RouteConn(const Op& op);
  std::shared_ptr<Conn> AnyMasterConn();
  void RefreshTopology();
  void OnClusterSlots(const RedisUrl::Node& asked, Result<RedisReply> result);
  void RunTopologyWaiters();
  struct Scan;
  void StartScan(std::shared_ptr<Scan> scan);
  void ScanStep(std::shared_ptr<Scan> scan);
  void SendAllMasters(
      std::vector<std::string> argv, int64_t timeout_ms,
      std::function<void(std::vector<Result<RedisReply>>)> done);
  void CloseAll();
  void SetLastError(const std::string& message);
  void UpdateBreakerFlag() {
    breaker_open_.store(breaker_.open(), std::memory_order_relaxed);
  }

  const RedisOptions options_;
  const std::string redacted_;
  // Declared before the connections: they are destroyed before their loop.
  const std::unique_ptr<Runtime> runtime_;

  // I/O thread state.
  Mode mode_ = Mode::kUnknown;
  SlotMap slots_;
  bool topology_known_ = false;
  bool slots_in_flight_ = false;
  // When a lost master last made us ask for the slots again (at most once
  // per kFailoverRefreshInterval).
  TimePoint failure_refresh_{};
  size_t next_seed_ = 0;
  std::vector<std::function<void()>> topology_waiters_;
  std::unordered_map<std::string, std::shared_ptr<Conn>> conns_;
  std::vector<std::shared_ptr<Conn>> sub_conns_;
  CircuitBreaker breaker_;
  RateLimitedLog error_log_, info_log_;

  std::atomic<bool> stopping_{false};
  // Health, written on the I/O thread, read anywhere.
  std::atomic<uint64_t> commands_{0}, failures_{0}, timeouts_{0}, rejected_{0},
      reconnects_{0}, moved_{0}, ask_{0}, refreshes_{0};
  std::atomic<int> up_conns_{0};
  std::atomic<bool> cluster_{false}, breaker_open_{false}, last_failed_{false};
  std::atomic<size_t> masters_{1};
  mutable std::mutex error_mu_;
  std::string last_error_;
};

// Runs a user callback; an exception from it is swallowed (it must not
// unwind through the event loop).
void Invoke(const RedisClient::Callback& cb, Result<RedisReply> result);

}  // namespace llmcache::net::redis_internal

#endif  // LLMCACHE_NET_REDIS_SRC_REDIS_CORE_H_
