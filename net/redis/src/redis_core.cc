// Core: routing, cluster topology, redirections, the breaker and the
// counters of RedisClient (see redis_core.h). No Asio here.

#include "redis_core.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <utility>

namespace llmcache::net::redis_internal {
namespace {

constexpr int kMaxRedirects = 5;
constexpr std::chrono::milliseconds kRetryPause{20};
constexpr std::chrono::milliseconds kFailoverRefreshInterval{500};

}  // namespace

using std::chrono::milliseconds;

void Invoke(const RedisClient::Callback& cb, Result<RedisReply> result) {
  if (!cb) return;
  try {
    cb(std::move(result));
  } catch (...) {
    // A throwing callback must not unwind through the event loop.
  }
}

Status Conn::FailFastStatus() const {
  const std::string what = "redis " + NodeKey(node_) + " unavailable";
  if (last_error_.code() == StatusCode::kUnauthenticated) {
    return UnauthenticatedError(what + ": " +
                                std::string(last_error_.message()));
  }
  if (last_error_.ok()) return UnavailableError(what);
  return UnavailableError(what + ": " + std::string(last_error_.message()));
}

Core::Core(RedisOptions options, std::unique_ptr<Runtime> runtime)
    : options_(std::move(options)),
      redacted_(options_.url.Redacted()),
      runtime_(std::move(runtime)),
      breaker_(options_.breaker_failures, options_.breaker_open_ms,
               options_.breaker_max_open_ms),
      error_log_(options_.log, options_.error_log_interval_ms),
      info_log_(options_.info_log ? options_.info_log : options_.log,
                options_.error_log_interval_ms) {}

void Core::Start() {
  runtime_->Post([this] { Init(); });
  runtime_->Start(shared_from_this());
}

void Core::Init() {
  const std::vector<RedisUrl::Node>& seeds = options_.url.nodes;
  if (seeds.size() > 1) {
    mode_ = Mode::kCluster;
    cluster_.store(true);
    slots_.SetMasters(seeds);
    masters_.store(seeds.size());
    RefreshTopology();
  } else {
    // One node: standalone or cluster, as CLUSTER SLOTS will tell (Redis
    // Cluster has no SELECT, so a database other than 0 means standalone).
    if (options_.url.db != 0) {
      mode_ = Mode::kStandalone;
      topology_known_ = true;
    }
    GetConn(seeds.front());
  }
}

std::shared_ptr<Conn> Core::GetConn(const RedisUrl::Node& node) {
  if (stopping()) return nullptr;
  const std::string key = NodeKey(node);
  auto it = conns_.find(key);
  if (it != conns_.end()) return it->second;
  auto conn = runtime_->MakeConn(this, node, nullptr);
  conns_.emplace(key, conn);
  conn->Connect();
  return conn;
}

void Core::OnConnecting(const std::shared_ptr<Conn>& conn) {
  // Detection: CLUSTER SLOTS right behind AUTH/SELECT, before the commands.
  if (mode_ == Mode::kUnknown && !slots_in_flight_) {
    if (conn->SendInternal({"CLUSTER", "SLOTS"}, internal_timeout_ms(),
                           [this, asked = conn->node()](Result<RedisReply> r) {
                             OnClusterSlots(asked, std::move(r));
                           })) {
      slots_in_flight_ = true;
    }
  }
}

std::shared_ptr<Conn> Core::AnyMasterConn() {
  std::shared_ptr<Conn> fallback;
  for (const RedisUrl::Node& node : slots_.masters()) {
    auto it = conns_.find(NodeKey(node));
    if (it == conns_.end()) continue;
    if (it->second->state() == Conn::State::kUp) return it->second;
    if (!fallback && it->second->state() == Conn::State::kConnecting) {
      fallback = it->second;
    }
  }
  if (fallback) return fallback;
  if (!slots_.masters().empty()) return GetConn(slots_.masters().front());
  return GetConn(options_.url.nodes.front());
}

std::shared_ptr<Conn> Core::RouteConn(const Op& op) {
  if (mode_ != Mode::kCluster) return GetConn(options_.url.nodes.front());
  if (op.key_index > 0) {
    const int slot = RedisKeySlot(op.argv[op.key_index]);
    if (std::optional<RedisUrl::Node> owner = slots_.OwnerOf(slot)) {
      return GetConn(*owner);
    }
  }
  return AnyMasterConn();
}

void Core::Command(std::vector<std::string> argv, size_t key_index,
                   int64_t timeout_ms, RedisClient::Callback done) {
  commands_.fetch_add(1, std::memory_order_relaxed);
  if (timeout_ms <= 0) timeout_ms = options_.command_timeout_ms;
  auto op = std::make_shared<Op>();
  op->argv = std::move(argv);
  op->key_index = key_index;
  op->done = std::move(done);
  op->timeout_ms = timeout_ms;
  op->deadline = Clock::now() + milliseconds(timeout_ms);
  if (stopping()) {
    Invoke(op->done, CancelledError("redis client shut down"));
    return;
  }
  runtime_->Post([this, op] { Admit(op); });
}

void Core::Admit(const OpPtr& op) {
  if (stopping()) {
    Finish(op, CancelledError("redis client shut down"));
    return;
  }
  if (op->argv.empty() || op->key_index >= op->argv.size()) {
    Finish(op, InvalidArgumentError("redis command: empty, or key_index out "
                                    "of range"));
    return;
  }
  switch (breaker_.Admit(Clock::now())) {
    case CircuitBreaker::Decision::kReject:
      rejected_.fetch_add(1, std::memory_order_relaxed);
      failures_.fetch_add(1, std::memory_order_relaxed);
      last_failed_.store(true, std::memory_order_relaxed);
      op->finished = true;
      Invoke(op->done, UnavailableError("redis circuit open"));
      op->done = nullptr;
      return;
    case CircuitBreaker::Decision::kProbe:
      op->probe = true;
      break;
    case CircuitBreaker::Decision::kAllow:
      break;
  }
  UpdateBreakerFlag();
  Dispatch(op);
}

void Core::Dispatch(const OpPtr& op) {
  if (op->finished) return;
  if (stopping()) {
    Finish(op, CancelledError("redis client shut down"));
    return;
  }
  if (Clock::now() >= op->deadline) {
    Finish(op, DeadlineExceededError("redis command timed out after " +
                                     std::to_string(op->timeout_ms) + " ms"));
    return;
  }
  if (mode_ == Mode::kCluster && !topology_known_) RefreshTopology();
  std::shared_ptr<Conn> conn = RouteConn(*op);
  if (!conn) {
    Finish(op, UnavailableError("no redis node to send to"));
    return;
  }
  conn->Send(op, false);
}

void Core::Finish(const OpPtr& op, Result<RedisReply> result) {
  if (op->finished) return;
  op->finished = true;
  if (result.ok()) {
    breaker_.OnSuccess();
    last_failed_.store(false, std::memory_order_relaxed);
  } else {
    const StatusCode code = result.status().code();
    if (code == StatusCode::kDeadlineExceeded ||
        code == StatusCode::kUnavailable ||
        code == StatusCode::kUnauthenticated || code == StatusCode::kInternal) {
      failures_.fetch_add(1, std::memory_order_relaxed);
      last_failed_.store(true, std::memory_order_relaxed);
      if (code == StatusCode::kDeadlineExceeded) {
        timeouts_.fetch_add(1, std::memory_order_relaxed);
      }
      SetLastError(std::string(result.status().message()));
      if (breaker_.OnFailure(Clock::now(), op->probe)) {
        LogError("circuit breaker open after: " +
                 std::string(result.status().message()));
      }
    } else if (op->probe) {
      breaker_.OnSuccess();  // cancelled or invalid: says nothing of the server
    }
  }
  UpdateBreakerFlag();
  RedisClient::Callback done = std::move(op->done);
  op->done = nullptr;
  Invoke(done, std::move(result));
}

void Core::OnOpReply(Conn& conn, const OpPtr& op, RedisReply reply) {
  if (op->finished) return;
  if (!reply.is_error() || !op->follow) {
    Finish(op, std::move(reply));
    return;
  }
  const Redirect r = ParseRedirect(reply.str, conn.node().host);
  switch (r.kind) {
    case Redirect::Kind::kNone:
      Finish(op, std::move(reply));
      return;
    case Redirect::Kind::kTryAgain:
      if (Clock::now() + kRetryPause < op->deadline) {
        runtime_->PostAfter(kRetryPause, [this, op] { Dispatch(op); });
      } else {
        Finish(op, DeadlineExceededError("redis cluster busy: " + reply.str));
      }
      return;
    case Redirect::Kind::kMoved:
    case Redirect::Kind::kAsk:
      break;
  }
  const bool moved = r.kind == Redirect::Kind::kMoved;
  (moved ? moved_ : ask_).fetch_add(1, std::memory_order_relaxed);
  if (++op->redirects > kMaxRedirects) {
    Finish(op, UnavailableError(
                   "redis: too many redirections (last: " + reply.str + ")"));
    return;
  }
  if (moved) {
    if (mode_ != Mode::kCluster) {
      mode_ = Mode::kCluster;
      cluster_.store(true);
    }
    slots_.SetOwner(r.slot, r.node);
    RefreshTopology();
  }
  std::shared_ptr<Conn> target = GetConn(r.node);
  if (!target) {
    Finish(op, CancelledError("redis client shut down"));
    return;
  }
  target->Send(op, !moved);
}

void Core::RefreshTopology() {
  if (mode_ != Mode::kCluster || slots_in_flight_ || stopping()) return;
  std::shared_ptr<Conn> conn;
  for (auto& [key, c] : conns_) {
    if (c->state() == Conn::State::kUp) {
      conn = c;
      break;
    }
  }
  if (!conn) {
    const auto& seeds = options_.url.nodes;
    conn = GetConn(seeds[next_seed_++ % seeds.size()]);
  }
  if (!conn) return;
  slots_in_flight_ =
      conn->SendInternal({"CLUSTER", "SLOTS"}, internal_timeout_ms(),
                         [this, asked = conn->node()](Result<RedisReply> r) {
                           OnClusterSlots(asked, std::move(r));
                         });
}

void Core::OnClusterSlots(const RedisUrl::Node& asked,
                          Result<RedisReply> result) {
  slots_in_flight_ = false;
  if (!result.ok()) {
    RunTopologyWaiters();
    return;
  }
  if (result->is_error()) {
    // "ERR This instance has cluster support disabled" (or no CLUSTER
    // command at all) means standalone; an error that says nothing of the
    // server's mode leaves it to the next connection to ask again.
    const std::string& e = result->str;
    const bool says_nothing = e.starts_with("NOAUTH") ||
                              e.starts_with("LOADING") || e.starts_with("BUSY");
    if (mode_ == Mode::kUnknown && !says_nothing) {
      mode_ = Mode::kStandalone;
      topology_known_ = true;
    }
    RunTopologyWaiters();
    return;
  }
  if (Status st = slots_.Apply(*result, asked.host); !st.ok()) {
    LogError(std::string(st.message()));
    RunTopologyWaiters();
    return;
  }
  if (mode_ != Mode::kCluster) {
    mode_ = Mode::kCluster;
    cluster_.store(true);
    LogInfo("Redis Cluster with " + std::to_string(slots_.masters().size()) +
            " masters");
  }
  topology_known_ = true;
  refreshes_.fetch_add(1, std::memory_order_relaxed);
  masters_.store(slots_.masters().size());
  RunTopologyWaiters();
}

void Core::RunTopologyWaiters() {
  std::vector<std::function<void()>> waiters = std::move(topology_waiters_);
  topology_waiters_.clear();
  for (auto& w : waiters) w();
}

void Core::OnConnUp(const std::shared_ptr<Conn>& conn) {
  if (conn->sub()) return;
  up_conns_.fetch_add(1);
  if (conn->ever_up()) {
    reconnects_.fetch_add(1, std::memory_order_relaxed);
    LogInfo("reconnected to " + NodeKey(conn->node()));
    // Slots may have moved while the node was away.
    RefreshTopology();
  }
  breaker_.OnConnected(Clock::now());
  UpdateBreakerFlag();
}

void Core::OnConnDown(const std::shared_ptr<Conn>& conn, const Status& status,
                      bool was_up) {
  LogError(std::string(status.message()));
  if (stopping()) return;
  if (const auto& sub = conn->sub()) {
    // Any node will do for a subscription: try the next one.
    const std::vector<RedisUrl::Node>& nodes =
        mode_ == Mode::kCluster && !slots_.masters().empty()
            ? slots_.masters()
            : options_.url.nodes;
    conn->set_node(nodes[sub->next_node++ % nodes.size()]);
    conn->ScheduleReconnect();
    return;
  }
  if (was_up) up_conns_.fetch_sub(1);
  failures_.fetch_add(1, std::memory_order_relaxed);
  const RedisUrl::Node& node = conn->node();
  const bool cluster = mode_ == Mode::kCluster;
  if (cluster && slots_.IsMaster(node)) {
    // A master that cannot be reached may have failed over to a replica, and
    // nothing else would tell: no MOVED comes for slots that no node we
    // still talk to is asked about. Ask the cluster for its slots again (at
    // most once per interval, while the node stays away).
    const TimePoint now = Clock::now();
    if (now - failure_refresh_ >= kFailoverRefreshInterval) {
      failure_refresh_ = now;
      RefreshTopology();
    }
  }
  // A node that serves no slots (a failed-over master, a seed that is a
  // replica) costs no command: it does not count against the breaker.
  if ((!cluster || slots_.IsMaster(node)) &&
      breaker_.OnFailure(Clock::now(), false)) {
    LogError("circuit breaker open after: " + std::string(status.message()));
  }
  UpdateBreakerFlag();
  const bool seed =
      std::find(options_.url.nodes.begin(), options_.url.nodes.end(), node) !=
      options_.url.nodes.end();
  if (cluster && !seed && !slots_.IsMaster(node)) {
    conn->Close(status);
    conns_.erase(NodeKey(node));
    return;
  }
  conn->ScheduleReconnect();
}

void Core::OnPush(Subscription& sub, const RedisReply& reply) {
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() < 3 ||
      reply.elements[0].type != RedisReply::Type::kString) {
    return;
  }
  const std::string& kind = reply.elements[0].str;
  try {
    if (kind == "message" && sub.on_message) {
      sub.on_message(reply.elements[2].str);
    } else if (kind == "subscribe" && sub.on_subscribed) {
      sub.on_subscribed();
    }
  } catch (...) {
    // Callbacks must not unwind through Asio.
  }
}

void Core::CommandAllMasters(
    std::vector<std::string> argv,
    std::function<void(std::vector<Result<RedisReply>>)> done) {
  commands_.fetch_add(1, std::memory_order_relaxed);
  const int64_t timeout_ms = options_.command_timeout_ms;
  auto run = [this, args = std::move(argv), timeout_ms,
              cb = std::move(done)]() mutable {
    SendAllMasters(std::move(args), timeout_ms, std::move(cb));
  };
  if (stopping()) {
    run();
    return;
  }
  runtime_->Post(std::move(run));
}

void Core::SendAllMasters(
    std::vector<std::string> argv, int64_t timeout_ms,
    std::function<void(std::vector<Result<RedisReply>>)> done) {
  auto fail = [&done](Status st) {
    std::vector<Result<RedisReply>> out;
    out.emplace_back(std::move(st));
    if (done) done(std::move(out));
  };
  if (stopping()) {
    fail(CancelledError("redis client shut down"));
    return;
  }
  if (argv.empty()) {
    fail(InvalidArgumentError("empty redis command"));
    return;
  }
  if (!topology_known_ && slots_in_flight_) {
    // Wait for the first CLUSTER SLOTS: until then the masters are unknown.
    topology_waiters_.push_back([this, args = std::move(argv), timeout_ms,
                                 cb = std::move(done)]() mutable {
      SendAllMasters(std::move(args), timeout_ms, std::move(cb));
    });
    return;
  }
  std::vector<RedisUrl::Node> nodes;
  if (mode_ == Mode::kCluster) {
    nodes = slots_.masters();
  } else {
    nodes.push_back(options_.url.nodes.front());
  }
  if (nodes.empty()) {
    fail(UnavailableError("no known redis masters"));
    return;
  }
  struct Gather {
    std::vector<std::optional<Result<RedisReply>>> results;
    size_t left;
    std::function<void(std::vector<Result<RedisReply>>)> done;
  };
  auto gather = std::make_shared<Gather>();
  gather->results.resize(nodes.size());
  gather->left = nodes.size();
  gather->done = std::move(done);
  const TimePoint deadline = Clock::now() + milliseconds(timeout_ms);
  for (size_t i = 0; i < nodes.size(); ++i) {
    auto op = std::make_shared<Op>();
    op->argv = argv;
    op->timeout_ms = timeout_ms;
    op->deadline = deadline;
    op->follow = false;
    op->done = [gather, i](Result<RedisReply> r) {
      gather->results[i].emplace(std::move(r));
      if (--gather->left > 0) return;
      std::vector<Result<RedisReply>> out;
      for (auto& r2 : gather->results) out.push_back(std::move(*r2));
      if (gather->done) gather->done(std::move(out));
    };
    std::shared_ptr<Conn> conn = GetConn(nodes[i]);
    if (!conn) {
      Finish(op, CancelledError("redis client shut down"));
    } else {
      conn->Send(op, false);
    }
  }
}

struct Core::Scan {
  std::string pattern;
  size_t count = 100;
  std::function<void(std::vector<std::string>)> on_keys;
  std::function<void(Status)> done;
  std::vector<RedisUrl::Node> nodes;
  size_t index = 0;
  std::string cursor = "0";
};

void Core::ScanAll(std::string pattern, size_t count,
                   std::function<void(std::vector<std::string>)> on_keys,
                   std::function<void(Status)> done) {
  commands_.fetch_add(1, std::memory_order_relaxed);
  auto scan = std::make_shared<Scan>();
  scan->pattern = std::move(pattern);
  scan->count = count == 0 ? 100 : count;
  scan->on_keys = std::move(on_keys);
  scan->done = std::move(done);
  if (stopping()) {
    if (scan->done) scan->done(CancelledError("redis client shut down"));
    return;
  }
  runtime_->Post([this, scan] { StartScan(scan); });
}

void Core::StartScan(std::shared_ptr<Scan> scan) {
  if (stopping()) {
    if (scan->done) scan->done(CancelledError("redis client shut down"));
    return;
  }
  if (!topology_known_ && slots_in_flight_) {
    topology_waiters_.push_back([this, scan] { StartScan(scan); });
    return;
  }
  if (mode_ == Mode::kCluster) {
    scan->nodes = slots_.masters();
  } else {
    scan->nodes.push_back(options_.url.nodes.front());
  }
  if (scan->nodes.empty()) {
    if (scan->done) scan->done(UnavailableError("no known redis masters"));
    return;
  }
  ScanStep(scan);
}

void Core::ScanStep(std::shared_ptr<Scan> scan) {
  if (stopping()) {
    if (scan->done) scan->done(CancelledError("redis client shut down"));
    return;
  }
  if (scan->index == scan->nodes.size()) {
    if (scan->done) scan->done(Status());
    return;
  }
  auto op = std::make_shared<Op>();
  op->argv = {"SCAN",        scan->cursor, "MATCH",
              scan->pattern, "COUNT",      std::to_string(scan->count)};
  op->timeout_ms = options_.command_timeout_ms;
  op->deadline = Clock::now() + milliseconds(op->timeout_ms);
  op->follow = false;
  op->done = [this, scan](Result<RedisReply> r) {
    Status failed;
    if (!r.ok()) {
      failed = r.status();
    } else if (r->is_error()) {
      failed = UnavailableError("redis: " + r->str);
    } else if (r->type != RedisReply::Type::kArray || r->elements.size() != 2 ||
               r->elements[1].type != RedisReply::Type::kArray) {
      failed = DataLossError("redis: unexpected SCAN reply");
    }
    if (!failed.ok()) {
      if (scan->done) scan->done(failed);
      return;
    }
    std::vector<std::string> keys;
    keys.reserve(r->elements[1].elements.size());
    for (RedisReply& k : r->elements[1].elements) {
      keys.push_back(std::move(k.str));
    }
    if (!keys.empty() && scan->on_keys) scan->on_keys(std::move(keys));
    scan->cursor = r->elements[0].str;
    if (scan->cursor == "0") ++scan->index;
    // The next call from the loop, not from inside this reply's dispatch.
    runtime_->Post([this, scan] { ScanStep(scan); });
  };
  std::shared_ptr<Conn> conn = GetConn(scan->nodes[scan->index]);
  if (!conn) {
    Finish(op, CancelledError("redis client shut down"));
  } else {
    conn->Send(op, false);
  }
}

void Core::Subscribe(std::string channel,
                     RedisClient::MessageHandler on_message,
                     std::function<void()> on_subscribed) {
  auto sub = std::make_shared<Subscription>();
  sub->channel = std::move(channel);
  sub->on_message = std::move(on_message);
  sub->on_subscribed = std::move(on_subscribed);
  if (stopping()) return;
  runtime_->Post([this, sub] {
    if (stopping()) return;
    auto conn = runtime_->MakeConn(this, options_.url.nodes.front(), sub);
    sub_conns_.push_back(conn);
    conn->Connect();
  });
}

RedisHealth Core::Health() const {
  RedisHealth h;
  h.url = redacted_;
  h.connected = up_conns_.load() > 0;
  h.cluster = cluster_.load();
  h.masters = h.cluster ? masters_.load() : 1;
  h.breaker_open = breaker_open_.load();
  h.last_failed = last_failed_.load();
  h.commands = commands_.load();
  h.failures = failures_.load();
  h.timeouts = timeouts_.load();
  h.rejected = rejected_.load();
  h.reconnects = reconnects_.load();
  h.moved = moved_.load();
  h.ask = ask_.load();
  h.topology_refreshes = refreshes_.load();
  std::lock_guard<std::mutex> lock(error_mu_);
  h.last_error = last_error_;
  return h;
}

void Core::SetLastError(const std::string& message) {
  std::lock_guard<std::mutex> lock(error_mu_);
  last_error_ = message;
}

void Core::LogError(const std::string& message) {
  SetLastError(message);
  error_log_.Write("redis " + redacted_ + ": " + message);
}

void Core::LogInfo(const std::string& message) {
  info_log_.Write("redis " + redacted_ + ": " + message);
}

void Core::CloseAll() {
  const Status cancelled = CancelledError("redis client shut down");
  // Close may run callbacks that look at the maps: move them out first.
  auto conns = std::move(conns_);
  conns_.clear();
  auto subs = std::move(sub_conns_);
  sub_conns_.clear();
  for (auto& [key, conn] : conns) conn->Close(cancelled);
  for (auto& conn : subs) conn->Close(cancelled);
  RunTopologyWaiters();
  up_conns_.store(0);
}

void Core::Shutdown() {
  if (stopping_.exchange(true)) return;
  runtime_->Post([this] { CloseAll(); });
  runtime_->Stop();
}

}  // namespace llmcache::net::redis_internal
