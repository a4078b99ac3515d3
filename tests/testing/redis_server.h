// Real redis-server processes for tests: one node, or a Redis Cluster of
// masters, on free loopback ports, persistence off, in a temporary folder,
// killed when the object goes away.
//
//   auto redis = RedisServer::Start({});
//   ASSERT_TRUE(redis.ok()) << redis.status();
//   ... (*redis)->url() ...
//
//   auto cluster = RedisCluster::Start(3);
//   ... (*cluster)->url() ...   // "redis://127.0.0.1:P1,127.0.0.1:P2,..."

#ifndef LLMCACHE_TESTS_TESTING_REDIS_SERVER_H_
#define LLMCACHE_TESTS_TESTING_REDIS_SERVER_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llmcache/status.h"

namespace llmcache::testing {

// True when redis-server and redis-cli are installed (tests skip otherwise
// only if LLMCACHE_ALLOW_NO_REDIS is set; CI installs them).
bool RedisAvailable();

struct RedisServerOptions {
  std::string password;   // requirepass (default user)
  std::string maxmemory;  // e.g. "2mb"; empty: none
  std::string maxmemory_policy = "volatile-lru";
  // TLS only (no plain port): server certificate and key (PEM text).
  bool tls = false;
  std::string tls_cert_pem, tls_key_pem;
  // The CA that signed tls_cert_pem (PEM). Empty: the certificate itself,
  // which does for one node (clients are not authenticated, and redis-cli
  // then skips verification) but not for a TLS cluster, whose nodes verify
  // each other on the bus and for MIGRATE.
  // A TLS cluster (--tls-cluster yes) also needs a certificate good for
  // client authentication (extendedKeyUsage clientAuth, or none): a node
  // presents it when it connects to another node's bus, and the bus always
  // requires one.
  std::string tls_ca_pem;
  bool cluster = false;  // --cluster-enabled yes (RedisCluster sets it)
  std::vector<std::string> extra_args;
};

class RedisServer {
 public:
  // Starts redis-server on a free port of 127.0.0.1 (retrying another port
  // if it was taken) with --save "" --appendonly no
  // --enable-debug-command local, and waits until it answers PING.
  static Result<std::unique_ptr<RedisServer>> Start(RedisServerOptions options);
  ~RedisServer();  // kills the server, removes its folder

  uint16_t port() const;
  // redis://[:password@]127.0.0.1:port (rediss:// with TLS).
  std::string url() const;

  // SIGKILL, and wait for it to exit.
  void Kill();
  // Starts it again on the same port and options; waits for PING.
  Status Restart();
  bool running() const;

  // Runs redis-cli (-p port, -a password, --tls ... as needed) with `args`;
  // its stdout without the trailing newline, or an error with its stderr.
  // An error reply is an error too (redis-cli -e): "MOVED ...", "ASK ...".
  // Safe to call from several threads (e.g. while MigrateSlot runs); the
  // other methods are not.
  Result<std::string> Cli(const std::vector<std::string>& args) const;

  // The server's pid; -1 once it has been killed or has exited.
  int pid() const;
  // Sends `sig` (e.g. SIGSTOP / SIGCONT to make it hang) unless the server
  // has been killed and reaped: safer than kill(pid(), sig).
  void Signal(int sig);

  // The server's folder, and the end of its log (for failure messages).
  const std::string& dir() const;
  std::string LogTail() const;

 private:
  struct Impl;
  explicit RedisServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend class RedisCluster;
};

class RedisCluster {
 public:
  // Starts `masters` cluster-enabled nodes (no replicas) on free ports whose
  // bus port (+10000) is free too, creates the cluster with
  // `redis-cli --cluster create ... --cluster-yes` and waits until every
  // node says cluster_state:ok.
  // Fewer than 3 masters (which redis-cli refuses) are joined by hand:
  // CLUSTER ADDSLOTSRANGE and MEET.
  static Result<std::unique_ptr<RedisCluster>> Start(int masters = 3);
  // The same with options for every node (password, TLS, maxmemory...; url()
  // then carries the password / rediss://).
  static Result<std::unique_ptr<RedisCluster>> Start(
      int masters, RedisServerOptions options);
  ~RedisCluster();

  // "redis://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3".
  std::string url() const;
  size_t size() const;
  RedisServer& node(size_t i);
  // Node `i`'s cluster id (CLUSTER MYID; kept across Restart).
  const std::string& node_id(size_t i) const;

  // Waits until every running node says cluster_state:ok and sees all 16384
  // slots served (e.g. after node(i).Restart()).
  Status WaitUntilOk(
      std::chrono::milliseconds timeout = std::chrono::seconds(20));

  // The index of the node that owns `slot`.
  Result<size_t> NodeOfSlot(int slot);
  // Moves `slot` with its keys to node `to`: SETSLOT IMPORTING/MIGRATING,
  // MIGRATE the keys in batches, SETSLOT NODE on every running node. Keys
  // are listed with redis-cli, so names must not contain a newline. With
  // `pause_ms` > 0 it sleeps that long with the slot half-migrated (some
  // keys moved, some not), so that clients see -ASK during the move.
  Status MigrateSlot(int slot, size_t to, int pause_ms = 0);
  // Keys stored on node `i` (DBSIZE).
  Result<uint64_t> DbSize(size_t i);

 private:
  RedisCluster() = default;
  std::vector<std::unique_ptr<RedisServer>> nodes_;
  std::vector<std::string> ids_;
  RedisServerOptions options_;
};

}  // namespace llmcache::testing

#endif  // LLMCACHE_TESTS_TESTING_REDIS_SERVER_H_
