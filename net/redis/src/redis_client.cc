// RedisClient on Asio: the connections (AsioConn), the I/O thread
// (AsioRuntime), the public handle, Create and CommandSync. The only unit of
// llmcache::redis that instantiates Asio templates; the logic above the
// sockets is Core's (redis_core.cc).
//
// A Link is one connection attempt of an AsioConn: its socket, RESP reader,
// write buffers and the FIFO of replies it waits for. Handlers hold the Link
// they were started for and do nothing once it is no longer their
// connection's current one.

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <deque>
#include <future>
#include <optional>
#include <thread>
#include <utility>

#include "llmcache/net/redis.h"
#include "redis_core.h"
#include "redis_protocol.h"
#include "redis_topology.h"

namespace llmcache::net {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using redis_internal::AppendCommand;
using redis_internal::Clock;
using redis_internal::Conn;
using redis_internal::Core;
using redis_internal::InternalCallback;
using redis_internal::NodeKey;
using redis_internal::OpPtr;
using redis_internal::ReplyReader;
using redis_internal::Subscription;
using redis_internal::TimePoint;
using std::chrono::milliseconds;

// The client whose I/O thread this is (CommandSync refuses to block it).
thread_local const RedisClient* t_io_client = nullptr;

constexpr int64_t kBackoffFirstMs = 50;
constexpr int64_t kBackoffMaxMs = 2'000;

// A reply the connection waits for. `done` entries keep their place in the
// FIFO: their reply, when it comes, is dropped.
struct Pending {
  OpPtr op;                   // a user command, or
  InternalCallback internal;  // one of ours (none: reply ignored)
  TimePoint deadline;
  TimePoint stuck_at;  // no reply by then: the connection is closed
  bool done = false;
};

TimePoint StuckAt(TimePoint sent, int64_t timeout_ms) {
  return sent + milliseconds(std::max<int64_t>(5 * timeout_ms, 1'000));
}

struct Link {
  explicit Link(asio::io_context& ioc)
      : resolver(ioc), timer(ioc), connect_timer(ioc) {}
  tcp::socket& lowest() { return tls ? tls->next_layer() : *plain; }
  bool has_socket() const { return tls.has_value() || plain.has_value(); }

  tcp::resolver resolver;
  std::optional<tcp::socket> plain;
  std::optional<ssl::stream<tcp::socket>> tls;
  asio::steady_timer timer;  // command deadlines
  TimePoint timer_at = TimePoint::max();
  asio::steady_timer connect_timer;
  ReplyReader reader;
  std::array<char, 16 * 1024> rbuf{};
  std::string out;      // queued while a write is in flight
  std::string writing;  // in flight
  bool is_writing = false;
  bool transport_up = false;  // TCP (and TLS) established
  int handshake_left = 0;     // AUTH / SELECT replies awaited
  std::deque<Pending> pending;
};

class AsioRuntime;

class AsioConn final : public Conn,
                       public std::enable_shared_from_this<AsioConn> {
 public:
  AsioConn(Core* core, AsioRuntime& runtime, RedisUrl::Node node,
           std::shared_ptr<Subscription> sub)
      : Conn(core, std::move(node), std::move(sub)), runtime_(runtime) {}

  void Connect() override;
  void Send(const OpPtr& op, bool asking) override;
  bool SendInternal(const std::vector<std::string>& argv, int64_t timeout_ms,
                    InternalCallback done) override;
  void Close(const Status& status) override;
  void ScheduleReconnect() override;

 private:
  void Fail(const Status& status);
  void Push(Pending p);
  void ArmTimer(TimePoint at);
  void OnTimer(const std::shared_ptr<Link>& link);
  void OnTransportUp(const std::shared_ptr<Link>& link);
  void OnHandshakeReply(const std::shared_ptr<Link>& link, bool auth,
                        Result<RedisReply> r);
  void OnUp(const std::shared_ptr<Link>& link);
  void StartRead(const std::shared_ptr<Link>& link);
  void OnRead(const std::shared_ptr<Link>& link,
              const boost::system::error_code& ec, size_t n);
  void HandleReply(RedisReply reply);
  void Flush(const std::shared_ptr<Link>& link);
  std::shared_ptr<Link> TearDown();

  AsioRuntime& runtime_;
  std::shared_ptr<Link> link_;
  int64_t backoff_ms_ = 0;
  std::optional<asio::steady_timer> backoff_timer_;
};

class AsioRuntime final : public redis_internal::Runtime {
 public:
  AsioRuntime(std::unique_ptr<ssl::context> ctx, const RedisClient* owner,
              int64_t spin_us)
      : ctx_(std::move(ctx)),
        owner_(owner),
        spin_us_(spin_us),
        work_(asio::make_work_guard(ioc_)) {}

  void Start(std::shared_ptr<Core> core) override {
    thread_ = std::thread([this, core = std::move(core)] {
      t_io_client = owner_;
      for (;;) {
        try {
          Run();
          return;
        } catch (const std::exception& e) {
          core->LogError(std::string("unexpected exception: ") + e.what());
        } catch (...) {
          core->LogError("unexpected exception");
        }
      }
    });
  }
  // The I/O loop. After any work it keeps polling (without blocking) for
  // spin_us: a reply or the next command arriving within that window is
  // handled without a thread wake-up, which on a request-reply round trip
  // of a few tens of microseconds is a large part of the latency. Then it
  // blocks as usual; an idle client costs no CPU.
  void Run() {
    const auto spin = std::chrono::microseconds(spin_us_);
    auto last = std::chrono::steady_clock::now();
    while (!ioc_.stopped()) {
      if (ioc_.poll_one() > 0) {
        last = std::chrono::steady_clock::now();
        continue;
      }
      if (ioc_.stopped()) break;
      if (std::chrono::steady_clock::now() - last < spin) {
        std::this_thread::yield();
        continue;
      }
      if (ioc_.run_one() == 0) break;
      last = std::chrono::steady_clock::now();
    }
  }

  void Post(std::function<void()> fn) override {
    asio::post(ioc_, std::move(fn));
  }
  void PostAfter(milliseconds delay, std::function<void()> fn) override {
    auto timer = std::make_shared<asio::steady_timer>(ioc_, delay);
    timer->async_wait([timer, fn = std::move(fn)](
                          const boost::system::error_code&) { fn(); });
  }
  std::shared_ptr<Conn> MakeConn(Core* core, RedisUrl::Node node,
                                 std::shared_ptr<Subscription> sub) override {
    return std::make_shared<AsioConn>(core, *this, std::move(node),
                                      std::move(sub));
  }
  bool OnIoThread() const override { return t_io_client == owner_; }
  void Stop() override {
    // The loop ends once the closes posted before have drained.
    work_.reset();
    if (OnIoThread()) {
      // Called from a callback: the thread cannot join itself. It ends by
      // itself, holding the Core (and so this runtime) until then.
      thread_.detach();
    } else if (thread_.joinable()) {
      thread_.join();
    }
  }

  asio::io_context& ioc() { return ioc_; }
  ssl::context* ssl_context() { return ctx_.get(); }

 private:
  const std::unique_ptr<ssl::context> ctx_;
  const RedisClient* const owner_;
  const int64_t spin_us_;
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
};

// ------------------------------------------------------------ AsioConn

void AsioConn::Connect() {
  if (core_->stopping() || state_ == State::kClosed) return;
  state_ = State::kConnecting;
  auto link = std::make_shared<Link>(runtime_.ioc());
  link_ = link;
  auto self = shared_from_this();
  const RedisOptions& opt = core_->options();

  // AUTH and SELECT go first in the pipeline, before any command.
  const int64_t hs_timeout = core_->internal_timeout_ms();
  if (!opt.url.password.empty()) {
    std::vector<std::string> auth{"AUTH"};
    if (!opt.url.user.empty()) auth.push_back(opt.url.user);
    auth.push_back(opt.url.password);
    ++link->handshake_left;
    SendInternal(auth, hs_timeout, [self, link](Result<RedisReply> r) {
      self->OnHandshakeReply(link, true, std::move(r));
    });
  }
  if (opt.url.db != 0) {
    ++link->handshake_left;
    SendInternal({"SELECT", std::to_string(opt.url.db)}, hs_timeout,
                 [self, link](Result<RedisReply> r) {
                   self->OnHandshakeReply(link, false, std::move(r));
                 });
  }
  if (!sub_) core_->OnConnecting(self);

  link->connect_timer.expires_after(milliseconds(opt.connect_timeout_ms));
  link->connect_timer.async_wait([self,
                                  link](const boost::system::error_code& ec) {
    if (ec || self->link_ != link || self->state_ != State::kConnecting) {
      return;
    }
    self->Fail(UnavailableError(
        "connecting to redis " + NodeKey(self->node_) + " timed out after " +
        std::to_string(self->core_->options().connect_timeout_ms) + " ms"));
  });

  link->resolver.async_resolve(
      node_.host, std::to_string(node_.port),
      [self, link](const boost::system::error_code& ec,
                   tcp::resolver::results_type results) {
        if (self->link_ != link) return;
        if (ec) {
          self->Fail(UnavailableError("cannot resolve redis host " +
                                      self->node_.host + ": " + ec.message()));
          return;
        }
        try {
          if (self->runtime_.ssl_context() != nullptr) {
            link->tls.emplace(self->runtime_.ioc(),
                              *self->runtime_.ssl_context());
          } else {
            link->plain.emplace(self->runtime_.ioc());
          }
        } catch (const std::exception& e) {
          self->Fail(
              InternalError(std::string("cannot create socket: ") + e.what()));
          return;
        }
        asio::async_connect(
            link->lowest(), results,
            [self, link](const boost::system::error_code& cec,
                         const tcp::endpoint&) {
              if (self->link_ != link) return;
              if (cec) {
                self->Fail(UnavailableError("cannot connect to redis " +
                                            NodeKey(self->node_) + ": " +
                                            cec.message()));
                return;
              }
              self->OnTransportUp(link);
            });
      });
}

void AsioConn::OnTransportUp(const std::shared_ptr<Link>& link) {
  boost::system::error_code ignored;
  link->lowest().set_option(tcp::no_delay(true), ignored);
  link->lowest().set_option(asio::socket_base::keep_alive(true), ignored);
  if (!link->tls) {
    link->transport_up = true;
    StartRead(link);
    Flush(link);
    if (link->handshake_left == 0) OnUp(link);
    return;
  }
  SSL* handle = link->tls->native_handle();
  boost::system::error_code addr_ec;
  asio::ip::make_address(node_.host, addr_ec);
  // SNI for names only (RFC 6066 forbids IP literals); SSL_ctrl rather than
  // the SSL_set_tlsext_host_name macro and its C cast.
  if (addr_ec &&
      SSL_ctrl(handle, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(node_.host.c_str())) != 1) {
    Fail(InternalError("cannot set TLS SNI"));
    return;
  }
  link->tls->set_verify_mode(ssl::verify_peer);
  // The chain alone is not enough: the certificate must name this host (or
  // IP address).
  link->tls->set_verify_callback(ssl::host_name_verification(node_.host));
  auto self = shared_from_this();
  link->tls->async_handshake(
      ssl::stream_base::client,
      [self, link, handle](const boost::system::error_code& ec) {
        if (self->link_ != link) return;
        if (ec) {
          const long verify = SSL_get_verify_result(handle);
          if (verify != X509_V_OK) {
            self->Fail(UnauthenticatedError(
                "TLS verification of redis " + NodeKey(self->node_) +
                " failed: " + X509_verify_cert_error_string(verify)));
          } else if (ec.category() == asio::error::get_ssl_category()) {
            self->Fail(UnauthenticatedError("TLS handshake with redis " +
                                            NodeKey(self->node_) +
                                            " failed: " + ec.message()));
          } else {
            self->Fail(UnavailableError("TLS handshake with redis " +
                                        NodeKey(self->node_) +
                                        " failed: " + ec.message()));
          }
          return;
        }
        link->transport_up = true;
        self->StartRead(link);
        self->Flush(link);
        if (link->handshake_left == 0) self->OnUp(link);
      });
}

void AsioConn::OnHandshakeReply(const std::shared_ptr<Link>& link, bool auth,
                                Result<RedisReply> r) {
  if (link_ != link) return;
  if (!r.ok()) {
    Fail(r.status());
    return;
  }
  if (r->is_error()) {
    // The server's error line (WRONGPASS / NOAUTH ...) never holds the
    // password.
    if (auth) {
      // The server's line, without the arguments some errors quote (e.g.
      // "unknown command 'AUTH', with args beginning with: '<password>'").
      std::string why = r->str;
      if (const size_t args = why.find(", with args");
          args != std::string::npos) {
        why.resize(args);
      }
      Fail(UnauthenticatedError("redis authentication to " + NodeKey(node_) +
                                " failed: " + why));
    } else {
      Fail(UnavailableError("redis SELECT on " + NodeKey(node_) +
                            " failed: " + r->str));
    }
    return;
  }
  if (--link->handshake_left == 0 && link->transport_up) OnUp(link);
}

void AsioConn::OnUp(const std::shared_ptr<Link>& link) {
  link->connect_timer.cancel();
  state_ = State::kUp;
  backoff_ms_ = 0;
  last_error_ = Status();
  core_->OnConnUp(shared_from_this());
  ever_up_ = true;
  if (sub_ && link_ == link) {
    std::string cmd;
    if (AppendCommand({"SUBSCRIBE", sub_->channel}, cmd).ok()) {
      link->out += cmd;
      Flush(link);
    }
  }
}

void AsioConn::Push(Pending p) {
  const TimePoint deadline = p.done ? p.stuck_at : p.deadline;
  link_->pending.push_back(std::move(p));
  ArmTimer(deadline);
  Flush(link_);
}

void AsioConn::Send(const OpPtr& op, bool asking) {
  if (state_ != State::kConnecting && state_ != State::kUp) {
    core_->Finish(op, FailFastStatus());
    return;
  }
  const TimePoint now = Clock::now();
  if (asking) {
    if (!AppendCommand({"ASKING"}, link_->out).ok()) return;
    Pending p;
    p.deadline = op->deadline;
    p.stuck_at = StuckAt(now, op->timeout_ms);
    p.done = true;  // its +OK is dropped
    link_->pending.push_back(std::move(p));
  }
  Status st = AppendCommand(op->argv, link_->out);
  if (!st.ok()) {
    core_->Finish(op, st);
    return;
  }
  Pending p;
  p.op = op;
  p.deadline = op->deadline;
  p.stuck_at = StuckAt(now, op->timeout_ms);
  Push(std::move(p));
}

bool AsioConn::SendInternal(const std::vector<std::string>& argv,
                            int64_t timeout_ms, InternalCallback done) {
  if (state_ != State::kConnecting && state_ != State::kUp) return false;
  if (!AppendCommand(argv, link_->out).ok()) return false;
  const TimePoint now = Clock::now();
  Pending p;
  p.internal = std::move(done);
  p.deadline = now + milliseconds(timeout_ms);
  p.stuck_at = StuckAt(now, timeout_ms);
  Push(std::move(p));
  return true;
}

void AsioConn::ArmTimer(TimePoint at) {
  const std::shared_ptr<Link>& link = link_;
  if (at >= link->timer_at) return;
  link->timer_at = at;
  link->timer.expires_at(at);
  link->timer.async_wait(
      [self = shared_from_this(), link](const boost::system::error_code& ec) {
        if (ec == asio::error::operation_aborted || self->link_ != link) {
          return;
        }
        link->timer_at = TimePoint::max();
        self->OnTimer(link);
      });
}

void AsioConn::OnTimer(const std::shared_ptr<Link>& link) {
  const TimePoint now = Clock::now();
  std::vector<Pending> expired;
  for (Pending& p : link->pending) {
    if (!p.done && p.deadline <= now) {
      p.done = true;
      expired.push_back(p);
    }
  }
  const bool stuck =
      !link->pending.empty() && link->pending.front().stuck_at <= now;
  for (Pending& p : expired) {
    if (p.op) {
      core_->Finish(p.op, DeadlineExceededError(
                              "redis command timed out after " +
                              std::to_string(p.op->timeout_ms) + " ms"));
    } else if (p.internal) {
      p.internal(DeadlineExceededError("redis timed out"));
    }
    if (link_ != link) return;
  }
  if (stuck) {
    Fail(UnavailableError("redis " + NodeKey(node_) +
                          " stopped answering; reconnecting"));
    return;
  }
  TimePoint next = TimePoint::max();
  if (!link->pending.empty()) next = link->pending.front().stuck_at;
  for (const Pending& p : link->pending) {
    if (!p.done) next = std::min(next, p.deadline);
  }
  if (next != TimePoint::max()) ArmTimer(next);
}

void AsioConn::StartRead(const std::shared_ptr<Link>& link) {
  auto handler = [self = shared_from_this(), link](
                     const boost::system::error_code& ec, size_t n) {
    self->OnRead(link, ec, n);
  };
  if (link->tls) {
    link->tls->async_read_some(asio::buffer(link->rbuf), std::move(handler));
  } else {
    link->plain->async_read_some(asio::buffer(link->rbuf), std::move(handler));
  }
}

void AsioConn::OnRead(const std::shared_ptr<Link>& link,
                      const boost::system::error_code& ec, size_t n) {
  if (link_ != link) return;
  if (ec) {
    Fail(UnavailableError("redis " + NodeKey(node_) + ": " +
                          (ec == asio::error::eof
                               ? std::string("connection closed by the server")
                               : "read failed: " + ec.message())));
    return;
  }
  if (Status st = link->reader.Feed(std::string_view(link->rbuf.data(), n));
      !st.ok()) {
    Fail(UnavailableError(std::string(st.message())));
    return;
  }
  for (;;) {
    Result<std::optional<RedisReply>> next = link->reader.Next();
    if (!next.ok()) {
      Fail(UnavailableError("redis " + NodeKey(node_) + ": " +
                            std::string(next.status().message())));
      return;
    }
    if (!next->has_value()) break;
    HandleReply(std::move(**next));
    if (link_ != link) return;
  }
  StartRead(link);
}

void AsioConn::HandleReply(RedisReply reply) {
  std::deque<Pending>& pending = link_->pending;
  if (pending.empty()) {
    if (sub_) {
      core_->OnPush(*sub_, reply);
    } else {
      Fail(InternalError("redis " + NodeKey(node_) + ": unexpected reply"));
    }
    return;
  }
  Pending p = std::move(pending.front());
  pending.pop_front();
  if (p.done) return;
  if (p.op) {
    // NOAUTH on a command: the server wants a password we do not have (or
    // it changed); the connection is useless until reconfigured.
    if (reply.is_error() && reply.str.starts_with("NOAUTH")) {
      const Status st = UnauthenticatedError(
          "redis " + NodeKey(node_) + " requires authentication: " + reply.str);
      core_->Finish(p.op, st);
      Fail(st);
      return;
    }
    core_->OnOpReply(*this, p.op, std::move(reply));
  } else if (p.internal) {
    p.internal(std::move(reply));
  }
}

void AsioConn::Flush(const std::shared_ptr<Link>& link) {
  if (!link->transport_up || link->is_writing || link->out.empty()) return;
  link->is_writing = true;
  link->writing.clear();
  std::swap(link->out, link->writing);
  auto handler = [self = shared_from_this(), link](
                     const boost::system::error_code& ec, size_t) {
    if (self->link_ != link) return;
    link->is_writing = false;
    if (ec) {
      self->Fail(UnavailableError("redis " + NodeKey(self->node_) +
                                  ": write failed: " + ec.message()));
      return;
    }
    self->Flush(link);
  };
  if (link->tls) {
    asio::async_write(*link->tls, asio::buffer(link->writing),
                      std::move(handler));
  } else {
    asio::async_write(*link->plain, asio::buffer(link->writing),
                      std::move(handler));
  }
}

std::shared_ptr<Link> AsioConn::TearDown() {
  std::shared_ptr<Link> link = std::move(link_);
  link_ = nullptr;
  if (backoff_timer_) backoff_timer_->cancel();
  if (!link) return nullptr;
  boost::system::error_code ignored;
  link->resolver.cancel();
  link->timer.cancel();
  link->connect_timer.cancel();
  if (link->has_socket()) link->lowest().close(ignored);
  return link;
}

void AsioConn::Fail(const Status& status) {
  std::shared_ptr<Link> link = TearDown();
  if (!link) return;
  const bool was_up = state_ == State::kUp;
  state_ = State::kBackoff;
  last_error_ = status;
  std::deque<Pending> pending = std::move(link->pending);
  auto self = shared_from_this();
  for (Pending& p : pending) {
    if (p.done) continue;
    if (p.op) {
      core_->Finish(p.op, status);
    } else if (p.internal) {
      p.internal(status);
    }
  }
  core_->OnConnDown(self, status, was_up);
}

void AsioConn::Close(const Status& status) {
  std::shared_ptr<Link> link = TearDown();
  state_ = State::kClosed;
  if (!link) return;
  std::deque<Pending> pending = std::move(link->pending);
  for (Pending& p : pending) {
    if (p.done) continue;
    if (p.op) {
      core_->Finish(p.op, status);
    } else if (p.internal) {
      p.internal(status);
    }
  }
}

void AsioConn::ScheduleReconnect() {
  if (core_->stopping() || state_ == State::kClosed) return;
  backoff_ms_ = backoff_ms_ == 0 ? kBackoffFirstMs
                                 : std::min(backoff_ms_ * 2, kBackoffMaxMs);
  if (!backoff_timer_) backoff_timer_.emplace(runtime_.ioc());
  backoff_timer_->expires_after(milliseconds(backoff_ms_));
  backoff_timer_->async_wait(
      [self = shared_from_this()](const boost::system::error_code& ec) {
        if (ec || self->core_->stopping() || self->state_ != State::kBackoff) {
          return;
        }
        self->Connect();
      });
}

class RedisClientImpl final : public RedisClient {
 public:
  ~RedisClientImpl() override {
    if (core_) core_->Shutdown();
  }
  Status Init(RedisOptions options, std::unique_ptr<ssl::context> ctx) {
    try {
      const int64_t spin_us = options.spin_us;
      core_ = std::make_shared<Core>(
          std::move(options),
          std::make_unique<AsioRuntime>(std::move(ctx), this, spin_us));
      core_->Start();
    } catch (const std::exception& e) {
      core_.reset();
      return InternalError(std::string("cannot start the redis client: ") +
                           e.what());
    }
    return Status();
  }

  void Command(std::vector<std::string> argv, size_t key_index,
               Callback done) override {
    core_->Command(std::move(argv), key_index, 0, std::move(done));
  }
  void Command(std::vector<std::string> argv, size_t key_index,
               int64_t timeout_ms, Callback done) override {
    core_->Command(std::move(argv), key_index, timeout_ms, std::move(done));
  }
  void CommandAllMasters(
      std::vector<std::string> argv,
      std::function<void(std::vector<Result<RedisReply>>)> done) override {
    core_->CommandAllMasters(std::move(argv), std::move(done));
  }
  void Subscribe(std::string channel, MessageHandler on_message,
                 std::function<void()> on_subscribed) override {
    core_->Subscribe(std::move(channel), std::move(on_message),
                     std::move(on_subscribed));
  }
  void ScanAll(std::string pattern, size_t count,
               std::function<void(std::vector<std::string>)> on_keys,
               std::function<void(Status)> done) override {
    core_->ScanAll(std::move(pattern), count, std::move(on_keys),
                   std::move(done));
  }
  RedisHealth Health() const override { return core_->Health(); }
  void Shutdown() override { core_->Shutdown(); }

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace

Result<std::shared_ptr<RedisClient>> RedisClient::Create(RedisOptions options) {
  if (options.url.nodes.empty()) {
    return InvalidArgumentError("redis options: no node in the URL");
  }
  if (options.command_timeout_ms <= 0 || options.connect_timeout_ms <= 0) {
    return InvalidArgumentError("redis options: timeouts must be positive");
  }
  if (options.url.nodes.size() > 1 && options.url.db != 0) {
    return InvalidArgumentError("redis options: db must be 0 in a cluster");
  }
  std::unique_ptr<ssl::context> ctx;
  if (options.url.tls) {
    try {
      ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
      ctx->set_options(ssl::context::default_workarounds |
                       ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                       ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
      boost::system::error_code ec;
      ctx->set_default_verify_paths(ec);
      if (!options.tls_ca_file.empty()) {
        ctx->load_verify_file(options.tls_ca_file, ec);
        if (ec) {
          return InvalidArgumentError("cannot load CA file " +
                                      options.tls_ca_file + ": " +
                                      ec.message());
        }
      }
      ctx->set_verify_mode(ssl::verify_peer);
    } catch (const std::exception& e) {
      return InternalError(std::string("cannot create TLS context: ") +
                           e.what());
    }
  }
  auto client = std::make_shared<RedisClientImpl>();
  LLMCACHE_RETURN_IF_ERROR(client->Init(std::move(options), std::move(ctx)));
  return std::shared_ptr<RedisClient>(std::move(client));
}

Result<RedisReply> RedisClient::CommandSync(std::vector<std::string> argv,
                                            size_t key_index,
                                            int64_t timeout_ms) {
  if (t_io_client == this) {
    return FailedPreconditionError(
        "RedisClient::CommandSync called on the client's I/O thread");
  }
  auto promise = std::make_shared<std::promise<Result<RedisReply>>>();
  std::future<Result<RedisReply>> future = promise->get_future();
  Command(
      std::move(argv), key_index, timeout_ms,
      [promise](Result<RedisReply> r) { promise->set_value(std::move(r)); });
  // The I/O thread ends every command by its deadline; the margin only
  // guards against a stalled thread.
  const milliseconds wait(timeout_ms > 0 ? timeout_ms + 5'000 : 65'000);
  if (future.wait_for(wait) != std::future_status::ready) {
    return DeadlineExceededError("redis command: no answer from the client");
  }
  return future.get();
}

}  // namespace llmcache::net
