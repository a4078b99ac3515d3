// The test Redis servers themselves: what the Redis client tests rely on
// (a node that answers, its password and TLS, Kill/Restart, a cluster whose
// slot moves with its keys) must hold before those tests mean anything.

#include "testing/redis_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fake_openrouter.h"
#include "testing/status_matchers.h"
#include "testing/subprocess.h"
#include "testing/wait.h"

namespace llmcache::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

class RedisHarnessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RedisAvailable()) {
      if (std::getenv("LLMCACHE_ALLOW_NO_REDIS") != nullptr) {
        GTEST_SKIP() << "redis-server/redis-cli not installed";
      }
      FAIL() << "redis-server and redis-cli must be in PATH "
                "(or set LLMCACHE_ALLOW_NO_REDIS to skip)";
    }
  }
};

// What a command printed, or its error as text (never aborts the test).
std::string Out(const Result<std::string>& r) {
  return r.ok() ? *r : "error: " + r.status().ToString();
}

// redis-cli at `port` without any of the harness's options.
ProcessResult PlainCli(uint16_t port, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {
      "/usr/bin/env", "redis-cli",          "-h", "127.0.0.1",
      "-p",           std::to_string(port), "-e"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv);
}

TEST_F(RedisHarnessTest, SingleNodeAnswersAndStoresNothingOnDisk) {
  auto redis = RedisServer::Start({});
  ASSERT_OK(redis);
  RedisServer& r = **redis;
  EXPECT_TRUE(r.running());
  EXPECT_GT(r.pid(), 0);
  EXPECT_EQ(r.url(), "redis://127.0.0.1:" + std::to_string(r.port()));
  EXPECT_EQ(Out(r.Cli({"PING"})), "PONG");
  EXPECT_EQ(Out(r.Cli({"SET", "k", "v 1"})), "OK");
  EXPECT_EQ(Out(r.Cli({"GET", "k"})), "v 1");
  // An error reply is an error, not text.
  EXPECT_THAT(r.Cli({"NOSUCHCOMMAND"}),
              StatusIs(StatusCode::kUnavailable, "unknown command"));
  EXPECT_EQ(Out(r.Cli({"CONFIG", "GET", "save"})), "save\n");
  EXPECT_EQ(Out(r.Cli({"CONFIG", "GET", "appendonly"})), "appendonly\nno");
  EXPECT_EQ(Out(r.Cli({"CONFIG", "GET", "bind"})), "bind\n127.0.0.1");
  EXPECT_EQ(Out(r.Cli({"DEBUG", "SLEEP", "0"})), "OK");
}

TEST_F(RedisHarnessTest, PasswordIsRequiredAndInTheUrl) {
  RedisServerOptions options;
  options.password = "p@ss word:/";
  auto redis = RedisServer::Start(options);
  ASSERT_OK(redis);
  RedisServer& r = **redis;
  EXPECT_EQ(r.url(), "redis://:p%40ss%20word%3A%2F@127.0.0.1:" +
                         std::to_string(r.port()));
  EXPECT_EQ(Out(r.Cli({"PING"})), "PONG");
  ProcessResult anonymous = PlainCli(r.port(), {"PING"});
  EXPECT_NE(anonymous.exit_code, 0);
  EXPECT_THAT(anonymous.out + anonymous.err, HasSubstr("NOAUTH"));
  ProcessResult wrong = PlainCli(r.port(), {"-a", "nope", "PING"});
  EXPECT_NE(wrong.exit_code, 0);
}

TEST_F(RedisHarnessTest, KillThenRestartOnTheSamePort) {
  auto redis = RedisServer::Start({});
  ASSERT_OK(redis);
  RedisServer& r = **redis;
  const uint16_t port = r.port();
  const int old_pid = r.pid();
  ASSERT_EQ(Out(r.Cli({"SET", "k", "v"})), "OK");
  r.Kill();
  EXPECT_FALSE(r.running());
  EXPECT_EQ(r.pid(), -1);
  EXPECT_FALSE(r.Cli({"PING"}).ok());
  ASSERT_OK(r.Restart());
  EXPECT_TRUE(r.running());
  EXPECT_EQ(r.port(), port);
  EXPECT_NE(r.pid(), old_pid);
  EXPECT_EQ(Out(r.Cli({"PING"})), "PONG");
  // Persistence is off: the key died with the process.
  EXPECT_EQ(Out(r.Cli({"EXISTS", "k"})), "0");
}

TEST_F(RedisHarnessTest, SignalStopsAndResumesTheServer) {
  auto redis = RedisServer::Start({});
  ASSERT_OK(redis);
  RedisServer& r = **redis;
  r.Signal(SIGSTOP);
  // A stopped server accepts (the kernel does) but never answers.
  ProcessResult stalled =
      RunProcess({"/usr/bin/timeout", "0.5", "/usr/bin/env", "redis-cli", "-p",
                  std::to_string(r.port()), "PING"});
  EXPECT_NE(stalled.exit_code, 0);
  r.Signal(SIGCONT);
  EXPECT_EQ(Out(r.Cli({"PING"})), "PONG");
}

TEST_F(RedisHarnessTest, MaxmemoryAndPolicy) {
  RedisServerOptions options;
  options.maxmemory = "2mb";
  options.maxmemory_policy = "allkeys-lru";
  auto redis = RedisServer::Start(options);
  ASSERT_OK(redis);
  EXPECT_EQ(Out((*redis)->Cli({"CONFIG", "GET", "maxmemory"})),
            "maxmemory\n2097152");
  EXPECT_EQ(Out((*redis)->Cli({"CONFIG", "GET", "maxmemory-policy"})),
            "maxmemory-policy\nallkeys-lru");
}

TEST_F(RedisHarnessTest, TlsNodeAnswersOnlyOverTls) {
  auto certs = fake::TestCertificates::Generate();
  ASSERT_OK(certs);
  RedisServerOptions options;
  options.tls = true;
  options.tls_cert_pem = certs->server_cert_pem;
  options.tls_key_pem = certs->server_key_pem;
  options.tls_ca_pem = certs->ca_cert_pem;
  options.password = "pw";
  auto redis = RedisServer::Start(options);
  ASSERT_OK(redis);
  RedisServer& r = **redis;
  EXPECT_EQ(r.url(), "rediss://:pw@127.0.0.1:" + std::to_string(r.port()));
  EXPECT_EQ(Out(r.Cli({"PING"})), "PONG");
  // No plain-text port, and the TLS port does not speak plain text.
  EXPECT_EQ(Out(r.Cli({"CONFIG", "GET", "port"})), "port\n0");
  ProcessResult plain = PlainCli(r.port(), {"-a", "pw", "PING"});
  EXPECT_NE(plain.exit_code, 0);
  EXPECT_THAT(plain.out, Not(HasSubstr("PONG")));
}

TEST_F(RedisHarnessTest, TlsWithoutCaUsesTheCertificate) {
  auto certs = fake::TestCertificates::Generate();
  ASSERT_OK(certs);
  RedisServerOptions options;
  options.tls = true;
  options.tls_cert_pem = certs->untrusted_cert_pem;  // self-signed
  options.tls_key_pem = certs->untrusted_key_pem;
  auto redis = RedisServer::Start(options);
  ASSERT_OK(redis);
  EXPECT_EQ(Out((*redis)->Cli({"PING"})), "PONG");
}

TEST_F(RedisHarnessTest, TlsNeedsCertificateAndKey) {
  RedisServerOptions options;
  options.tls = true;
  EXPECT_THAT(RedisServer::Start(options),
              StatusIs(StatusCode::kInvalidArgument));
}

// The slot of "{s}" keys, asked of the server (CRC16 mod 16384).
int SlotOfTag(RedisServer& node) {
  Result<std::string> slot = node.Cli({"CLUSTER", "KEYSLOT", "{s}"});
  return slot.ok() ? std::atoi(slot->c_str()) : -1;
}

Result<int> CountKeysInSlot(RedisServer& node, int slot) {
  Result<std::string> n =
      node.Cli({"CLUSTER", "COUNTKEYSINSLOT", std::to_string(slot)});
  if (!n.ok()) return n.status();
  return std::atoi(n->c_str());
}

TEST_F(RedisHarnessTest, ClusterMovesASlotWithItsKeys) {
  auto started = RedisCluster::Start(3);
  ASSERT_OK(started);
  RedisCluster& cluster = **started;
  ASSERT_EQ(cluster.size(), 3u);
  std::string want_url = "redis://";
  for (size_t i = 0; i < 3; ++i) {
    if (i > 0) want_url += ",";
    want_url += "127.0.0.1:" + std::to_string(cluster.node(i).port());
    EXPECT_THAT(Out(cluster.node(i).Cli({"CLUSTER", "INFO"})),
                HasSubstr("cluster_state:ok"));
    EXPECT_EQ(cluster.node_id(i).size(), 40u);
  }
  EXPECT_EQ(cluster.url(), want_url);

  const int slot = SlotOfTag(cluster.node(0));
  ASSERT_EQ(slot, 3828);  // CRC16("s") mod 16384
  auto owner = cluster.NodeOfSlot(slot);
  ASSERT_OK(owner);
  const size_t from = *owner;
  const size_t to = (from + 1) % 3;
  // A key of the slot sent to another node is redirected to the owner.
  EXPECT_THAT(cluster.node(to).Cli({"GET", "{s}0"}),
              StatusIs(StatusCode::kUnavailable, "MOVED"));
  std::vector<std::string> mset = {"MSET"};
  for (int i = 0; i < 50; ++i) {
    mset.push_back("{s}" + std::to_string(i));
    mset.push_back("v");
  }
  ASSERT_EQ(Out(cluster.node(from).Cli(mset)), "OK");
  EXPECT_EQ(CountKeysInSlot(cluster.node(from), slot).value_or(-1), 50);

  // Half-way through, some keys are on each side and the source sends
  // -ASK for those it no longer has.
  Status moved;
  std::thread mover(
      [&] { moved = cluster.MigrateSlot(slot, to, /*pause_ms=*/1500); });
  EXPECT_TRUE(WaitFor([&] {
    Result<int> n = CountKeysInSlot(cluster.node(to), slot);
    return n.ok() && *n > 0;
  }));
  Result<std::string> moved_keys = cluster.node(to).Cli(
      {"CLUSTER", "GETKEYSINSLOT", std::to_string(slot), "1"});
  Result<int> left = CountKeysInSlot(cluster.node(from), slot);
  Result<std::string> ask = Status(StatusCode::kUnknown, "not asked");
  if (moved_keys.ok()) ask = cluster.node(from).Cli({"GET", *moved_keys});
  mover.join();
  ASSERT_OK(moved);
  ASSERT_OK(moved_keys);
  ASSERT_OK(left);
  EXPECT_EQ(*left, 25);
  EXPECT_THAT(ask, StatusIs(StatusCode::kUnavailable, "ASK"));

  EXPECT_EQ(cluster.NodeOfSlot(slot).value_or(size_t{99}), to);
  EXPECT_EQ(CountKeysInSlot(cluster.node(to), slot).value_or(-1), 50);
  EXPECT_EQ(CountKeysInSlot(cluster.node(from), slot).value_or(-1), 0);
  EXPECT_EQ(cluster.DbSize(to).value_or(uint64_t{99}), 50u);
  EXPECT_EQ(cluster.DbSize(from).value_or(uint64_t{99}), 0u);
  EXPECT_EQ(Out(cluster.node(to).Cli({"GET", "{s}7"})), "v");
  EXPECT_THAT(cluster.node(from).Cli({"GET", "{s}7"}),
              StatusIs(StatusCode::kUnavailable, "MOVED"));
  // Every node agrees.
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_THAT(Out(cluster.node(i).Cli({"CLUSTER", "NODES"})),
                HasSubstr(cluster.node_id(to)));
  }
  ASSERT_OK(cluster.WaitUntilOk());
}

// Fewer masters than redis-cli accepts (joined by hand), and a password that
// MIGRATE must give the destination.
TEST_F(RedisHarnessTest, TwoMasterClusterWithPassword) {
  RedisServerOptions options;
  options.password = "secret";
  auto started = RedisCluster::Start(2, options);
  ASSERT_OK(started);
  RedisCluster& cluster = **started;
  EXPECT_THAT(cluster.url(), StartsWith("redis://:secret@127.0.0.1:"));
  const int slot = SlotOfTag(cluster.node(0));
  auto owner = cluster.NodeOfSlot(slot);
  ASSERT_OK(owner);
  const size_t from = *owner, to = 1 - from;
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK(cluster.node(from).Cli({"SET", "{s}" + std::to_string(i), "v"}));
  }
  // MIGRATE authenticates to the destination.
  ASSERT_OK(cluster.MigrateSlot(slot, to));
  EXPECT_EQ(cluster.NodeOfSlot(slot).value_or(size_t{99}), to);
  EXPECT_EQ(cluster.DbSize(to).value_or(uint64_t{99}), 5u);
  EXPECT_EQ(cluster.DbSize(from).value_or(uint64_t{99}), 0u);
}

}  // namespace
}  // namespace llmcache::testing
