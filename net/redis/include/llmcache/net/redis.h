// RedisClient: an asynchronous Redis and Redis Cluster client for the shared
// tier, with its I/O on Asio (plain TCP, or TLS with OpenSSL for rediss://)
// and hiredis used only as a protocol library: its reply reader parses RESP
// and its formatter encodes commands (binary safe). Debian's hiredis 0.14 has
// no TLS, no cluster support and no Asio adapter; this gives all three, with
// pipelining and the completion style of the rest of llmcache::net.
//
//   auto redis = RedisClient::Create(options);          // never blocks
//   (*redis)->Command({"GET", key}, 1, [](Result<RedisReply> r) { ... });
//
//   - One I/O thread per client; Command may be called from any thread and
//     never blocks; `done` runs once, on the I/O thread (keep it short).
//   - Pipelining: commands issued while a write is in flight are written
//     together; replies are matched in order.
//   - Every command has a deadline (RedisOptions::command_timeout_ms from
//     the call): after it, `done` gets kDeadlineExceeded and the late reply is
//     dropped. A connection that stops answering is closed and re-opened.
//   - Fail fast: while the node of a command is disconnected (between
//     reconnection attempts, 50 ms doubling to 2 s) the command fails at
//     once with kUnavailable (kUnauthenticated when the last attempt failed
//     to authenticate or to verify the server's certificate); one issued
//     while its connection is being opened waits for it, within its
//     deadline. When no connection can be made, or after
//     `breaker_failures` consecutive failures, a circuit breaker opens and
//     commands fail at once with kUnavailable; it half-opens after
//     `breaker_open_ms` (doubling up to `breaker_max_open_ms`) and closes on
//     the first success. The client reconnects by itself.
//   - Cluster: several seed nodes in the URL, or a server that answers
//     CLUSTER SLOTS, mean Redis Cluster. Commands go to the master of their
//     key's slot (CRC16 with hash tags); -MOVED updates the slot and
//     refreshes the topology in the background, -ASK sends ASKING + the
//     command to the named node once; -TRYAGAIN and -CLUSTERDOWN are retried
//     after a short pause. At most 5 redirections per command.
//   - Security: the password is sent with AUTH and never logged (log lines
//     and Health carry the redacted URL); TLS verifies the peer and the
//     host name, as for the upstream.
//
// Thread safety: all methods may be called concurrently.

#ifndef LLMCACHE_NET_REDIS_H_
#define LLMCACHE_NET_REDIS_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/status.h"

namespace llmcache::net {

// A parsed Redis URL:
//   redis://[[user]:password@]host:port[,host:port...][/db]
//   rediss://...   (TLS)
// Several host:port seeds mean Redis Cluster (db must then be 0). The user
// and password are percent-decoded. IPv6 hosts in brackets: [::1]:6379.
struct RedisUrl {
  struct Node {
    std::string host;
    uint16_t port = 6379;
    friend bool operator==(const Node&, const Node&) = default;
  };
  bool tls = false;
  std::string user;      // empty: AUTH with the password only
  std::string password;  // empty: no AUTH. Never logged.
  int db = 0;
  std::vector<Node> nodes;

  static Result<RedisUrl> Parse(std::string_view url);
  // The URL with the password replaced by "***" (safe to log).
  std::string Redacted() const;
};

struct RedisReply {
  enum class Type : uint8_t {
    kNil,
    kString,
    kStatus,
    kError,
    kInteger,
    kArray
  };
  Type type = Type::kNil;
  std::string str;      // kString, kStatus, kError (the error line)
  int64_t integer = 0;  // kInteger
  std::vector<RedisReply> elements;  // kArray

  bool is_nil() const { return type == Type::kNil; }
  bool is_error() const { return type == Type::kError; }
};

struct RedisOptions {
  RedisUrl url;
  // Deadline of each command, from the call to its reply.
  int64_t command_timeout_ms = 10;
  int64_t connect_timeout_ms = 1000;
  // rediss://: a PEM file of extra trusted CAs, besides the system's.
  std::string tls_ca_file;
  // Circuit breaker (see above).
  int breaker_failures = 5;
  int64_t breaker_open_ms = 250;
  int64_t breaker_max_open_ms = 5'000;
  // Failures are logged at most once per this interval.
  int64_t error_log_interval_ms = 10'000;
  // After any work the I/O thread keeps polling, without blocking, for this
  // many microseconds before it sleeps: a reply (or the next command) that
  // comes within the window needs no thread wake-up. It buys round-trip
  // latency with CPU while busy; an idle client sleeps. 0: never spin.
  int64_t spin_us = 100;
  // Where log lines go; null = stderr. Never receives passwords.
  std::function<void(std::string_view line)> log;
  // Where lines that report no fault go (the cluster's layout, a
  // connection made again); null = `log`.
  std::function<void(std::string_view line)> info_log;
};

// Lines written at most once per interval to a sink (stderr when it is
// null); the next line written says how many were suppressed meanwhile.
// Thread-safe; never throws.
class RateLimitedLog {
 public:
  using Sink = std::function<void(std::string_view line)>;
  RateLimitedLog(Sink sink, int64_t interval_ms)
      : sink_(std::move(sink)), interval_ms_(interval_ms) {}
  void Write(std::string line);

 private:
  const Sink sink_;
  const int64_t interval_ms_;
  std::mutex mu_;
  bool written_ = false;
  std::chrono::steady_clock::time_point last_;
  uint64_t suppressed_ = 0;
};

struct RedisHealth {
  std::string url;         // redacted
  bool connected = false;  // at least one live connection
  bool cluster = false;
  size_t masters = 0;  // cluster masters known (1 when not a cluster)
  bool breaker_open = false;
  // The last command to finish failed (transport error, timeout or breaker
  // rejection); the next one to succeed clears it.
  bool last_failed = false;
  uint64_t commands = 0;  // Command calls
  uint64_t failures = 0;  // transport errors, timeouts, breaker rejections
  uint64_t timeouts = 0;
  uint64_t rejected = 0;  // failed at once by the open breaker
  uint64_t reconnects = 0;
  uint64_t moved = 0, ask = 0;
  uint64_t topology_refreshes = 0;
  std::string last_error;  // never holds the password
};

class RedisClient {
 public:
  using Callback = std::function<void(Result<RedisReply>)>;
  using MessageHandler = std::function<void(std::string_view message)>;

  // Starts the I/O thread and begins connecting in the background: never
  // blocks and never fails for an unreachable server (commands then fail
  // fast until it is reachable). kInvalidArgument for bad options.
  static Result<std::shared_ptr<RedisClient>> Create(RedisOptions options);
  virtual ~RedisClient() = default;

  // Sends one command. `key_index` is the index in `argv` of the key that
  // routes it in a cluster (0: no key, any master). `done` gets the reply —
  // an error reply is a reply of type kError, except MOVED/ASK/TRYAGAIN,
  // which are followed — or kDeadlineExceeded / kUnavailable / kCancelled.
  virtual void Command(std::vector<std::string> argv, size_t key_index,
                       Callback done) = 0;
  // The same with a deadline of its own: `timeout_ms` from the call (0: the
  // options' command timeout).
  virtual void Command(std::vector<std::string> argv, size_t key_index,
                       int64_t timeout_ms, Callback done) = 0;

  // Sends `argv` to every master (once each; the one server when not a
  // cluster). `done` gets one result per master.
  virtual void CommandAllMasters(
      std::vector<std::string> argv,
      std::function<void(std::vector<Result<RedisReply>>)> done) = 0;

  // Subscribes to `channel` on a connection of its own, re-established and
  // re-subscribed after any disconnect. `on_message` gets each message;
  // `on_subscribed` runs after each (re)subscription, so that the caller can
  // catch up on what it may have missed. Both run on the I/O thread.
  virtual void Subscribe(std::string channel, MessageHandler on_message,
                         std::function<void()> on_subscribed) = 0;

  // Walks the keys matching `pattern` on every master (SCAN, a cursor per
  // master, `count` keys per call; no redirection followed), for tools
  // (export, verify): `on_keys` gets each batch, `done` the outcome, both on
  // the I/O thread. The masters are those known when the walk starts; a key
  // added or moved meanwhile may be missed or seen twice (SCAN's own
  // guarantees).
  virtual void ScanAll(std::string pattern, size_t count,
                       std::function<void(std::vector<std::string>)> on_keys,
                       std::function<void(Status)> done) = 0;

  // Blocking Command for tools and tests: never call it on the I/O thread
  // (kFailedPrecondition there). Waits at most `timeout_ms` (0: the options'
  // command timeout), which is also the command's deadline.
  Result<RedisReply> CommandSync(std::vector<std::string> argv,
                                 size_t key_index, int64_t timeout_ms = 0);

  virtual RedisHealth Health() const = 0;
  // Stops the I/O thread; pending and later commands get kCancelled (later
  // ones at once, on the calling thread). Idempotent; the destructor calls
  // it. May be called from a callback (the thread then ends by itself).
  virtual void Shutdown() = 0;

 protected:
  RedisClient() = default;
};

// The cluster slot of `key`: CRC16 (XMODEM) of the key, or of its hash tag
// (the part between the first '{' and the next '}', when not empty), modulo
// 16384.
uint16_t RedisKeySlot(std::string_view key);

}  // namespace llmcache::net

#endif  // LLMCACHE_NET_REDIS_H_
