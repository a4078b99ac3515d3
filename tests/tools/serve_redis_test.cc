// Several `llmcache serve --redis` processes (the built binary) sharing real
// redis-server processes, in front of the fake OpenRouter run here: a miss
// on one is a hit on another; a flush through one's admin endpoint reaches
// the others (also their memory tiers); TTLs; per-key scopes stay apart;
// Redis Cluster; Redis killed, slow, refusing the password; and one upstream
// call for identical misses on different instances, also when the leader
// dies mid-call.

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fake_openrouter.h"
#include "testing/http_client.h"
#include "testing/redis_server.h"
#include "testing/serve_process.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "testing/wait.h"

namespace llmcache {
namespace {

using ::llmcache::testing::HttpHeaders;
using ::llmcache::testing::RedisCluster;
using ::llmcache::testing::RedisServer;
using ::llmcache::testing::ServeProcess;
using ::llmcache::testing::WaitFor;
using Reply = ::llmcache::testing::HttpReply;
using namespace std::chrono_literals;

constexpr char kAdmin[] = "admin-token-for-tests";

Reply Post(uint16_t port, const std::string& body,
           const std::string& api_key = "k") {
  return ::llmcache::testing::HttpSend(
      port, "POST", "/v1/chat/completions", body,
      {{"Authorization", "Bearer " + api_key}}, 60s);
}

Reply Get(uint16_t port, const std::string& target) {
  return ::llmcache::testing::HttpSend(port, "GET", target, "", {}, 20s);
}

std::string Body(const std::string& model, const std::string& text = "hi") {
  return R"({"model":")" + model +
         R"(","temperature":0,"messages":[{"role":"user","content":")" + text +
         R"("}]})";
}

class ServeRedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto f = fake::FakeOpenRouter::Start(fake::FakeOptions{});
    ASSERT_OK(f);
    fake_ = std::move(f).value();
  }

  // `llmcache serve` on the shared tier at `url`, on the database `db`
  // (in memory when empty).
  std::unique_ptr<ServeProcess> Serve(
      const std::string& url, std::vector<std::string> extra = {},
      const std::string& db = "", std::map<std::string, std::string> env = {}) {
    std::vector<std::string> a = {
        "serve", "--listen", "127.0.0.1:0", "--upstream", fake_->base_url(),
        "--threads", "2", "--admin-token", kAdmin, "--redis", url,
        // A loaded machine under a sanitizer.
        "--redis-timeout-ms", "1000", "--redis-lease-ms", "1000"};
    if (!db.empty()) {
      a.push_back("--db");
      a.push_back(db);
    } else {
      a.push_back("--memory");
    }
    a.insert(a.end(), extra.begin(), extra.end());
    return std::make_unique<ServeProcess>(dir_, a, env);
  }

  // A redis-server for this test (stopped with it); null if it cannot start.
  RedisServer* StartRedis(llmcache::testing::RedisServerOptions o = {}) {
    auto r = RedisServer::Start(std::move(o));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return nullptr;
    redis_ = std::move(*r);
    return redis_.get();
  }

  static uint16_t Listening(ServeProcess& p) {
    const uint16_t port = p.WaitListening(60s);
    EXPECT_NE(port, 0) << p.Err();
    return port;
  }

  llmcache::testing::TempDir dir_;
  std::unique_ptr<fake::FakeOpenRouter> fake_;
  std::unique_ptr<RedisServer> redis_;
};

TEST_F(ServeRedisTest, TwoInstancesShareOneRedisAndItsFlushes) {
  RedisServer* redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  auto a = Serve(redis->url(), {}, dir_.Sub("db-a"));
  auto b = Serve(redis->url());
  const uint16_t pa = Listening(*a), pb = Listening(*b);
  ASSERT_TRUE(pa && pb);

  const Reply miss = Post(pa, Body("m/shared"));
  ASSERT_EQ(miss.status, 200) << miss.body;
  EXPECT_EQ(miss.header("x-cache"), "MISS");
  // The entry lands in Redis (written after the answer, asynchronously).
  ASSERT_TRUE(WaitFor([&] {
    return redis
               ->Cli({"EXISTS",
                      "llmcache:e:{" + miss.header("x-cache-key") + "}"})
               .value_or("0") == "1";
  }));
  const Reply hit = Post(pb, Body("m/shared"));
  EXPECT_EQ(hit.status, 200);
  EXPECT_EQ(hit.header("x-cache"), "HIT");
  EXPECT_EQ(hit.body, miss.body);
  EXPECT_EQ(fake_->completions(), 1u);

  // A stream request on a third instance is answered from the shared
  // tier as events an SDK reassembles.
  {
    auto c = Serve(redis->url());
    const uint16_t pc = Listening(*c);
    ASSERT_NE(pc, 0);
    std::string stream_body = Body("m/shared");
    stream_body.insert(stream_body.size() - 1, R"(,"stream":true)");
    const Reply events = Post(pc, stream_body);
    EXPECT_EQ(events.status, 200);
    EXPECT_EQ(events.header("x-cache"), "HIT");
    EXPECT_NE(events.header("content-type").find("text/event-stream"),
              std::string::npos);
    EXPECT_NE(events.body.find("data: [DONE]"), std::string::npos)
        << events.body;
    EXPECT_EQ(fake_->completions(), 1u);
  }

  // Another API key is another tenant: no hit through the shared tier.
  const Reply other = Post(pb, Body("m/shared"), "another-tenant");
  EXPECT_EQ(other.header("x-cache"), "MISS");
  EXPECT_EQ(fake_->completions(), 2u);

  // B now answers from its memory tier; a flush through A's admin endpoint
  // reaches B (pub/sub) and drops the model there too.
  EXPECT_EQ(Post(pb, Body("m/shared")).header("x-cache"), "HIT");
  const Reply flush = ::llmcache::testing::HttpSend(
      pa, "POST", "/admin/flush?model=m/shared", "",
      {{"Authorization", std::string("Bearer ") + kAdmin}}, 20s);
  ASSERT_EQ(flush.status, 200) << flush.body;
  EXPECT_NE(flush.body.find("\"shared\":{\"generation\":1}"), std::string::npos)
      << flush.body;
  ASSERT_TRUE(WaitFor([&] {
    return Get(pb, "/stats").body.find("\"remote_flushes\":1") !=
           std::string::npos;
  }));
  EXPECT_EQ(Post(pb, Body("m/shared")).header("x-cache"), "MISS");
  std::this_thread::sleep_for(300ms);  // B's write lands (asynchronous)
  EXPECT_EQ(Post(pa, Body("m/shared")).header("x-cache"), "HIT");  // B's new
  EXPECT_EQ(fake_->completions(), 3u);

  // Health and metrics show the shared tier.
  const Reply health = Get(pb, "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_NE(health.body.find("\"shared\":{\"backend\":\"redis\""),
            std::string::npos)
      << health.body;
  EXPECT_NE(health.body.find("\"available\":true"), std::string::npos);
  EXPECT_GE(ServeProcess::Metric(pb, "llmcache_shared_hits_total"), 1);
  EXPECT_EQ(ServeProcess::Metric(pb, "llmcache_shared_available"), 1);

  // Fleet statistics from the CLI, without any local database.
  ::llmcache::testing::ProcessResult stats = ::llmcache::testing::RunProcess(
      {LLMCACHE_BIN, "stats", "--redis", redis->url(), "--json"});
  // (the counters are summed every second)
  ASSERT_TRUE(WaitFor(
      [&] {
        stats = ::llmcache::testing::RunProcess(
            {LLMCACHE_BIN, "stats", "--redis", redis->url(), "--json"});
        return stats.exit_code == 0 &&
               stats.out.find("\"hits\":3") != std::string::npos;
      },
      15s))
      << stats.out << stats.err;
  EXPECT_NE(stats.out.find("\"model\":\"m/shared\""), std::string::npos);
  EXPECT_NE(stats.out.find("\"generation\":1"), std::string::npos);
  // The text table lines up whatever the model names: padded by display
  // width (here two-byte letters), not bytes.
  ASSERT_EQ(Post(pa, Body("m/\u00fcn\u00efc\u00f6de")).status, 200);
  const auto columns = [](std::string_view line) {
    size_t n = 0;
    for (char c : line) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    return n;
  };
  ::llmcache::testing::ProcessResult text;
  ASSERT_TRUE(WaitFor(
      [&] {
        text = ::llmcache::testing::RunProcess(
            {LLMCACHE_BIN, "stats", "--redis", redis->url()});
        return text.out.find("m/\u00fcn\u00efc\u00f6de") != std::string::npos;
      },
      15s))
      << text.out << text.err;
  std::vector<std::string_view> rows;
  for (std::string_view rest = text.out; !rest.empty();) {
    const size_t nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    if (line.starts_with("model") || line.starts_with("m/"))
      rows.push_back(line);
    rest = nl == std::string_view::npos ? "" : rest.substr(nl + 1);
  }
  ASSERT_EQ(rows.size(), 3u) << text.out;
  for (std::string_view row : rows) {
    EXPECT_EQ(columns(row), columns(rows[0])) << text.out;
  }

  a->Signal(SIGTERM);
  b->Signal(SIGTERM);
  EXPECT_EQ(a->Wait(), 0) << a->Err();
  EXPECT_EQ(b->Wait(), 0) << b->Err();
}

TEST_F(ServeRedisTest, AFlushMissedWhileDownIsAppliedToTheDiskAtStart) {
  RedisServer* redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  const std::string db = dir_.Sub("restarting-db");
  auto a = Serve(redis->url(), {}, db);
  const uint16_t pa = Listening(*a);
  ASSERT_NE(pa, 0);
  ASSERT_EQ(Post(pa, Body("m/missed")).header("x-cache"), "MISS");
  ASSERT_EQ(Post(pa, Body("m/kept")).header("x-cache"), "MISS");
  a->Signal(SIGTERM);
  ASSERT_EQ(a->Wait(), 0) << a->Err();

  // While A is down, B flushes one model for the fleet.
  auto b = Serve(redis->url());
  const uint16_t pb = Listening(*b);
  ASSERT_NE(pb, 0);
  const Reply flush = ::llmcache::testing::HttpSend(
      pb, "POST", "/admin/flush?model=m/missed", "",
      {{"Authorization", std::string("Bearer ") + kAdmin}}, 20s);
  ASSERT_EQ(flush.status, 200) << flush.body;

  // A starts again on its database: the flushed model is gone from its
  // disk too; the other is still a (local) hit.
  auto again = Serve(redis->url(), {}, db);
  const uint16_t p2 = Listening(*again);
  ASSERT_NE(p2, 0);
  EXPECT_EQ(Post(p2, Body("m/missed")).header("x-cache"), "MISS");
  EXPECT_EQ(Post(p2, Body("m/kept")).header("x-cache"), "HIT");
  EXPECT_EQ(ServeProcess::Metric(p2, "llmcache_shared_hits_total"), 0);
  EXPECT_EQ(fake_->completions(), 3u);
}

TEST_F(ServeRedisTest, TheCliPurgesAndListsTheFleetWithoutADatabase) {
  using ::llmcache::testing::RunProcess;
  RedisServer* redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  auto a = Serve(redis->url());
  const uint16_t pa = Listening(*a);
  ASSERT_NE(pa, 0);
  const Reply miss = Post(pa, Body("m/cli"));
  ASSERT_EQ(miss.header("x-cache"), "MISS");
  ASSERT_EQ(Post(pa, Body("m/cli")).header("x-cache"), "HIT");

  // Purge one key (DEL), then the model (a new generation) for the fleet.
  auto key = RunProcess({LLMCACHE_BIN, "purge", "--redis", redis->url(),
                         "--key", miss.header("x-cache-key"), "-y", "--json"});
  EXPECT_EQ(key.exit_code, 0) << key.err;
  EXPECT_NE(key.out.find("\"removed\":1"), std::string::npos) << key.out;
  // Again: not stored any more, "not found" (exit 1), as in a database.
  auto again = RunProcess({LLMCACHE_BIN, "purge", "--redis", redis->url(),
                           "--key", miss.header("x-cache-key"), "-y"});
  EXPECT_EQ(again.exit_code, 1) << again.err;
  EXPECT_NE(again.out.find("not found"), std::string::npos) << again.out;
  auto model = RunProcess({LLMCACHE_BIN, "purge", "--redis", redis->url(),
                           "--model", "m/cli:free", "-y", "--json"});
  EXPECT_EQ(model.exit_code, 0) << model.err;
  EXPECT_NE(model.out.find("\"model\":\"m/cli\""), std::string::npos)
      << model.out;
  EXPECT_NE(model.out.find("\"generation\":1"), std::string::npos);
  // The proxy heard of it: its memory tier no longer answers.
  ASSERT_TRUE(WaitFor([&] {
    return ServeProcess::Metric(pa, "llmcache_shared_remote_flushes_total") ==
           1;
  }));
  EXPECT_EQ(Post(pa, Body("m/cli")).header("x-cache"), "MISS");

  ASSERT_TRUE(WaitFor(
      [&] {
        auto models = RunProcess(
            {LLMCACHE_BIN, "models", "--redis", redis->url(), "--json"});
        return models.exit_code == 0 &&
               models.out.find("\"model\":\"m/cli\"") != std::string::npos &&
               models.out.find("\"hits\":1") != std::string::npos;
      },
      15s));
  // Export and verify read the shared tier (SCAN + GET); what is exported
  // imports into a local database.
  ASSERT_EQ(Post(pa, Body("m/cli", "second")).header("x-cache"), "MISS");
  ASSERT_EQ(Post(pa, Body("m/other", "third")).header("x-cache"), "MISS");
  ASSERT_TRUE(WaitFor([&] {
    auto v =
        RunProcess({LLMCACHE_BIN, "verify", "--redis", redis->url(), "--json"});
    return v.out.find("\"checked\":3") != std::string::npos;
  }));
  const std::string exported = dir_.Sub("shared.jsonl");
  auto exp = RunProcess({LLMCACHE_BIN, "export", "--redis", redis->url(),
                         "--model", "m/cli", "-o", exported});
  EXPECT_EQ(exp.exit_code, 0) << exp.err;
  EXPECT_NE(exp.err.find("exported 2 entries"), std::string::npos) << exp.err;
  auto imp = RunProcess(
      {LLMCACHE_BIN, "import", "--db", dir_.Sub("imported"), exported});
  EXPECT_EQ(imp.exit_code, 0) << imp.err;
  auto ls =
      RunProcess({LLMCACHE_BIN, "ls", "--db", dir_.Sub("imported"), "--json"});
  EXPECT_NE(ls.out.find("\"model\":\"m/cli\""), std::string::npos) << ls.out;
  // A value that is not an entry is reported, not skipped silently.
  ASSERT_OK(redis->Cli(
      {"SET", "llmcache:e:{" + std::string(64, 'a') + "}", "garbage"}));
  auto verify =
      RunProcess({LLMCACHE_BIN, "verify", "--redis", redis->url(), "--json"});
  EXPECT_EQ(verify.exit_code, 1);
  EXPECT_NE(verify.out.find("\"problems\":1"), std::string::npos) << verify.out;
  EXPECT_NE(verify.out.find(std::string(64, 'a')), std::string::npos);

  // Selectors the shared tier cannot honour, a bad URL, no server.
  EXPECT_EQ(RunProcess({LLMCACHE_BIN, "purge", "--redis", redis->url(),
                        "--expired", "-y"})
                .exit_code,
            2);
  auto bad = RunProcess({LLMCACHE_BIN, "stats", "--redis", "http://x"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--redis"), std::string::npos) << bad.err;
  auto down =
      RunProcess({LLMCACHE_BIN, "stats", "--redis", "redis://127.0.0.1:1"});
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_NE(down.err.find("shared tier"), std::string::npos) << down.err;
}

TEST_F(ServeRedisTest, EntriesExpireWithTheirTtlOnEveryTier) {
  RedisServer* redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  auto a = Serve(redis->url(), {"--ttl", "2"});
  auto b = Serve(redis->url(), {"--ttl", "2"});
  const uint16_t pa = Listening(*a), pb = Listening(*b);
  ASSERT_TRUE(pa && pb);
  const Reply miss = Post(pa, Body("m/ttl"));
  ASSERT_EQ(miss.header("x-cache"), "MISS");
  const std::string key = "llmcache:e:{" + miss.header("x-cache-key") + "}";
  ASSERT_TRUE(WaitFor([&] {
    return redis->Cli({"EXISTS", key}).value_or("0") == "1";
  }));
  const int64_t pttl = std::stoll(redis->Cli({"PTTL", key}).value_or("-9"));
  EXPECT_GT(pttl, 0);
  EXPECT_LE(pttl, 2000);
  EXPECT_EQ(Post(pb, Body("m/ttl")).header("x-cache"), "HIT");
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(redis->Cli({"EXISTS", key}).value_or("?"), "0");
  EXPECT_EQ(Post(pb, Body("m/ttl")).header("x-cache"), "MISS");
  EXPECT_EQ(fake_->completions(), 2u);
}

TEST_F(ServeRedisTest, ClusterSpreadsEntriesOverEveryMaster) {
  auto c = RedisCluster::Start(3);
  ASSERT_TRUE(c.ok()) << c.status();
  std::unique_ptr<RedisCluster> cluster = std::move(*c);
  auto a = Serve(cluster->url());
  // B knows one node only: the cluster is found from the server.
  auto b =
      Serve("redis://127.0.0.1:" + std::to_string(cluster->node(2).port()));
  const uint16_t pa = Listening(*a), pb = Listening(*b);
  ASSERT_TRUE(pa && pb);
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(Post(pa, Body("m/cluster", "q" + std::to_string(i))).status, 200);
  }
  ASSERT_TRUE(WaitFor([&] {
    uint64_t total = 0;
    for (size_t n = 0; n < cluster->size(); ++n) {
      total += cluster->DbSize(n).value_or(0);
    }
    return total >= 30;
  }));
  for (size_t n = 0; n < cluster->size(); ++n) {
    EXPECT_GT(cluster->DbSize(n).value_or(0), 3u) << "master " << n;
  }
  for (int i = 0; i < 30; ++i) {
    EXPECT_EQ(
        Post(pb, Body("m/cluster", "q" + std::to_string(i))).header("x-cache"),
        "HIT")
        << i;
  }
  EXPECT_EQ(fake_->completions(), 30u);
  EXPECT_NE(Get(pb, "/healthz").body.find("\"cluster\":true"),
            std::string::npos);
  // Export walks every master.
  auto exp = ::llmcache::testing::RunProcess({LLMCACHE_BIN, "export", "--redis",
                                              cluster->url(), "-o",
                                              dir_.Sub("cluster.jsonl")});
  EXPECT_EQ(exp.exit_code, 0) << exp.err;
  EXPECT_NE(exp.err.find("exported 30 entries"), std::string::npos) << exp.err;
}

TEST_F(ServeRedisTest, RedisKilledDuringTrafficEveryRequestIsAnswered) {
  RedisServer* redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  auto a = Serve(redis->url());
  auto b = Serve(redis->url());
  const uint16_t pa = Listening(*a), pb = Listening(*b);
  ASSERT_TRUE(pa && pb);
  std::atomic<bool> stop{false};
  std::atomic<int> answered{0}, failed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 2; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        const Reply rep =
            Post(t == 0 ? pa : pb, Body("m/kill", std::to_string(i % 25)));
        (rep.status == 200 ? answered : failed)++;
      }
    });
  }
  std::this_thread::sleep_for(500ms);
  redis->Kill();
  std::this_thread::sleep_for(1500ms);
  ASSERT_OK(redis->Restart());
  std::this_thread::sleep_for(1500ms);
  stop = true;
  for (std::thread& c : clients) c.join();
  EXPECT_GT(answered.load(), 20);
  EXPECT_EQ(failed.load(), 0);
  // Sharing resumes by itself (a fresh Redis: new entries).
  ASSERT_TRUE(WaitFor(
      [&] {
        static int n = 0;
        const std::string text = "after-" + std::to_string(++n);
        if (Post(pa, Body("m/kill", text)).status != 200) return false;
        std::this_thread::sleep_for(100ms);
        return Post(pb, Body("m/kill", text)).header("x-cache") == "HIT";
      },
      20s));
  EXPECT_GE(ServeProcess::Metric(pa, "llmcache_shared_reconnects_total"), 1);
}

TEST_F(ServeRedisTest, ASlowRedisDoesNotHoldRequestsBeyondItsDeadline) {
  RedisServer* redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  auto a = std::make_unique<ServeProcess>(
      dir_,
      std::vector<std::string>{"serve", "--listen", "127.0.0.1:0", "--upstream",
                               fake_->base_url(), "--memory", "--redis",
                               redis->url(), "--redis-timeout-ms", "200"});
  const uint16_t pa = Listening(*a);
  ASSERT_NE(pa, 0);
  std::thread sleeper([&] { (void)redis->Cli({"DEBUG", "SLEEP", "3"}); });
  std::this_thread::sleep_for(200ms);
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const Reply rep = Post(pa, Body("m/slow", std::to_string(i)));
    EXPECT_EQ(rep.status, 200);
    EXPECT_EQ(rep.header("x-cache"), "MISS");
    // Far below the 3 s Redis is asleep: each operation gives up at 200 ms.
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2500ms);
  }
  sleeper.join();
  EXPECT_GE(ServeProcess::Metric(pa, "llmcache_shared_timeouts_total") +
                ServeProcess::Metric(pa, "llmcache_shared_rejected_total"),
            1);
}

TEST_F(ServeRedisTest, AWrongPasswordIsServedThroughAndNeverLogged) {
  llmcache::testing::RedisServerOptions so;
  so.password = "the-right-one";
  RedisServer* redis = StartRedis(so);
  ASSERT_NE(redis, nullptr);
  auto a = Serve("redis://127.0.0.1:" + std::to_string(redis->port()), {}, "",
                 {{"LLMCACHE_REDIS_PASSWORD", "WRONG-PASSWORD-xyzzy"}});
  const uint16_t pa = Listening(*a);
  ASSERT_NE(pa, 0);
  EXPECT_EQ(Post(pa, Body("m/auth")).status, 200);
  EXPECT_EQ(Post(pa, Body("m/auth")).header("x-cache"), "HIT");  // local
  const Reply health = Get(pa, "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_NE(health.body.find("\"status\":\"degraded\""), std::string::npos)
      << health.body;
  EXPECT_NE(health.body.find("\"available\":false"), std::string::npos);
  a->Signal(SIGTERM);
  a->Wait();
  EXPECT_EQ(a->Err().find("WRONG-PASSWORD"), std::string::npos) << a->Err();
  EXPECT_EQ(a->Out().find("WRONG-PASSWORD"), std::string::npos);
  EXPECT_EQ(health.body.find("WRONG-PASSWORD"), std::string::npos);
}

// An ACL user in the URL with its password from the environment (kept out
// of ps): "redis://user:@host". Without any password it is a usage error.
TEST_F(ServeRedisTest, AnAclUsersPasswordComesFromTheEnvironment) {
  RedisServer* redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  ASSERT_OK(redis->Cli({"ACL", "SETUSER", "fleet", "on", ">acl-secret-42",
                        "~llmcache:*", "&llmcache:*", "+@all"}));
  const std::string url =
      "redis://fleet:@127.0.0.1:" + std::to_string(redis->port());
  auto a = Serve(url, {}, "", {{"LLMCACHE_REDIS_PASSWORD", "acl-secret-42"}});
  const uint16_t pa = Listening(*a);
  ASSERT_NE(pa, 0);
  EXPECT_EQ(Post(pa, Body("m/acl")).status, 200);
  ASSERT_TRUE(WaitFor([&] {  // the entry, written as that user
    auto keys = redis->Cli({"KEYS", "llmcache:e:*"});
    return keys.ok() && keys->find("llmcache:e:") != std::string::npos;
  }));
  const Reply health = Get(pa, "/healthz");
  EXPECT_NE(health.body.find("\"available\":true"), std::string::npos)
      << health.body;
  a->Signal(SIGTERM);
  a->Wait();
  EXPECT_EQ(a->Err().find("acl-secret-42"), std::string::npos) << a->Err();

  auto none = Serve(url);
  EXPECT_EQ(none->Wait(), 2);
  EXPECT_NE(none->Err().find("names the user 'fleet' but no password"),
            std::string::npos)
      << none->Err();
}

TEST_F(ServeRedisTest, IdenticalMissesOnTwoInstancesMakeOneUpstreamCall) {
  RedisServer* redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  auto a = Serve(redis->url());
  auto b = Serve(redis->url());
  const uint16_t pa = Listening(*a), pb = Listening(*b);
  ASSERT_TRUE(pa && pb);
  std::vector<std::future<Reply>> replies;
  for (int i = 0; i < 8; ++i) {
    const uint16_t port = i % 2 == 0 ? pa : pb;
    replies.push_back(std::async(std::launch::async, [port] {
      return Post(port, Body("fake/delay-800", "the same question"));
    }));
  }
  std::string body;
  for (auto& f : replies) {
    const Reply rep = f.get();
    ASSERT_EQ(rep.status, 200) << rep.body;
    if (body.empty()) body = rep.body;
    EXPECT_EQ(rep.body, body);
  }
  EXPECT_EQ(fake_->completions(), 1u);
}

TEST_F(ServeRedisTest, ALeaderKilledMidCallDoesNotHangItsWaiters) {
  RedisServer* redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  auto a = Serve(redis->url());
  auto b = Serve(redis->url());
  const uint16_t pa = Listening(*a), pb = Listening(*b);
  ASSERT_TRUE(pa && pb);
  const std::string body = Body("fake/delay-2000", "slow question");
  auto leader = std::async(std::launch::async, [&] { return Post(pa, body); });
  // A holds the lease (one key "llmcache:l:{...}").
  ASSERT_TRUE(WaitFor([&] {
    return redis->Cli({"KEYS", "llmcache:l:*"}).value_or("").size() > 5;
  }));
  const auto start = std::chrono::steady_clock::now();
  auto waiter = std::async(std::launch::async, [&] { return Post(pb, body); });
  std::this_thread::sleep_for(300ms);
  a->Signal(SIGKILL);
  const Reply rep = waiter.get();
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(rep.status, 200) << rep.body;
  // The lease (1 s) ends, B asks upstream itself (2 s): far below the
  // 60 s bound of a wait.
  EXPECT_LT(took, 15s);
  EXPECT_EQ(leader.get().status, 0);  // A died before answering
  EXPECT_EQ(fake_->completions(), 2u);
}

TEST_F(ServeRedisTest, StoppedWhileWaitingForAnotherLeadItExitsCleanly) {
  RedisServer* redis = StartRedis();
  ASSERT_NE(redis, nullptr);
  auto a = Serve(redis->url());
  auto b = Serve(redis->url(), {"--shutdown-grace", "1"});
  const uint16_t pa = Listening(*a), pb = Listening(*b);
  ASSERT_TRUE(pa && pb);
  const std::string body = Body("fake/delay-6000", "a long one");
  auto leader = std::async(std::launch::async, [&] { return Post(pa, body); });
  ASSERT_TRUE(WaitFor([&] {
    return redis->Cli({"KEYS", "llmcache:l:*"}).value_or("").size() > 5;
  }));
  // B waits for A's answer; it is stopped meanwhile. The grace period cuts
  // the request; the shared tier then ends the wait (it would go upstream
  // alone) while B's own io_contexts are still there to take its answer.
  auto waiter = std::async(std::launch::async, [&] { return Post(pb, body); });
  ASSERT_TRUE(WaitFor([&] {
    return ServeProcess::Metric(pb, "llmcache_shared_lookups_total") >= 1;
  }));
  std::this_thread::sleep_for(300ms);  // its lead: the lease is A's
  b->Signal(SIGTERM);
  EXPECT_EQ(b->Wait(), 0) << b->Err();
  EXPECT_EQ(b->Err().find("AddressSanitizer"), std::string::npos) << b->Err();
  EXPECT_NE(waiter.get().status, 200);  // cut by the grace period
  // A answers its own request, once.
  const Reply led = leader.get();
  EXPECT_EQ(led.status, 200) << led.body;
  EXPECT_EQ(fake_->completions(), 1u);
}

}  // namespace
}  // namespace llmcache
