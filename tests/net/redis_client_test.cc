// RedisClient against real redis-server processes on 127.0.0.1 (the
// testing/redis_server.h harness): URL parsing and key slots, then one node
// (values, pipelining, password, SELECT, deadlines, kill and restart, TLS,
// pub/sub, shutdown) and a 3-master cluster (routing, detection, MOVED and
// ASK while slots move).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fake_openrouter.h"
#include "llmcache/net/redis.h"
#include "testing/redis_server.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "testing/wait.h"

namespace llmcache::net {
namespace {

using ::llmcache::testing::RedisCluster;
using ::llmcache::testing::RedisServer;
using ::llmcache::testing::RedisServerOptions;
using ::llmcache::testing::StatusIs;
using ::llmcache::testing::WaitFor;
using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// ------------------------------------------------------------ URL and slots

TEST(RedisUrlTest, ParsesGoodUrls) {
  auto u = RedisUrl::Parse("redis://127.0.0.1:6380");
  ASSERT_OK(u);
  EXPECT_FALSE(u->tls);
  EXPECT_EQ(u->db, 0);
  EXPECT_TRUE(u->user.empty());
  EXPECT_TRUE(u->password.empty());
  ASSERT_EQ(u->nodes.size(), 1u);
  EXPECT_EQ(u->nodes[0], (RedisUrl::Node{"127.0.0.1", 6380}));

  u = RedisUrl::Parse("rediss://app:p%40ss%3Aw%2F@cache.example:6390/2");
  ASSERT_OK(u);
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->user, "app");
  EXPECT_EQ(u->password, "p@ss:w/");
  EXPECT_EQ(u->db, 2);
  EXPECT_EQ(u->nodes, (std::vector<RedisUrl::Node>{{"cache.example", 6390}}));

  u = RedisUrl::Parse("redis://:secret@localhost");
  ASSERT_OK(u);
  EXPECT_EQ(u->password, "secret");
  EXPECT_EQ(u->nodes, (std::vector<RedisUrl::Node>{{"localhost", 6379}}));

  u = RedisUrl::Parse("redis://a:1,b.example:2,[::1]:3,[fe80::2]");
  ASSERT_OK(u);
  EXPECT_EQ(u->nodes,
            (std::vector<RedisUrl::Node>{
                {"a", 1}, {"b.example", 2}, {"::1", 3}, {"fe80::2", 6379}}));

  u = RedisUrl::Parse("REDIS://h:1/");
  ASSERT_OK(u);
  EXPECT_EQ(u->db, 0);
}

TEST(RedisUrlTest, RejectsBadUrlsWithoutQuotingThePassword) {
  for (const char* bad : {"http://h:1",
                          "h:6379",
                          "redis://",
                          "redis://h:0",
                          "redis://h:70000",
                          "redis://h:abc",
                          "redis://h:1/x",
                          "redis://h:1/-1",
                          "redis://a:1,b:2/3",
                          "redis://h:1?x=1",
                          "redis://topsecret@h",
                          "redis://h:1,",
                          "redis://,h:1",
                          "redis://[::1",
                          "redis://[::1]x",
                          "redis://[zz]:1",
                          "redis://h h:1",
                          "redis://:p%zz@h",
                          "redis://:topsecret@",
                          "redis://:@h"}) {
    SCOPED_TRACE(bad);
    auto u = RedisUrl::Parse(bad);
    EXPECT_THAT(u, StatusIs(StatusCode::kInvalidArgument));
    EXPECT_THAT(std::string(u.status().message()), Not(HasSubstr("topsecret")));
  }
}

TEST(RedisUrlTest, AUserWithoutAPasswordLeavesItToTheCaller) {
  auto u = RedisUrl::Parse("redis://acl-user:@h:7000");
  ASSERT_OK(u);
  EXPECT_EQ(u->user, "acl-user");
  EXPECT_EQ(u->password, "");
}

TEST(RedisUrlTest, RedactsThePassword) {
  auto u = RedisUrl::Parse("rediss://app:hunter2@h:1,g:2");
  ASSERT_OK(u);
  EXPECT_EQ(u->Redacted(), "rediss://app:***@h:1,g:2");
  u = RedisUrl::Parse("redis://:hunter2@[::1]:7/4");
  ASSERT_OK(u);
  EXPECT_EQ(u->Redacted(), "redis://:***@[::1]:7/4");
  u = RedisUrl::Parse("redis://h");
  ASSERT_OK(u);
  EXPECT_EQ(u->Redacted(), "redis://h:6379");
  // The redacted URL parses back to the same nodes.
  auto back = RedisUrl::Parse("redis://[::1]:7,h:8");
  ASSERT_OK(back);
  auto again = RedisUrl::Parse(back->Redacted());
  ASSERT_OK(again);
  EXPECT_EQ(again->nodes, back->nodes);
}

TEST(RateLimitedLogTest, OneLinePerIntervalThenTheCountOfTheRest) {
  std::vector<std::string> lines;
  RateLimitedLog log([&](std::string_view l) { lines.emplace_back(l); }, 300);
  log.Write("first");
  log.Write("second");
  log.Write("third");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "first");
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  log.Write("fourth");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], "fourth (2 similar lines suppressed)");
  log.Write("fifth");
  EXPECT_EQ(lines.size(), 2u);
}

TEST(RedisKeySlotTest, KnownValuesAndHashTags) {
  EXPECT_EQ(RedisKeySlot("foo"), 12182);
  EXPECT_EQ(RedisKeySlot("bar"), 5061);
  EXPECT_EQ(RedisKeySlot("123456789"), 0x31C3);  // the CRC16/XMODEM check
  EXPECT_EQ(RedisKeySlot(""), 0);
  EXPECT_EQ(RedisKeySlot("{user1000}.following"),
            RedisKeySlot("{user1000}.followers"));
  EXPECT_EQ(RedisKeySlot("{user1000}.following"), RedisKeySlot("user1000"));
  // Only the first {...} counts; an empty one means the whole key.
  EXPECT_EQ(RedisKeySlot("foo{bar}{zap}"), RedisKeySlot("bar"));
  EXPECT_EQ(RedisKeySlot("foo{{bar}}zap"), RedisKeySlot("{bar"));
  EXPECT_NE(RedisKeySlot("foo{}{bar}"), RedisKeySlot("bar"));
  EXPECT_EQ(RedisKeySlot(std::string("\0{x}", 4)), RedisKeySlot("x"));
}

// ------------------------------------------------------------ helpers

// Collects log lines from the clients.
class LogSink {
 public:
  std::function<void(std::string_view)> fn() {
    return [this](std::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.emplace_back(line);
    };
  }
  std::vector<std::string> lines() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

RedisOptions Options(const std::string& url, int64_t timeout_ms = 2'000) {
  RedisOptions o;
  auto parsed = RedisUrl::Parse(url);
  EXPECT_OK(parsed) << url;
  if (parsed.ok()) o.url = *parsed;
  o.command_timeout_ms = timeout_ms;
  return o;
}

std::shared_ptr<RedisClient> MakeClient(RedisOptions options) {
  auto c = RedisClient::Create(std::move(options));
  EXPECT_OK(c);
  return c.ok() ? *c : nullptr;
}

// True once PING succeeds (the client connects in the background).
bool Answers(RedisClient& client,
             milliseconds timeout = ::llmcache::testing::kWaitTimeout) {
  return WaitFor(
      [&] {
        auto r = client.CommandSync({"PING"}, 0, 500);
        return r.ok() && r->str == "PONG";
      },
      timeout);
}

// The server's total_reads_processed (INFO stats), or -1.
int64_t ServerReads(const RedisServer& server) {
  auto info = server.Cli({"INFO", "stats"});
  if (!info.ok()) return -1;
  const std::string field = "total_reads_processed:";
  const size_t at = info->find(field);
  if (at == std::string::npos) return -1;
  return std::strtoll(info->c_str() + at + field.size(), nullptr, 10);
}

class RedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!::llmcache::testing::RedisAvailable()) {
      if (std::getenv("LLMCACHE_ALLOW_NO_REDIS") != nullptr) {
        GTEST_SKIP() << "redis-server/redis-cli not installed";
      }
      FAIL() << "redis-server and redis-cli must be in PATH "
                "(or set LLMCACHE_ALLOW_NO_REDIS to skip)";
    }
  }

  std::unique_ptr<RedisServer> StartServer(RedisServerOptions options = {}) {
    auto s = RedisServer::Start(std::move(options));
    EXPECT_OK(s);
    return s.ok() ? std::move(*s) : nullptr;
  }
};

// ------------------------------------------------------------ one node

TEST_F(RedisTest, StringsIntegersNilErrorsAndBinaryValues) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto client = MakeClient(Options(server->url()));
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(Answers(*client));

  auto r = client->CommandSync({"SET", "k", "v"}, 1);
  ASSERT_OK(r);
  EXPECT_EQ(r->type, RedisReply::Type::kStatus);
  EXPECT_EQ(r->str, "OK");
  r = client->CommandSync({"GET", "k"}, 1);
  ASSERT_OK(r);
  EXPECT_EQ(r->type, RedisReply::Type::kString);
  EXPECT_EQ(r->str, "v");
  r = client->CommandSync({"GET", "missing"}, 1);
  ASSERT_OK(r);
  EXPECT_TRUE(r->is_nil());
  r = client->CommandSync({"INCR", "n"}, 1);
  ASSERT_OK(r);
  EXPECT_EQ(r->type, RedisReply::Type::kInteger);
  EXPECT_EQ(r->integer, 1);
  r = client->CommandSync({"INCRBY", "n", "41"}, 1);
  ASSERT_OK(r);
  EXPECT_EQ(r->integer, 42);
  // An error reply is a reply, not a failed Result.
  r = client->CommandSync({"INCR", "k"}, 1);
  ASSERT_OK(r);
  EXPECT_TRUE(r->is_error());
  EXPECT_THAT(r->str, HasSubstr("not an integer"));
  r = client->CommandSync({"NOSUCHCOMMAND"}, 0);
  ASSERT_OK(r);
  EXPECT_TRUE(r->is_error());
  // Arrays.
  ASSERT_OK(client->CommandSync({"RPUSH", "list", "a", "", "c"}, 1));
  r = client->CommandSync({"LRANGE", "list", "0", "-1"}, 1);
  ASSERT_OK(r);
  ASSERT_EQ(r->type, RedisReply::Type::kArray);
  ASSERT_EQ(r->elements.size(), 3u);
  EXPECT_EQ(r->elements[1].str, "");
  EXPECT_EQ(r->elements[2].str, "c");

  // Binary safe, both ways: NUL, CR LF and a RESP-looking value.
  static constexpr char kBinary[] = "a\0b\r\n$3\r\nxyz\r\n*1\r\n\xff";
  const std::string binary(kBinary, sizeof(kBinary) - 1);
  const std::string binary_key("key\0\r\n", 6);
  ASSERT_OK(client->CommandSync({"SET", binary_key, binary}, 1));
  r = client->CommandSync({"GET", binary_key}, 1);
  ASSERT_OK(r);
  EXPECT_EQ(r->str, binary);

  // 1 MiB of random bytes.
  std::string big(1 << 20, '\0');
  std::mt19937 rng(7);
  for (char& c : big) c = static_cast<char>(rng() & 0xff);
  r = client->CommandSync({"SET", "big", big}, 1, 10'000);
  ASSERT_OK(r);
  EXPECT_EQ(r->str, "OK");
  r = client->CommandSync({"GET", "big"}, 1, 10'000);
  ASSERT_OK(r);
  EXPECT_EQ(r->str.size(), big.size());
  EXPECT_TRUE(r->str == big);
  r = client->CommandSync({"STRLEN", "big"}, 1);
  ASSERT_OK(r);
  EXPECT_EQ(r->integer, 1 << 20);

  // Bad calls.
  EXPECT_THAT(client->CommandSync({}, 0),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(client->CommandSync({"GET"}, 1),
              StatusIs(StatusCode::kInvalidArgument));

  RedisHealth h = client->Health();
  EXPECT_TRUE(h.connected);
  EXPECT_FALSE(h.cluster);
  EXPECT_EQ(h.masters, 1u);
  EXPECT_EQ(h.failures, 0u);
  EXPECT_GE(h.commands, 15u);
}

TEST_F(RedisTest, ThousandConcurrentCommandsFromFourThreads) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto client = MakeClient(Options(server->url(), 10'000));
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(Answers(*client));
  for (int i = 0; i < 100; ++i) {
    ASSERT_OK(client->CommandSync(
        {"SET", "pk:" + std::to_string(i), "value:" + std::to_string(i)}, 1));
  }
  const int64_t reads_before = ServerReads(*server);
  ASSERT_GE(reads_before, 0);
  std::atomic<int> answered{0}, right{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int j = 0; j < 250; ++j) {
        const int k = (t * 250 + j) % 100;
        client->Command(
            {"GET", "pk:" + std::to_string(k)}, 1,
            [&, k](Result<RedisReply> r) {
              if (r.ok() && r->str == "value:" + std::to_string(k)) {
                right.fetch_add(1);
              }
              answered.fetch_add(1);
            });
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(WaitFor([&] { return answered.load() == 1000; }))
      << answered.load() << " answered";
  EXPECT_EQ(right.load(), 1000);
  EXPECT_EQ(client->Health().failures, 0u);
  // Pipelined: the server read the 1000 commands in far fewer reads than one
  // per command (which a request-then-reply client would need).
  const int64_t reads = ServerReads(*server) - reads_before;
  EXPECT_LT(reads, 900) << "commands were not pipelined";
}

TEST_F(RedisTest, PasswordRightWrongAndNeverLogged) {
  const std::string password = "Pw-7c1f-not-in-logs";
  RedisServerOptions so;
  so.password = password;
  auto server = StartServer(so);
  ASSERT_NE(server, nullptr);
  ASSERT_THAT(server->url(), HasSubstr(password));

  auto good = MakeClient(Options(server->url()));
  ASSERT_NE(good, nullptr);
  ASSERT_TRUE(Answers(*good));
  ASSERT_OK(good->CommandSync({"SET", "k", "v"}, 1));
  EXPECT_THAT(good->Health().url, Not(HasSubstr(password)));
  EXPECT_THAT(good->Health().url, HasSubstr("***"));

  LogSink logs;
  RedisOptions bad_options = Options(server->url());
  const std::string wrong = "Wrong-9d2e-not-in-logs";
  bad_options.url.password = wrong;
  bad_options.log = logs.fn();
  auto bad = MakeClient(bad_options);
  ASSERT_NE(bad, nullptr);
  const auto start = Clock::now();
  auto r = bad->CommandSync({"GET", "k"}, 1, 5'000);
  EXPECT_THAT(r, StatusIs(StatusCode::kUnauthenticated));
  EXPECT_LT(Clock::now() - start, milliseconds(4'000));  // not the deadline
  // Later commands fail too, and say why.
  r = bad->CommandSync({"GET", "k"}, 1, 5'000);
  EXPECT_FALSE(r.ok());
  // No password at all: NOAUTH.
  RedisOptions none_options = Options(server->url());
  none_options.url.password.clear();
  none_options.log = logs.fn();
  auto none = MakeClient(none_options);
  ASSERT_NE(none, nullptr);
  EXPECT_THAT(none->CommandSync({"GET", "k"}, 1, 5'000),
              StatusIs(StatusCode::kUnauthenticated));

  bad->Shutdown();
  none->Shutdown();
  const std::vector<std::string> lines = logs.lines();
  EXPECT_FALSE(lines.empty()) << "the authentication failure is logged";
  for (const std::string& line : lines) {
    EXPECT_THAT(line, Not(HasSubstr(wrong)));
    EXPECT_THAT(line, Not(HasSubstr(password)));
  }
  EXPECT_THAT(bad->Health().last_error, Not(HasSubstr(wrong)));
  EXPECT_THAT(bad->Health().last_error, Not(::testing::IsEmpty()));
  EXPECT_THAT(bad->Health().url, Not(HasSubstr(wrong)));
}

TEST_F(RedisTest, SelectsTheDatabaseOfTheUrl) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto db3 = MakeClient(Options(server->url() + "/3"));
  auto db0 = MakeClient(Options(server->url()));
  ASSERT_NE(db3, nullptr);
  ASSERT_NE(db0, nullptr);
  ASSERT_OK(db3->CommandSync({"SET", "only-in-3", "x"}, 1));
  auto r = db0->CommandSync({"GET", "only-in-3"}, 1);
  ASSERT_OK(r);
  EXPECT_TRUE(r->is_nil());
  r = db3->CommandSync({"GET", "only-in-3"}, 1);
  ASSERT_OK(r);
  EXPECT_EQ(r->str, "x");
  auto n = server->Cli({"-n", "3", "DBSIZE"});
  ASSERT_OK(n);
  EXPECT_EQ(*n, "1");
}

TEST_F(RedisTest, DeadlineExceededThenRecovers) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto client = MakeClient(Options(server->url()));
  auto sleeper = MakeClient(Options(server->url()));
  ASSERT_NE(client, nullptr);
  ASSERT_NE(sleeper, nullptr);
  ASSERT_TRUE(Answers(*client));
  ASSERT_TRUE(Answers(*sleeper));
  ASSERT_OK(client->CommandSync({"SET", "k", "before"}, 1));

  std::promise<Result<RedisReply>> slept;
  sleeper->Command(
      {"DEBUG", "SLEEP", "0.3"}, 0, 5'000,
      [&](Result<RedisReply> r) { slept.set_value(std::move(r)); });
  std::this_thread::sleep_for(milliseconds(50));  // let the server start it
  const auto start = Clock::now();
  auto r = client->CommandSync({"GET", "k"}, 1, 50);
  const auto elapsed = Clock::now() - start;
  EXPECT_THAT(r, StatusIs(StatusCode::kDeadlineExceeded));
  EXPECT_GE(elapsed, milliseconds(45));
  EXPECT_LT(elapsed, milliseconds(1'000));
  ASSERT_OK(slept.get_future().get());

  // The late reply to the timed-out GET is dropped, not given to the next.
  ASSERT_OK(client->CommandSync({"SET", "k", "after"}, 1));
  r = client->CommandSync({"GET", "k"}, 1);
  ASSERT_OK(r);
  EXPECT_EQ(r->str, "after");
  RedisHealth h = client->Health();
  EXPECT_EQ(h.timeouts, 1u);
  EXPECT_EQ(h.reconnects, 0u);  // 0.3 s is not long enough to give up on it
  EXPECT_FALSE(h.breaker_open);
}

TEST_F(RedisTest, FailsFastWhileDownAndReconnectsByItself) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  RedisOptions o = Options(server->url());
  o.breaker_failures = 3;
  o.breaker_open_ms = 100;
  LogSink faults, infos;
  o.log = faults.fn();
  o.info_log = infos.fn();
  auto client = MakeClient(o);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(Answers(*client));

  server->Kill();
  int unavailable = 0;
  for (int i = 0; i < 20; ++i) {
    auto r = client->CommandSync({"GET", "k"}, 1, 2'000);
    // Never waits for the deadline: the node is known to be down.
    EXPECT_THAT(r, StatusIs(StatusCode::kUnavailable));
    if (!r.ok() && r.status().code() == StatusCode::kUnavailable) ++unavailable;
  }
  EXPECT_EQ(unavailable, 20);
  RedisHealth h = client->Health();
  EXPECT_FALSE(h.connected);
  EXPECT_TRUE(h.breaker_open);
  EXPECT_GT(h.rejected, 0u);
  EXPECT_GE(h.failures, 20u);
  EXPECT_EQ(h.timeouts, 0u);
  auto rejected = client->CommandSync({"GET", "k"}, 1, 2'000);
  EXPECT_THAT(rejected, StatusIs(StatusCode::kUnavailable));

  ASSERT_OK(server->Restart());
  EXPECT_TRUE(WaitFor([&] {
    return client->CommandSync({"PING"}, 0, 500).ok();
  })) << client->Health().last_error;
  ASSERT_OK(client->CommandSync({"SET", "k", "v"}, 1));
  h = client->Health();
  EXPECT_TRUE(h.connected);
  EXPECT_FALSE(h.breaker_open);
  EXPECT_GE(h.reconnects, 1u);
  // The loss is a fault; getting the connection back is not.
  auto has = [](const std::vector<std::string>& lines, std::string_view what) {
    return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) {
      return l.find(what) != std::string::npos;
    });
  };
  EXPECT_FALSE(faults.lines().empty());
  EXPECT_FALSE(has(faults.lines(), "reconnected"));
  EXPECT_TRUE(WaitFor([&] { return has(infos.lines(), "reconnected to"); }));
}

TEST_F(RedisTest, ShutdownCancelsPendingAndLaterCommands) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto client = MakeClient(Options(server->url()));
  auto sleeper = MakeClient(Options(server->url()));
  ASSERT_NE(client, nullptr);
  ASSERT_NE(sleeper, nullptr);
  ASSERT_TRUE(Answers(*client));

  // CommandSync on the I/O thread would block it: refused.
  std::promise<Status> on_io;
  client->Command({"PING"}, 0, [&](Result<RedisReply>) {
    on_io.set_value(client->CommandSync({"PING"}, 0).status());
  });
  EXPECT_THAT(on_io.get_future().get(),
              StatusIs(StatusCode::kFailedPrecondition));

  std::promise<Result<RedisReply>> slept;
  sleeper->Command(
      {"DEBUG", "SLEEP", "0.3"}, 0, 5'000,
      [&](Result<RedisReply> r) { slept.set_value(std::move(r)); });
  std::this_thread::sleep_for(milliseconds(50));
  std::promise<Result<RedisReply>> pending;
  client->Command({"GET", "k"}, 1, 5'000, [&](Result<RedisReply> r) {
    pending.set_value(std::move(r));
  });
  client->Shutdown();
  EXPECT_THAT(pending.get_future().get(), StatusIs(StatusCode::kCancelled));
  EXPECT_THAT(client->CommandSync({"PING"}, 0),
              StatusIs(StatusCode::kCancelled));
  client->Shutdown();  // idempotent
  ASSERT_OK(slept.get_future().get());

  // The last reference dropped in a callback, on the I/O thread itself.
  std::promise<void> dropped;
  {
    auto other = MakeClient(Options(server->url()));
    ASSERT_NE(other, nullptr);
    auto* raw = other.get();
    raw->Command(
        {"PING"}, 0,
        [keep = std::move(other), &dropped](Result<RedisReply>) mutable {
          keep->Shutdown();
          keep.reset();
          dropped.set_value();
        });
  }
  EXPECT_EQ(dropped.get_future().wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
}

// ------------------------------------------------------------ TLS

class RedisTlsTest : public RedisTest {
 protected:
  void SetUp() override {
    RedisTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto certs = fake::TestCertificates::Generate();
    ASSERT_OK(certs);
    certs_ = *certs;
    ca_file_ = dir_.path() + "/ca.pem";
    std::ofstream(ca_file_) << certs_.ca_cert_pem;
  }

  std::unique_ptr<RedisServer> StartTls(const std::string& cert,
                                        const std::string& key) {
    RedisServerOptions so;
    so.tls = true;
    so.tls_cert_pem = cert;
    so.tls_key_pem = key;
    return StartServer(so);
  }

  RedisOptions TlsOptions(const RedisServer& server) {
    RedisOptions o = Options(server.url());
    EXPECT_TRUE(o.url.tls);
    o.tls_ca_file = ca_file_;
    o.log = [](std::string_view) {};
    return o;
  }

  ::llmcache::testing::TempDir dir_{"llmcache-redis-tls"};
  fake::TestCertificates certs_;
  std::string ca_file_;
};

TEST_F(RedisTlsTest, TrustedCertificateWorks) {
  auto server = StartTls(certs_.server_cert_pem, certs_.server_key_pem);
  ASSERT_NE(server, nullptr);
  auto client = MakeClient(TlsOptions(*server));
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(Answers(*client)) << client->Health().last_error;
  ASSERT_OK(client->CommandSync({"SET", "k", std::string(200'000, 'x')}, 1));
  auto r = client->CommandSync({"GET", "k"}, 1);
  ASSERT_OK(r);
  EXPECT_EQ(r->str.size(), 200'000u);
}

TEST_F(RedisTlsTest, UntrustedAndWrongHostCertificatesAreRefused) {
  auto untrusted =
      StartTls(certs_.untrusted_cert_pem, certs_.untrusted_key_pem);
  ASSERT_NE(untrusted, nullptr);
  auto client = MakeClient(TlsOptions(*untrusted));
  ASSERT_NE(client, nullptr);
  auto r = client->CommandSync({"PING"}, 0, 5'000);
  EXPECT_THAT(r, StatusIs(StatusCode::kUnauthenticated, "TLS"));
  EXPECT_FALSE(client->Health().connected);

  auto wrong_host =
      StartTls(certs_.wrong_host_cert_pem, certs_.wrong_host_key_pem);
  ASSERT_NE(wrong_host, nullptr);
  auto client2 = MakeClient(TlsOptions(*wrong_host));
  ASSERT_NE(client2, nullptr);
  r = client2->CommandSync({"PING"}, 0, 5'000);
  EXPECT_THAT(r, StatusIs(StatusCode::kUnauthenticated, "TLS"));
  EXPECT_FALSE(client2->Health().connected);

  // Without the test CA, the good certificate is not trusted either.
  auto good = StartTls(certs_.server_cert_pem, certs_.server_key_pem);
  ASSERT_NE(good, nullptr);
  RedisOptions o = TlsOptions(*good);
  o.tls_ca_file.clear();
  auto client3 = MakeClient(o);
  ASSERT_NE(client3, nullptr);
  EXPECT_THAT(client3->CommandSync({"PING"}, 0, 5'000),
              StatusIs(StatusCode::kUnauthenticated));
}

// ------------------------------------------------------------ pub/sub

TEST_F(RedisTest, SubscriptionSurvivesARestart) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  RedisOptions o = Options(server->url());
  o.log = [](std::string_view) {};
  auto client = MakeClient(o);
  ASSERT_NE(client, nullptr);

  std::atomic<int> subscribed{0};
  std::mutex mu;
  std::vector<std::string> messages;
  client->Subscribe(
      "llmcache-events",
      [&](std::string_view m) {
        std::lock_guard<std::mutex> lock(mu);
        messages.emplace_back(m);
      },
      [&] { subscribed.fetch_add(1); });
  auto got = [&](const std::string& m) {
    std::lock_guard<std::mutex> lock(mu);
    return std::find(messages.begin(), messages.end(), m) != messages.end();
  };
  ASSERT_TRUE(WaitFor([&] { return subscribed.load() == 1; }));
  ASSERT_OK(server->Cli({"PUBLISH", "llmcache-events", "one"}));
  ASSERT_OK(server->Cli({"PUBLISH", "other-channel", "not for us"}));
  const std::string binary("t\0w\r\no", 6);
  // Published by the client itself, on its command connection.
  ASSERT_OK(client->CommandSync({"PUBLISH", "llmcache-events", binary}, 1));
  EXPECT_TRUE(WaitFor([&] { return got("one") && got(binary); }));
  EXPECT_FALSE(got("not for us"));

  server->Kill();
  ASSERT_OK(server->Restart());
  ASSERT_TRUE(WaitFor([&] { return subscribed.load() == 2; }))
      << "not re-subscribed after the restart";
  ASSERT_OK(server->Cli({"PUBLISH", "llmcache-events", "two"}));
  EXPECT_TRUE(WaitFor([&] { return got("two"); }));
}

// ------------------------------------------------------------ cluster

class RedisClusterTest : public RedisTest {
 protected:
  static void SetUpTestSuite() {
    if (!::llmcache::testing::RedisAvailable()) return;
    auto c = RedisCluster::Start(3);
    if (c.ok()) {
      cluster_ = std::move(*c);
    } else {
      start_error_ = c.status().ToString();
    }
  }
  static void TearDownTestSuite() { cluster_.reset(); }

  void SetUp() override {
    RedisTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_NE(cluster_, nullptr) << "cluster did not start: " << start_error_;
  }

  // Keys in one slot, with values, stored through `client`.
  static std::vector<std::string> FillSlot(RedisClient& client,
                                           const std::string& tag, int n) {
    std::vector<std::string> keys;
    for (int i = 0; i < n; ++i) {
      keys.push_back("{" + tag + "}:" + std::to_string(i));
      EXPECT_OK(
          client.CommandSync({"SET", keys.back(), "v-" + keys.back()}, 1));
    }
    return keys;
  }

  // Reads `keys` in a loop on another thread until `stop`; counts wrong
  // answers.
  struct Reader {
    std::atomic<bool> stop{false};
    std::atomic<int> reads{0}, errors{0};
    std::string first_error;
    std::thread thread;
    void Start(RedisClient& client, std::vector<std::string> keys) {
      thread = std::thread([this, &client, keys] {
        while (!stop.load()) {
          for (const std::string& k : keys) {
            auto r = client.CommandSync({"GET", k}, 1, 5'000);
            reads.fetch_add(1);
            if (!r.ok() || r->str != "v-" + k) {
              if (errors.fetch_add(1) == 0) {
                first_error =
                    r.ok() ? "reply: " + r->str : r.status().ToString();
              }
            }
          }
        }
      });
    }
    void Stop() {
      stop.store(true);
      if (thread.joinable()) thread.join();
    }
  };

  static std::unique_ptr<RedisCluster> cluster_;
  static std::string start_error_;
};
std::unique_ptr<RedisCluster> RedisClusterTest::cluster_;
std::string RedisClusterTest::start_error_;

TEST_F(RedisClusterTest, KeysSpreadOverAllMasters) {
  auto client = MakeClient(Options(cluster_->url()));
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < 300; ++i) {
    const std::string k = "ck:" + std::to_string(i);
    ASSERT_OK(client->CommandSync({"SET", k, "v" + std::to_string(i)}, 1));
  }
  for (int i = 0; i < 300; ++i) {
    auto r = client->CommandSync({"GET", "ck:" + std::to_string(i)}, 1);
    ASSERT_OK(r);
    EXPECT_EQ(r->str, "v" + std::to_string(i));
  }
  uint64_t total = 0;
  for (size_t n = 0; n < cluster_->size(); ++n) {
    auto size = cluster_->DbSize(n);
    ASSERT_OK(size);
    EXPECT_GT(*size, 0u) << "node " << n;
    total += *size;
  }
  EXPECT_EQ(total, 300u);

  std::promise<std::vector<Result<RedisReply>>> all;
  client->CommandAllMasters({"DBSIZE"}, [&](std::vector<Result<RedisReply>> v) {
    all.set_value(std::move(v));
  });
  auto results = all.get_future().get();
  ASSERT_EQ(results.size(), 3u);
  int64_t sum = 0;
  for (auto& r : results) {
    ASSERT_OK(r);
    sum += r->integer;
  }
  EXPECT_EQ(sum, 300);

  // Our slots are the server's.
  for (const char* key :
       {"ck:1", "foo{}{bar}", "{user1000}.following", "a{", "{}", "x"}) {
    auto slot = cluster_->node(0).Cli({"CLUSTER", "KEYSLOT", key});
    ASSERT_OK(slot);
    EXPECT_EQ(*slot, std::to_string(RedisKeySlot(key))) << key;
  }
  RedisHealth h = client->Health();
  EXPECT_TRUE(h.cluster);
  EXPECT_EQ(h.masters, 3u);
  EXPECT_EQ(h.failures, 0u);
  EXPECT_GE(h.topology_refreshes, 1u);
}

TEST_F(RedisClusterTest, DetectsAClusterFromOneSeed) {
  const std::string seed =
      "redis://127.0.0.1:" + std::to_string(cluster_->node(1).port());
  auto client = MakeClient(Options(seed));
  ASSERT_NE(client, nullptr);
  // CommandAllMasters waits for the detection: three masters, not one node.
  std::promise<std::vector<Result<RedisReply>>> all;
  client->CommandAllMasters({"PING"}, [&](std::vector<Result<RedisReply>> v) {
    all.set_value(std::move(v));
  });
  auto results = all.get_future().get();
  EXPECT_EQ(results.size(), 3u);
  for (int i = 0; i < 50; ++i) {
    const std::string k = "seed:" + std::to_string(i);
    ASSERT_OK(client->CommandSync({"SET", k, k}, 1));
    auto r = client->CommandSync({"GET", k}, 1);
    ASSERT_OK(r);
    EXPECT_FALSE(r->is_error()) << r->str;
    EXPECT_EQ(r->str, k);
  }
  RedisHealth h = client->Health();
  EXPECT_TRUE(h.cluster);
  EXPECT_EQ(h.masters, 3u);
}

TEST_F(RedisClusterTest, FollowsMovedWhileASlotMigrates) {
  auto client = MakeClient(Options(cluster_->url()));
  ASSERT_NE(client, nullptr);
  const std::vector<std::string> keys = FillSlot(*client, "moving", 40);
  const int slot = RedisKeySlot(keys[0]);
  auto from = cluster_->NodeOfSlot(slot);
  ASSERT_OK(from);
  const size_t to = (*from + 1) % cluster_->size();

  Reader reader;
  reader.Start(*client, keys);
  ASSERT_TRUE(WaitFor([&] { return reader.reads.load() > 40; }));
  ASSERT_OK(cluster_->MigrateSlot(slot, to));
  const int after = reader.reads.load();
  ASSERT_TRUE(WaitFor([&] { return reader.reads.load() > after + 80; }));
  reader.Stop();
  EXPECT_EQ(reader.errors.load(), 0) << reader.first_error;
  EXPECT_GT(client->Health().moved, 0u);
  EXPECT_EQ(client->Health().failures, 0u);
  auto owner = cluster_->NodeOfSlot(slot);
  ASSERT_OK(owner);
  EXPECT_EQ(*owner, to);
  // The map follows: no more redirections for that slot.
  const uint64_t moved = client->Health().moved;
  for (const std::string& k : keys)
    ASSERT_OK(client->CommandSync({"GET", k}, 1));
  EXPECT_EQ(client->Health().moved, moved);
}

TEST_F(RedisClusterTest, FollowsAskDuringAHalfDoneMigration) {
  auto client = MakeClient(Options(cluster_->url()));
  ASSERT_NE(client, nullptr);
  const std::vector<std::string> keys = FillSlot(*client, "asking", 40);
  const int slot = RedisKeySlot(keys[0]);
  auto from = cluster_->NodeOfSlot(slot);
  ASSERT_OK(from);
  const size_t to = (*from + 2) % cluster_->size();

  Reader reader;
  reader.Start(*client, keys);
  ASSERT_TRUE(WaitFor([&] { return reader.reads.load() > 40; }));
  ASSERT_OK(cluster_->MigrateSlot(slot, to, 500));
  reader.Stop();
  EXPECT_EQ(reader.errors.load(), 0) << reader.first_error;
  const RedisHealth h = client->Health();
  // During the pause some keys are on each side: those already moved are
  // answered with -ASK, which the client follows.
  EXPECT_GT(h.ask, 0u);
  EXPECT_EQ(h.failures, 0u);
  for (const std::string& k : keys) {
    auto r = client->CommandSync({"GET", k}, 1);
    ASSERT_OK(r);
    EXPECT_EQ(r->str, "v-" + k);
  }
}

// A master dies and its slots are taken over by another node, as a replica's
// promotion does. No node the client still reaches answers MOVED for those
// slots (nothing is sent there), so only the lost connection can tell the
// client to read the slots again. Before, it sent those slots to the dead
// address until that node came back, and the failures kept opening the
// breaker for the healthy masters too.
TEST_F(RedisClusterTest, FollowsAFailoverOfADeadMaster) {
  auto started = RedisCluster::Start(3);  // its own: this one loses a node
  ASSERT_OK(started);
  RedisCluster& cluster = **started;
  // redis-cli gives the second master the middle third of the slots.
  auto owner = cluster.NodeOfSlot(8000);
  ASSERT_OK(owner);
  ASSERT_EQ(*owner, 1u);
  auto client = MakeClient(Options(cluster.url(), 500));
  ASSERT_NE(client, nullptr);
  std::vector<std::string> moved_keys, kept_keys;
  for (int i = 0; moved_keys.size() < 20 || kept_keys.size() < 20; ++i) {
    const std::string k = "fo:" + std::to_string(i);
    const int slot = RedisKeySlot(k);
    auto& keys = slot >= 5461 && slot <= 10922 ? moved_keys : kept_keys;
    if (keys.size() < 20) keys.push_back(k);
  }
  for (const auto& k : moved_keys)
    ASSERT_OK(client->CommandSync({"SET", k, "1"}, 1));

  const std::string dead_id = cluster.node_id(1);
  cluster.node(1).Kill();
  ASSERT_OK(cluster.node(0).Cli({"CLUSTER", "FORGET", dead_id}));
  ASSERT_OK(cluster.node(2).Cli({"CLUSTER", "FORGET", dead_id}));
  ASSERT_OK(cluster.node(0).Cli({"CLUSTER", "ADDSLOTSRANGE", "5461", "10922"}));
  // (WaitUntilOk wants every node it started to be known.)
  const auto serves_all = [&](size_t i) {
    auto info = cluster.node(i).Cli({"CLUSTER", "INFO"});
    return info.ok() && info->find("cluster_state:ok") != std::string::npos &&
           info->find("cluster_slots_ok:16384") != std::string::npos;
  };
  ASSERT_TRUE(WaitFor([&] { return serves_all(0) && serves_all(2); },
                      std::chrono::seconds(20)));

  // Within a few reconnection attempts every key is served again, on the
  // node that took the slots over and on the untouched one.
  const auto all_ok = [&] {
    for (const auto* keys : {&moved_keys, &kept_keys}) {
      for (const std::string& k : *keys) {
        auto r = client->CommandSync({"SET", k, "2"}, 1);
        if (!r.ok() || r->is_error()) return false;
      }
    }
    return true;
  };
  EXPECT_TRUE(WaitFor(all_ok, std::chrono::seconds(15)));
  for (const std::string& k : moved_keys) {
    auto r = client->CommandSync({"GET", k}, 1);
    ASSERT_OK(r);
    EXPECT_EQ(r->str, "2") << k;
  }
  const RedisHealth h = client->Health();
  EXPECT_EQ(h.masters, 2u);
  EXPECT_GE(h.topology_refreshes, 2u);
  EXPECT_FALSE(h.breaker_open);
}

}  // namespace
}  // namespace llmcache::net
