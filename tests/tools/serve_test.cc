// `llmcache serve` as a subprocess (the built binary), in front of the fake
// OpenRouter run in this process: start-up and /healthz, configuration by
// flags, environment and config file with their precedence, a locked
// database, a port in use, a graceful SIGTERM with requests in flight, the
// access settings (origins, hosts, client token, TTL ceiling), the
// open-file limit (raised at start; connections capped below a low one) and
// the disk budget.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "fake_openrouter.h"
#include "llmcache/cache.h"
#include "testing/http_client.h"
#include "testing/serve_process.h"
#include "testing/status_matchers.h"
#include "testing/subprocess.h"
#include "testing/temp_dir.h"
#include "testing/test_cache.h"
#include "testing/wait.h"

namespace llmcache {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using ::llmcache::testing::HttpHeaders;
using ::llmcache::testing::WaitFor;
using Reply = ::llmcache::testing::HttpReply;
using namespace std::chrono_literals;

// A request to `llmcache serve` on a fresh connection. The deadline is
// generous: the server is a separate process (under a sanitizer, slow).
Reply Request(uint16_t port, std::string_view method, const std::string& target,
              const std::string& body = "", const HttpHeaders& headers = {}) {
  return ::llmcache::testing::HttpSend(port, method, target, body, headers,
                                       20s);
}

std::string Body(const std::string& model, const std::string& text = "hi") {
  return R"({"model":")" + model +
         R"(","temperature":0,"messages":[{"role":"user","content":")" + text +
         R"("}]})";
}

using Process = ::llmcache::testing::ServeProcess;

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto f = fake::FakeOpenRouter::Start(fake::FakeOptions{});
    ASSERT_OK(f);
    fake_ = std::move(f).value();
  }

  std::vector<std::string> Args(std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {
        "serve",      "--listen",        "127.0.0.1:0", "--db", dir_.Sub("db"),
        "--upstream", fake_->base_url(), "--threads",   "2"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  // POST /admin/purge?expired=1 with `token`: 200 if it is the admin token.
  int AdminStatus(uint16_t port, const std::string& token) {
    return Request(port, "POST", "/admin/purge?expired=1", "",
                   {{"Authorization", "Bearer " + token}})
        .status;
  }

  llmcache::testing::TempDir dir_;
  std::unique_ptr<fake::FakeOpenRouter> fake_;
};

TEST_F(ServeTest, HelpExitsZero) {
  Process p(dir_, {"serve", "--help"});
  EXPECT_EQ(p.Wait(), 0);
  const std::string out = p.Out();
  for (const char* flag : {"--listen",
                           "--db",
                           "--upstream",
                           "--threads",
                           "--config",
                           "--admin-token",
                           "--shared-cache",
                           "--mode",
                           "--ttl",
                           "--namespace",
                           "--max-body-bytes",
                           "--max-connections",
                           "--log-level",
                           "--memory",
                           "--ca-file",
                           "--api-key",
                           "--shutdown-grace",
                           "--allow-origin",
                           "--allow-host",
                           "--client-token",
                           "--max-ttl",
                           "--max-disk-bytes",
                           "--prompt-cache",
                           "--flush-on-drift",
                           "--pricing-refresh",
                           "--open-operator-views"}) {
    EXPECT_NE(out.find(flag), std::string::npos) << flag;
  }
}

TEST_F(ServeTest, ServesHealthzAndCachesThenStopsOnSigterm) {
  Process p(dir_, Args({"--api-key", "sk-SERVER-SECRET-KEY"}));
  const uint16_t port = p.WaitListening();
  ASSERT_NE(port, 0) << p.Err();
  const Reply h = Request(port, "GET", "/healthz");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body, R"({"status":"ok"})");
  EXPECT_EQ(Request(port, "POST", "/v1/chat/completions", Body("m/a"))
                .header("x-cache"),
            "MISS");
  EXPECT_EQ(Request(port, "POST", "/v1/chat/completions", Body("m/a"))
                .header("x-cache"),
            "HIT");
  EXPECT_EQ(fake_->completions(), 1u);
  EXPECT_EQ(fake_->last_authorization(), "Bearer sk-SERVER-SECRET-KEY");
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(), 0) << p.Err();
  const std::string err = p.Err();
  EXPECT_NE(err.find("POST /v1/chat/completions 200 HIT"), std::string::npos)
      << err;
  EXPECT_EQ(err.find("SERVER-SECRET"), std::string::npos) << err;
}

TEST_F(ServeTest, CliReadsTheLiveDatabaseAndItsMutatingVerbsExitThree) {
  Process p(dir_, Args());
  const uint16_t port = p.WaitListening();
  ASSERT_NE(port, 0) << p.Err();
  const Reply miss = Request(port, "POST", "/v1/chat/completions",
                             Body("m/live"), {{"Authorization", "Bearer k"}});
  ASSERT_EQ(miss.status, 200) << miss.body;
  ASSERT_EQ(miss.header("x-cache"), "MISS");
  // A read verb sees the proxy's write while the proxy holds the database.
  Process ls(dir_, {"ls", "--db", dir_.Sub("db"), "--json"});
  ASSERT_EQ(ls.Wait(), 0) << ls.Err();
  EXPECT_NE(ls.Out().find("\"model\":\"m/live\""), std::string::npos)
      << ls.Out();
  // A mutating verb is refused, and told where the admin endpoint is.
  Process purge(dir_, {"purge", "--db", dir_.Sub("db"), "--all", "--yes"});
  EXPECT_EQ(purge.Wait(), 3);
  const std::string err = purge.Err();
  EXPECT_NE(err.find("in use by process"), std::string::npos) << err;
  EXPECT_NE(err.find("serve"), std::string::npos) << err;
  // The address it bound (it was started with port 0), from the file it
  // wrote once listening; removed when it stops.
  EXPECT_NE(
      err.find("http://127.0.0.1:" + std::to_string(port) + "/admin/purge"),
      std::string::npos)
      << err;
  // A purge is pointed at the same purge through the proxy.
  Process by_ns(dir_, {"purge", "--db", dir_.Sub("db"), "--namespace",
                       "my docs", "--yes"});
  EXPECT_EQ(by_ns.Wait(), 3);
  EXPECT_NE(by_ns.Err().find("/admin/purge?namespace=my%20docs'"),
            std::string::npos)
      << by_ns.Err();
  EXPECT_NE(err.find("/admin/purge?all=1'"), std::string::npos) << err;
  // A compaction is pointed at the proxy's own.
  Process compact(dir_, {"compact", "--db", dir_.Sub("db")});
  EXPECT_EQ(compact.Wait(), 3);
  const std::string compact_err = compact.Err();
  EXPECT_NE(compact_err.find("http://127.0.0.1:" + std::to_string(port) +
                             "/admin/compact'"),
            std::string::npos)
      << compact_err;
  EXPECT_EQ(compact_err.find("/admin/purge"), std::string::npos) << compact_err;
  EXPECT_TRUE(std::filesystem::exists(dir_.Sub("db") + "/LLMCACHE-SERVE"));
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(), 0) << p.Err();
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("db") + "/LLMCACHE-SERVE"));
}

// `llmcache warm` on a database the proxy holds: refused, with the hint to
// send through the proxy; `warm --proxy` then reads the database to skip what
// is cached (uncounted: the proxy's hit counter does not move for those) and
// sends the rest to the proxy, with its access token, namespace and TTL.
TEST_F(ServeTest, WarmSendsThroughTheProxyThatHoldsTheDatabase) {
  Process p(dir_, Args({"--client-token", "tok-warm"}));
  const uint16_t port = p.WaitListening();
  ASSERT_NE(port, 0) << p.Err();
  const std::string proxy = "http://127.0.0.1:" + std::to_string(port);
  const std::string file = dir_.Sub("warm.jsonl");
  std::ofstream(file)
      << Body("m/warm", "one") << "\n"
      << Body("m/warm", "two") << "\n"
      << R"({"model":"m/warm","temperature":0.7,"messages":[{"role":"user","content":"hot"}]})"
      << "\n"
      << R"({"model":"m/warm","temperature":0,"stream":true,"messages":[{"role":"user","content":"streamed"}]})"
      << "\n"
      << R"({"endpoint":"embeddings","body":{"model":"m/emb","input":["a","b"]}})"
      << "\n"
      // A seed that a rewrite through a double would change: sent as the
      // stream it asks for.
      << R"({"model":"m/warm","temperature":0,"seed":123456789012345678901,"stream":true,"messages":[{"role":"user","content":"seeded"}]})"
      << "\n"
      // The first line again: sent once.
      << Body("m/warm", "one")
      << "\n"
      // Empty answers, which the proxy does not store: told by its
      // X-Cache-Stored, and for the stream by the database afterwards.
      << Body("fake/empty", "nothing") << "\n"
      << R"({"model":"fake/empty","temperature":0,"seed":123456789012345678901,"stream":true,"messages":[{"role":"user","content":"nothing"}]})"
      << "\n";
  const std::map<std::string, std::string> env = {
      {"OPENROUTER_API_KEY", "sk-warm"}};

  Process direct(
      dir_,
      {"warm", "--db", dir_.Sub("db"), "--upstream", fake_->base_url(), file},
      env);
  EXPECT_EQ(direct.Wait(), 3);
  // It listens on a port chosen at start (:0), which the hint names.
  EXPECT_NE(direct.Err().find("--proxy " + proxy + " "), std::string::npos)
      << direct.Err();

  // Without the token (one at a time): the first refusal stops it, said
  // once, with how many requests were not sent.
  Process no_token(dir_,
                   {"warm", "--db", dir_.Sub("db"), "--proxy", proxy, file,
                    "-j", "1", "--json"},
                   env);
  EXPECT_EQ(no_token.Wait(), 1);
  const std::string refused = no_token.Err();
  EXPECT_NE(refused.find("status 401 from the proxy"), std::string::npos)
      << refused;
  EXPECT_EQ(refused.find("status 401"), refused.rfind("status 401")) << refused;
  EXPECT_NE(refused.find("stopped: the proxy refused the credentials"),
            std::string::npos)
      << refused;
  json::object r = json::parse(no_token.Out()).as_object();
  EXPECT_EQ(r["failed"].to_number<uint64_t>(), 1u);
  EXPECT_EQ(r["not_sent"].to_number<uint64_t>(),
            r["sent"].to_number<uint64_t>() - 1);
  EXPECT_EQ(fake_->completions(), 0u);

  std::map<std::string, std::string> with_token = env;
  with_token["LLMCACHE_CLIENT_TOKEN"] = "tok-warm";
  Process warm(dir_,
               {"warm", "--db", dir_.Sub("db"), "--proxy", proxy, file,
                "--json", "--namespace", "team", "--ttl", "600"},
               with_token);
  ASSERT_EQ(warm.Wait(), 0) << warm.Err() << warm.Out();
  json::object o = json::parse(warm.Out()).as_object();
  EXPECT_EQ(o["via"].as_string(), "proxy");
  EXPECT_EQ(o["stored"].to_number<uint64_t>(), 5u);
  EXPECT_EQ(o["duplicates"].to_number<uint64_t>(), 1u);
  EXPECT_EQ(o["not_stored"].to_number<uint64_t>(), 2u);
  EXPECT_EQ(o["not_stored_reasons"].at("not stored by the proxy"), 1);
  EXPECT_EQ(o["not_stored_reasons"].at("a stream the proxy did not store"), 1);
  EXPECT_EQ(o["bypassed"].to_number<uint64_t>(), 1u);
  EXPECT_EQ(o["already_cached"].to_number<uint64_t>(), 0u);
  EXPECT_EQ(fake_->completions(), 6u);
  EXPECT_EQ(fake_->embedded_items(), 2u);
  EXPECT_EQ(fake_->last_authorization(), "Bearer sk-warm");

  // Stored by the proxy, under the namespace and TTL asked for.
  Process ls(dir_, {"ls", "--db", dir_.Sub("db"), "--json"});
  ASSERT_EQ(ls.Wait(), 0) << ls.Err();
  json::object listed = json::parse(ls.Out()).as_object();
  ASSERT_EQ(listed["entries"].as_array().size(), 6u) << ls.Out();
  for (const json::value& e : listed["entries"].as_array()) {
    EXPECT_EQ(e.at("namespace").as_string(), "team");
    const int64_t ttl_ms =
        e.at("expires_ms").as_int64() - e.at("created_ms").as_int64();
    EXPECT_EQ(ttl_ms, 600'000);
  }

  // Again: the four stored single requests are found here and not sent; the
  // embeddings batch (never probed alone) is sent and is the proxy's hit;
  // the empty answers are asked for again.
  const int64_t hits_before =
      Process::Metric(port, "llmcache_cache_hits_total");
  Process again(dir_,
                {"warm", "--db", dir_.Sub("db"), "--proxy", proxy, file,
                 "--json", "--namespace", "team"},
                with_token);
  ASSERT_EQ(again.Wait(), 0) << again.Err();
  json::object a = json::parse(again.Out()).as_object();
  EXPECT_EQ(a["already_cached"].to_number<uint64_t>(), 5u);
  EXPECT_EQ(a["duplicates"].to_number<uint64_t>(), 1u);  // "one" again
  EXPECT_EQ(a["proxy_hits"].to_number<uint64_t>(), 1u);
  EXPECT_EQ(a["sent"].to_number<uint64_t>(), 3u);
  EXPECT_EQ(a["stored"].to_number<uint64_t>(), 0u);
  EXPECT_EQ(Process::Metric(port, "llmcache_cache_hits_total"),
            hits_before + 1);
  EXPECT_EQ(fake_->completions(), 8u);
  EXPECT_EQ(fake_->embedded_items(), 2u);

  // A server that is not an llmcache proxy is named as such.
  Process not_proxy(dir_,
                    {"warm", "--db", dir_.Sub("elsewhere"), "--proxy",
                     fake_->base_url(), file},
                    env);
  EXPECT_EQ(not_proxy.Wait(), 1);
  EXPECT_NE(not_proxy.Err().find("no database at --db"), std::string::npos)
      << not_proxy.Err();
  EXPECT_NE(not_proxy.Err().find("is this an llmcache proxy?"),
            std::string::npos)
      << not_proxy.Err();
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("elsewhere")));
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(), 0) << p.Err();
}

// `llmcache import` on a database the proxy holds: refused, with the hint;
// `import --proxy` sends the export to the proxy's POST /admin/import, which
// stores it; requests over the proxy's body limit are split in halves, down
// to a line, which is then reported as too large.
TEST_F(ServeTest, ImportSendsTheExportToTheProxyThatHoldsTheDatabase) {
  Process p(dir_,
            Args({"--admin-token", "adm-imp", "--max-body-bytes", "4096"}));
  const uint16_t port = p.WaitListening();
  ASSERT_NE(port, 0) << p.Err();
  const std::string proxy = "http://127.0.0.1:" + std::to_string(port);
  const HttpHeaders auth = {{"Authorization", "Bearer k"}};
  for (const char* text : {"one", "two", "three"}) {
    const Reply r = Request(port, "POST", "/v1/chat/completions",
                            Body("m/imp", text), auth);
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_EQ(r.header("x-cache"), "MISS");
  }
  const std::string file = dir_.Sub("export.jsonl");
  Process exported(dir_, {"export", "--db", dir_.Sub("db"), "-o", file});
  ASSERT_EQ(exported.Wait(), 0) << exported.Err();
  std::string first_line;
  {
    std::ifstream in(file);
    ASSERT_TRUE(std::getline(in, first_line));
  }
  json::object expired = json::parse(first_line).as_object();
  expired["created"] = 1000;
  expired["expires"] = 2000;
  std::ofstream(file, std::ios::app) << "not json\n\n"
                                     << json::serialize(expired) << "\n"
                                     << std::string(5000, 'x') << "\n";
  const Reply purged = Request(port, "POST", "/admin/purge?all=1", "",
                               {{"Authorization", "Bearer adm-imp"}});
  ASSERT_EQ(purged.status, 200) << purged.body;

  Process direct(dir_, {"import", "--db", dir_.Sub("db"), file});
  EXPECT_EQ(direct.Wait(), 3);
  EXPECT_NE(direct.Err().find("llmcache import --proxy " + proxy + " FILE"),
            std::string::npos)
      << direct.Err();
  EXPECT_NE(direct.Err().find("nothing is stored"), std::string::npos)
      << direct.Err();
  Process no_token(dir_, {"import", "--proxy", proxy, file});
  EXPECT_EQ(no_token.Wait(), 2);
  EXPECT_NE(no_token.Err().find("$LLMCACHE_ADMIN_TOKEN"), std::string::npos)
      << no_token.Err();
  Process wrong(dir_, {"import", "--proxy", proxy, file},
                {{"LLMCACHE_ADMIN_TOKEN", "not-it"}});
  EXPECT_EQ(wrong.Wait(), 1);
  EXPECT_NE(wrong.Err().find("refused the admin token"), std::string::npos)
      << wrong.Err();

  Process imported(dir_, {"import", "--proxy", proxy, file, "--json"},
                   {{"LLMCACHE_ADMIN_TOKEN", "adm-imp"}});
  EXPECT_EQ(imported.Wait(), 1);  // malformed lines
  json::object o = json::parse(imported.Out()).as_object();
  EXPECT_EQ(o["imported"].to_number<uint64_t>(), 3u) << imported.Out();
  EXPECT_EQ(o["expired_skipped"].to_number<uint64_t>(), 1u);
  EXPECT_EQ(o["malformed"].to_number<uint64_t>(), 1u);
  EXPECT_EQ(o["too_large"].to_number<uint64_t>(), 1u);
  EXPECT_EQ(o["lines"].to_number<uint64_t>(), 7u);
  const std::string err = imported.Err();
  EXPECT_NE(err.find("line 4: "), std::string::npos) << err;
  EXPECT_NE(err.find("line 7: larger than the proxy's request body limit"),
            std::string::npos)
      << err;
  // Stored in the database the proxy holds: its hits, no new upstream call.
  for (const char* text : {"one", "two", "three"}) {
    const Reply r = Request(port, "POST", "/v1/chat/completions",
                            Body("m/imp", text), auth);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-cache"), "HIT") << text;
  }
  EXPECT_EQ(fake_->completions(), 3u);

  // A server that is not an llmcache proxy, and none at all: named, with the
  // summary of what was stored (nothing).
  Process not_proxy(
      dir_,
      {"import", "--proxy",
       fake_->base_url().substr(0, fake_->base_url().find('/', 8)), file},
      {{"LLMCACHE_ADMIN_TOKEN", "adm-imp"}});
  EXPECT_EQ(not_proxy.Wait(), 1);
  EXPECT_NE(not_proxy.Err().find("from the proxy"), std::string::npos)
      << not_proxy.Err();
  EXPECT_NE(not_proxy.Out().find("imported 0 entries"), std::string::npos)
      << not_proxy.Out();
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(), 0) << p.Err();
  Process down(dir_, {"import", "--proxy", proxy, file},
               {{"LLMCACHE_ADMIN_TOKEN", "adm-imp"}});
  EXPECT_EQ(down.Wait(), 1);
  EXPECT_NE(down.Err().find("cannot reach the proxy"), std::string::npos)
      << down.Err();
  EXPECT_NE(down.Out().find("(stopped early)"), std::string::npos)
      << down.Out();
  // User info in the URL would be printed: refused.
  Process userinfo(dir_, {"import", "--proxy", "http://u:p@127.0.0.1:1", file},
                   {{"LLMCACHE_ADMIN_TOKEN", "adm-imp"}});
  EXPECT_EQ(userinfo.Wait(), 2);
}

// SIGINT stops `import --proxy` before its next request, with the lines the
// proxy stored named; the same import again stores the rest.
TEST_F(ServeTest, ImportThroughTheProxyStopsAtASignalAndSaysWhereToGoOn) {
  // A small body limit: a few lines per request, so the import runs long
  // enough to be stopped.
  Process p(dir_,
            Args({"--admin-token", "adm-int", "--max-body-bytes", "4096"}));
  const uint16_t port = p.WaitListening();
  ASSERT_NE(port, 0) << p.Err();
  const std::string proxy = "http://127.0.0.1:" + std::to_string(port);
  const HttpHeaders admin = {{"Authorization", "Bearer adm-int"}};
  ASSERT_EQ(Request(port, "POST", "/v1/chat/completions", Body("m/int", "one"),
                    {{"Authorization", "Bearer k"}})
                .status,
            200);
  Process exported(dir_, {"export", "--db", dir_.Sub("db")});
  ASSERT_EQ(exported.Wait(), 0) << exported.Err();
  json::object line = json::parse(exported.Out()).as_object();
  ASSERT_EQ(Request(port, "POST", "/admin/purge?all=1", "", admin).status, 200);
  // The same entry under 3000 keys.
  constexpr int kLines = 3000;
  const std::string file = dir_.Sub("many.jsonl");
  {
    std::ofstream out(file);
    for (int i = 0; i < kLines; ++i) {
      char key[65];
      std::snprintf(key, sizeof(key), "%064x", i + 1);
      line["key"] = key;
      out << json::serialize(line) << "\n";
    }
  }
  auto entries = [&]() -> int64_t {
    const Reply s = Request(port, "GET", "/stats");
    boost::system::error_code ec;
    const json::value v = json::parse(s.body, ec);
    const json::value* cache =
        !ec && v.is_object() ? v.as_object().if_contains("cache") : nullptr;
    const json::value* n = cache != nullptr && cache->is_object()
                               ? cache->as_object().if_contains("entries")
                               : nullptr;
    return n != nullptr && n->is_number() ? n->to_number<int64_t>() : -1;
  };
  ASSERT_EQ(entries(), 0);

  Process imp(dir_, {"import", "--proxy", proxy, file},
              {{"LLMCACHE_ADMIN_TOKEN", "adm-int"}});
  ASSERT_TRUE(WaitFor([&] { return entries() > 0; }, 20s));
  imp.Signal(SIGINT);
  ASSERT_EQ(imp.Wait(), 128 + SIGINT) << imp.Err();
  const std::string err = imp.Err();
  const std::string said = "interrupted (SIGINT): lines 1-";
  const size_t at = err.find(said);
  ASSERT_NE(at, std::string::npos) << err;
  const int64_t done = std::stoll(err.substr(at + said.size()));
  EXPECT_LT(done, kLines);
  EXPECT_NE(err.find("from line " + std::to_string(done + 1)),
            std::string::npos)
      << err;
  EXPECT_EQ(entries(), done);
  EXPECT_NE(imp.Out().find("imported " + std::to_string(done) + " entries"),
            std::string::npos)
      << imp.Out();

  Process again(dir_, {"import", "--proxy", proxy, file},
                {{"LLMCACHE_ADMIN_TOKEN", "adm-int"}});
  EXPECT_EQ(again.Wait(), 0) << again.Err();
  EXPECT_EQ(entries(), kLines);
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(), 0) << p.Err();
}

TEST_F(ServeTest, EnvironmentConfigures) {
  Process p(dir_, {"serve"},
            {{"LLMCACHE_LISTEN", "127.0.0.1:0"},
             {"LLMCACHE_DB", dir_.Sub("envdb")},
             {"LLMCACHE_UPSTREAM", fake_->base_url()},
             {"LLMCACHE_THREADS", "1"},
             {"LLMCACHE_ADMIN_TOKEN", "env-token"}});
  const uint16_t port = p.WaitListening();
  ASSERT_NE(port, 0) << p.Err();
  EXPECT_NE(p.Out().find(dir_.Sub("envdb")), std::string::npos) << p.Out();
  EXPECT_EQ(AdminStatus(port, "env-token"), 200);
  EXPECT_EQ(AdminStatus(port, "other"), 401);
  EXPECT_EQ(Request(port, "POST", "/v1/chat/completions", Body("m/a"),
                    {{"Authorization", "Bearer k"}})
                .status,
            200);
  p.Signal(SIGINT);
  EXPECT_EQ(p.Wait(), 0);
}

TEST_F(ServeTest, ConfigFileConfiguresAndFlagsAndEnvironmentWin) {
  const std::string config = dir_.Sub("llmcache.toml");
  {
    std::ofstream f(config);
    f << "# llmcache serve settings\n"
      << "[serve]\n"
      << "listen = \"127.0.0.1:0\"\n"
      << "db = \"" << dir_.Sub("filedb") << "\"\n"
      << "upstream = \"" << fake_->base_url() << "\"\n"
      << "admin-token = \"file-token\"\n"
      << "threads = 1\n"
      << "shared-cache = true\n";
  }
  {
    Process p(dir_, {"serve", "--config", config});
    const uint16_t port = p.WaitListening();
    ASSERT_NE(port, 0) << p.Err();
    EXPECT_NE(p.Out().find(dir_.Sub("filedb")), std::string::npos);
    EXPECT_EQ(AdminStatus(port, "file-token"), 200);
    // shared-cache = true: two keys share the entry.
    EXPECT_EQ(Request(port, "POST", "/v1/chat/completions", Body("m/a"),
                      {{"Authorization", "Bearer k1"}})
                  .header("x-cache"),
              "MISS");
    EXPECT_EQ(Request(port, "POST", "/v1/chat/completions", Body("m/a"),
                      {{"Authorization", "Bearer k2"}})
                  .header("x-cache"),
              "HIT");
    p.Signal(SIGTERM);
    EXPECT_EQ(p.Wait(), 0);
  }
  {
    // The environment beats the file (LLMCACHE_CONFIG names it).
    Process p(
        dir_, {"serve"},
        {{"LLMCACHE_CONFIG", config}, {"LLMCACHE_ADMIN_TOKEN", "env-token"}});
    const uint16_t port = p.WaitListening();
    ASSERT_NE(port, 0) << p.Err();
    EXPECT_EQ(AdminStatus(port, "env-token"), 200);
    EXPECT_EQ(AdminStatus(port, "file-token"), 401);
    p.Signal(SIGTERM);
    EXPECT_EQ(p.Wait(), 0);
  }
  {
    // A flag beats both.
    Process p(dir_,
              {"serve", "--config", config, "--admin-token", "flag-token"},
              {{"LLMCACHE_ADMIN_TOKEN", "env-token"}});
    const uint16_t port = p.WaitListening();
    ASSERT_NE(port, 0) << p.Err();
    EXPECT_EQ(AdminStatus(port, "flag-token"), 200);
    EXPECT_EQ(AdminStatus(port, "env-token"), 401);
    p.Signal(SIGTERM);
    EXPECT_EQ(p.Wait(), 0);
  }
}

TEST_F(ServeTest, BadSettingsAreUsageErrors) {
  const std::string config = dir_.Sub("bad.toml");
  {
    std::ofstream f(config);
    f << "mode = \"sometimes\"\n";
  }
  Process a(dir_, Args({"--config", config}));
  EXPECT_EQ(a.Wait(), 2) << a.Err();
  EXPECT_NE(a.Err().find("--mode"), std::string::npos) << a.Err();
  {
    std::ofstream f(config);
    f << "no-such-setting = 1\n";
  }
  Process b(dir_, Args({"--config", config}));
  EXPECT_EQ(b.Wait(), 2) << b.Err();
  EXPECT_NE(b.Err().find("no-such-setting"), std::string::npos) << b.Err();
  Process c(dir_, Args({"--listen", "nonsense"}));
  EXPECT_EQ(c.Wait(), 2) << c.Err();
  Process d(dir_, Args({"--allow-origin", "http://app.example/path"}));
  EXPECT_EQ(d.Wait(), 2) << d.Err();
  EXPECT_NE(d.Err().find("http://app.example/path"), std::string::npos)
      << d.Err();
  Process e(dir_, Args({"--allow-host", "proxy.internal:8080"}));
  EXPECT_EQ(e.Wait(), 2) << e.Err();
  // The operator's TTL cannot exceed the ceiling (nor be forever under one).
  Process f(dir_, Args({"--ttl", "120", "--max-ttl", "60"}));
  EXPECT_EQ(f.Wait(), 2) << f.Err();
  EXPECT_NE(f.Err().find("--max-ttl"), std::string::npos) << f.Err();
  Process g(dir_, Args({"--ttl", "0", "--max-ttl", "60"}));
  EXPECT_EQ(g.Wait(), 2) << g.Err();
  // Seconds that overflowed as milliseconds (the entries were then stored
  // with a negative expiry: never a hit, and reported as damage).
  for (const char* flag : {"--ttl", "--max-ttl"}) {
    Process t(dir_, Args({flag, "9223372036854775"}));
    EXPECT_EQ(t.Wait(), 2) << t.Err();
    EXPECT_NE(t.Err().find("longer than an entry can live"), std::string::npos)
        << t.Err();
  }
  // Numbers out of range say what they want (CLI11's own wording quoted a
  // range up to a 309-digit number).
  Process h(dir_, Args({"--upstream-timeout", "0"}));
  EXPECT_EQ(h.Wait(), 2) << h.Err();
  EXPECT_NE(h.Err().find("--upstream-timeout: want a number > 0"),
            std::string::npos)
      << h.Err();
  Process i(dir_, Args({"--ttl", "1d"}));
  EXPECT_EQ(i.Wait(), 2) << i.Err();
  EXPECT_NE(i.Err().find("want a number >= 0 (plain digits, no unit), got "
                         "'1d'"),
            std::string::npos)
      << i.Err();
  EXPECT_EQ(i.Err().find("179769"), std::string::npos) << i.Err();
  // Not a number, negative bytes (which wrapped to 2^64 - 1) or beyond any
  // size (a body limit that was no limit): refused, not taken. (Seconds may
  // be huge: HugeDurationsMeanNever.)
  const std::pair<const char*, const char*> refused[] = {
      {"--stream-keepalive", "nan"},
      {"--read-timeout", "nan"},
      {"--max-disk-bytes", "-1"},
      {"--memory-bytes", "-1"},
      {"--max-body-bytes", "99999999999999999999"},
      {"--max-connections", "nan"}};
  for (const auto& [flag, value] : refused) {
    Process bad(dir_, Args({flag, value}));
    EXPECT_EQ(bad.Wait(), 2) << flag << " " << value << ": " << bad.Err();
    EXPECT_NE(bad.Err().find(std::string(flag) + ": want a number"),
              std::string::npos)
        << bad.Err();
  }
  // A switch is a word that says true or false: CLI11 took any number, so
  // LLMCACHE_FLUSH_ON_DRIFT=2 meant true.
  Process word(dir_, Args({"--flush-on-drift=2"}));
  EXPECT_EQ(word.Wait(), 2) << word.Err();
  EXPECT_NE(word.Err().find("--flush-on-drift: want true/false"),
            std::string::npos)
      << word.Err();
  Process env(dir_, Args({}), {{"LLMCACHE_OPEN_OPERATOR_VIEWS", "2"}});
  EXPECT_EQ(env.Wait(), 2) << env.Err();
  EXPECT_NE(env.Err().find("got '2'"), std::string::npos) << env.Err();
}

// A chat body whose answer the fake says came from `resolved`.
std::string DriftBody(const std::string& text, const std::string& resolved) {
  return R"({"model":"x/m","temperature":0,"messages":[{"role":"user","content":")" +
         text + R"("}],"x_fake_resolved_model":")" + resolved + R"("})";
}

TEST_F(ServeTest, PromptCacheAndDriftSettingsFromTheConfigFileAndEnvironment) {
  const std::string config = dir_.Sub("pc.toml");
  {
    std::ofstream f(config);
    f << "[serve]\n"
      << "prompt-cache = \"auto\"\n"
      << "flush-on-drift = true\n";
  }
  auto settings = [&](uint16_t port) {
    const Reply r = Request(port, "GET", "/stats");
    EXPECT_EQ(r.status, 200);
    const boost::json::object s = boost::json::parse(r.body).as_object();
    const boost::json::object& c = s.at("client").as_object();
    return std::make_pair(
        std::string(c.at("prompt_cache").at("mode").as_string()),
        c.at("drift").at("flush_on_drift").as_bool());
  };
  {
    Process p(dir_, Args({"--config", config, "--log-level", "info"}));
    const uint16_t port = p.WaitListening();
    ASSERT_NE(port, 0) << p.Err();
    EXPECT_EQ(settings(port), std::make_pair(std::string("auto"), true));
    // x/m resolves to -01, then -02: one drift, logged once, entries flushed.
    const HttpHeaders auth = {{"Authorization", "Bearer k"}};
    const std::string a = DriftBody("one", "x/m-2025-01");
    const std::string b = DriftBody("two", "x/m-2025-02");
    EXPECT_EQ(Request(port, "POST", "/v1/chat/completions", a, auth)
                  .header("x-cache"),
              "MISS");
    EXPECT_EQ(Request(port, "POST", "/v1/chat/completions", a, auth)
                  .header("x-cache"),
              "HIT");
    EXPECT_EQ(Request(port, "POST", "/v1/chat/completions", b, auth)
                  .header("x-cache"),
              "MISS");
    EXPECT_EQ(Request(port, "POST", "/v1/chat/completions", b, auth)
                  .header("x-cache"),
              "HIT");
    EXPECT_EQ(Request(port, "POST", "/v1/chat/completions", a, auth)
                  .header("x-cache"),
              "MISS");  // flushed at the drift
    p.Signal(SIGTERM);
    EXPECT_EQ(p.Wait(), 0);
    const std::string log = p.Out() + p.Err();
    const std::string line = "model drift: x/m now resolves to x/m-2025-02";
    const size_t at = log.find(line);
    EXPECT_NE(at, std::string::npos) << log;
    EXPECT_EQ(log.find(line, at + 1), std::string::npos) << log;
    // `llmcache models` shows the drift events (two: -01 -> -02 -> -01).
    Process models(dir_, {"models", "--db", dir_.Sub("db")});
    ASSERT_EQ(models.Wait(), 0) << models.Err();
    EXPECT_NE(models.Out().find("DRIFTS"), std::string::npos) << models.Out();
    EXPECT_NE(models.Out().find("x/m-2025-01"), std::string::npos)
        << models.Out();
  }
  {
    // The environment beats the file.
    Process p(dir_, Args({"--config", config}),
              {{"LLMCACHE_PROMPT_CACHE", "off"},
               {"LLMCACHE_FLUSH_ON_DRIFT", "false"}});
    const uint16_t port = p.WaitListening();
    ASSERT_NE(port, 0) << p.Err();
    EXPECT_EQ(settings(port), std::make_pair(std::string("off"), false));
    p.Signal(SIGTERM);
    EXPECT_EQ(p.Wait(), 0);
  }
  {
    Process p(dir_, Args({"--prompt-cache", "sometimes"}));
    EXPECT_EQ(p.Wait(), 2) << p.Err();
    EXPECT_NE(p.Err().find("--prompt-cache"), std::string::npos) << p.Err();
  }
}

// Exit 3, as a mutating verb on a database in use (it was 1).
TEST_F(ServeTest, LockedDatabaseExitsThreeNamingIt) {
  auto held = llmcache::testing::OpenTestCache(dir_.Sub("db"));
  ASSERT_OK(held);
  Process p(dir_, Args());
  EXPECT_EQ(p.Wait(), 3);
  const std::string err = p.Err();
  EXPECT_NE(err.find(dir_.Sub("db")), std::string::npos) << err;
  EXPECT_NE(err.find("another process"), std::string::npos) << err;
  // The test process holds it: its pid is named.
  EXPECT_NE(err.find("held by process " + std::to_string(getpid())),
            std::string::npos)
      << err;
}

TEST_F(ServeTest, PortInUseExitsOne) {
  asio::io_context ioc;
  tcp::acceptor taken(ioc,
                      tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const std::string port = std::to_string(taken.local_endpoint().port());
  Process p(dir_, {"serve", "--listen", "127.0.0.1:" + port, "--db",
                   dir_.Sub("db"), "--upstream", fake_->base_url()});
  EXPECT_EQ(p.Wait(), 1);
  EXPECT_NE(p.Err().find("127.0.0.1:" + port), std::string::npos) << p.Err();
}

TEST_F(ServeTest, SigtermFinishesInFlightRequests) {
  Process p(dir_, Args({"--shutdown-grace", "10"}));
  const uint16_t port = p.WaitListening();
  ASSERT_NE(port, 0) << p.Err();
  constexpr int kRequests = 3;
  std::vector<int> statuses(kRequests, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequests; ++i) {
    threads.emplace_back([&, i] {
      statuses[i] = Request(port, "POST", "/v1/chat/completions",
                            Body("fake/delay-1500", std::to_string(i)),
                            {{"Authorization", "Bearer k"}})
                        .status;
    });
  }
  // Wait until all of them reached the upstream.
  WaitFor([&] { return fake_->completions() >= kRequests; });
  ASSERT_EQ(fake_->completions(), static_cast<uint64_t>(kRequests));
  const auto start = std::chrono::steady_clock::now();
  p.Signal(SIGTERM);
  for (auto& t : threads) t.join();
  EXPECT_EQ(p.Wait(), 0) << p.Err();
  for (int s : statuses) EXPECT_EQ(s, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 8s);
  // Nothing listens any more.
  EXPECT_EQ(Request(port, "GET", "/healthz").status, 0);
}

// A request still without its answer when the grace period ends gets a 503
// (Retry-After: 1, which the SDKs retry), not a closed connection.
TEST_F(ServeTest, ARequestDroppedAtTheEndOfTheGraceGetsA503) {
  Process p(dir_, Args({"--shutdown-grace", "0.5"}));
  const uint16_t port = p.WaitListening();
  ASSERT_NE(port, 0) << p.Err();
  Reply r;
  std::thread t([&] {
    r = Request(port, "POST", "/v1/chat/completions",
                Body("fake/delay-8000", "late"),
                {{"Authorization", "Bearer k"}});
  });
  ASSERT_TRUE(WaitFor([&] { return fake_->completions() >= 1; }));
  p.Signal(SIGTERM);
  t.join();
  EXPECT_EQ(p.Wait(), 0) << p.Err();
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.body.find("shutting down"), std::string::npos) << r.body;
  EXPECT_NE(p.Err().find("dropping 1 in-flight"), std::string::npos) << p.Err();
}

// A live stream cut at the end of the grace period ends with an error event
// (the SDKs raise it), not only a close: with its head's Connection: close a
// close alone read as a complete answer to Node's HTTP client.
TEST_F(ServeTest, AStreamCutAtTheEndOfTheGraceSaysSo) {
  Process p(dir_, Args({"--shutdown-grace", "0.5"}));
  const uint16_t port = p.WaitListening();
  ASSERT_NE(port, 0) << p.Err();
  ::llmcache::testing::HttpConnection conn(port);
  ASSERT_TRUE(conn.Write(
      "POST", "/v1/chat/completions",
      R"({"model":"fake/slow-400","temperature":0,"stream":true,)"
      R"("messages":[{"role":"user","content":"a long answer"}]})",
      {{"Authorization", "Bearer k"}, {"Content-Type", "application/json"}}));
  const Reply head = conn.ReadHead();
  ASSERT_EQ(head.status, 200) << head.error;
  std::string body, piece;
  ASSERT_TRUE(conn.ReadBodyPiece(&piece)) << conn.error();
  body += piece;
  p.Signal(SIGTERM);
  while (conn.ReadBodyPiece(&piece)) body += piece;
  EXPECT_EQ(p.Wait(), 0) << p.Err();
  EXPECT_FALSE(conn.body_complete());
  EXPECT_NE(body.find("data: {\"error\":"), std::string::npos) << body;
  EXPECT_NE(body.find("shutting down"), std::string::npos) << body;
  EXPECT_EQ(body.find("[DONE]"), std::string::npos) << body;
}

// --upstream-stream-idle cuts a stream whose upstream falls silent (it was
// a fixed 120 s), and the access log says why; --upstream-request-timeout
// ends an attempt that runs too long. Both are checked like the others.
TEST_F(ServeTest, UpstreamStreamIdleAndRequestTimeoutsAreSettings) {
  Process p(dir_,
            Args({"--upstream-stream-idle", "0.4", "--upstream-request-timeout",
                  "1.5", "--upstream-attempts", "1"}));
  const uint16_t port = p.WaitListening();
  ASSERT_NE(port, 0) << p.Err();
  const HttpHeaders auth = {{"Authorization", "Bearer k"}};
  auto stream_body = [](const std::string& model) {
    return R"({"model":")" + model +
           R"(","temperature":0,"stream":true,"messages":[{"role":"user",)"
           R"("content":"hi"}]})";
  };
  // Events 3 s apart: cut at 0.4 s of silence (before the first event: the
  // proxy's own 504), not after 120 s.
  auto start = std::chrono::steady_clock::now();
  const Reply idle = Request(port, "POST", "/v1/chat/completions",
                             stream_body("fake/slow-3000"), auth);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2500ms);
  EXPECT_EQ(idle.status, 504) << idle.body;
  // Events 0.3 s apart (under the idle limit) for longer than 1.5 s: cut
  // mid-stream by the attempt's limit, and logged as such.
  start = std::chrono::steady_clock::now();
  const Reply cut = Request(port, "POST", "/v1/chat/completions",
                            stream_body("fake/slow-300"), auth);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 1400ms);
  EXPECT_LT(took, 2500ms);
  EXPECT_EQ(cut.body.find("[DONE]"), std::string::npos) << cut.body;
  EXPECT_TRUE(WaitFor([&] {
    return p.Err().find(" 200 MISS ") != std::string::npos &&
           p.Err().find("(stream broken: ") != std::string::npos;
  })) << p.Err();
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(), 0) << p.Err();
  for (const char* flag :
       {"--upstream-stream-idle", "--upstream-request-timeout"}) {
    Process bad(dir_, Args({flag, "0"}));
    EXPECT_EQ(bad.Wait(), 2) << bad.Err();
    EXPECT_NE(bad.Err().find(std::string(flag) + ": want a number > 0"),
              std::string::npos)
        << bad.Err();
  }
}

// A second signal ends the grace period at once (the request still in
// flight is dropped); SIGHUP stops it as SIGTERM does.
TEST_F(ServeTest, ASecondSignalEndsTheGracePeriod) {
  Process p(dir_, Args({"--shutdown-grace", "30"}));
  const uint16_t port = p.WaitListening();
  ASSERT_NE(port, 0) << p.Err();
  std::thread hanging([&] {
    (void)Request(port, "POST", "/v1/chat/completions", Body("fake/hang"),
                  {{"Authorization", "Bearer k"}});
  });
  WaitFor([&] { return fake_->completions() >= 1; });
  const auto start = std::chrono::steady_clock::now();
  p.Signal(SIGHUP);
  EXPECT_TRUE(WaitFor([&] {
    return p.Err().find("received SIGHUP") != std::string::npos;
  })) << p.Err();
  std::this_thread::sleep_for(300ms);
  p.Signal(SIGINT);
  EXPECT_EQ(p.Wait(), 0) << p.Err();
  hanging.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_NE(p.Err().find("second signal"), std::string::npos) << p.Err();
}

TEST_F(ServeTest, TheServeFileIsWrittenOnceItCanBe) {
  // LLMCACHE-SERVE (the CLI's hint to a database's proxy) that cannot be
  // written when serve starts (here a directory in the way of its temporary
  // file; on a full disk, no room) is written once it can be, while the
  // store is healthy, not left out for the proxy's life.
  {
    Process first(dir_, Args());
    ASSERT_NE(first.WaitListening(), 0) << first.Err();
    first.Signal(SIGTERM);
    ASSERT_EQ(first.Wait(), 0) << first.Err();
  }
  const std::string file = dir_.Sub("db") + "/LLMCACHE-SERVE";
  ASSERT_FALSE(std::filesystem::exists(file));
  ASSERT_TRUE(std::filesystem::create_directory(file + ".tmp"));
  Process p(dir_, Args());
  const uint16_t port = p.WaitListening();
  ASSERT_NE(port, 0) << p.Err();
  EXPECT_TRUE(WaitFor(
      [&] { return p.Err().find("cannot write " + file) != std::string::npos; },
      20s))
      << p.Err();
  std::this_thread::sleep_for(1500ms);  // a retry or more, still in the way
  EXPECT_FALSE(std::filesystem::exists(file));
  std::filesystem::remove(file + ".tmp");
  EXPECT_TRUE(WaitFor([&] { return std::filesystem::exists(file); }, 20s))
      << p.Err();
  // It names this proxy: a mutating verb is sent to its admin endpoint.
  Process purge(dir_, {"purge", "--db", dir_.Sub("db"), "--all", "--yes"});
  EXPECT_EQ(purge.Wait(), 3);
  EXPECT_NE(purge.Err().find("http://127.0.0.1:" + std::to_string(port) +
                             "/admin/purge"),
            std::string::npos)
      << purge.Err();
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(), 0) << p.Err();
  EXPECT_FALSE(std::filesystem::exists(file));
}

// serve's standard output is a log: one that cannot be written (its reader
// gone, a full disk) makes no failure of a clean stop, which exited 1.
TEST_F(ServeTest, AnUnwritableStdoutIsNoFailureOfACleanStop) {
  auto p = Process::WithStdoutTo(dir_, "/dev/full", Args());
  const std::string file = dir_.Sub("db") + "/LLMCACHE-SERVE";
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(file); }, 20s))
      << p->Err();
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(), 0) << p->Err();
  EXPECT_EQ(p->Err().find("cannot write the output"), std::string::npos)
      << p->Err();
}

// Secrets given as flags show in ps: serve says so, and never repeats them.
TEST_F(ServeTest, SecretsOnTheCommandLineAreWarnedAbout) {
  Process p(dir_, Args({"--admin-token", "admin-sekrit", "--redis",
                        "redis://:redis-sekrit@127.0.0.1:1",
                        "--redis-password=other-sekrit"}));
  ASSERT_TRUE(WaitFor(
      [&] {
        return p.Err().find("--redis-password on the command line") !=
               std::string::npos;
      },
      20s))
      << p.Err();
  p.Signal(SIGTERM);
  p.Wait();
  const std::string err = p.Err();
  EXPECT_NE(err.find("--admin-token on the command line is visible"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("a password in --redis is visible"), std::string::npos)
      << err;
  EXPECT_EQ(err.find("sekrit"), std::string::npos) << err;
  EXPECT_EQ(p.Out().find("sekrit"), std::string::npos) << p.Out();
  // A URL without a password is no secret, nor an ACL user's whose
  // password comes from the environment.
  Process q(dir_,
            {"serve", "--memory", "--listen", "127.0.0.1:0", "--redis",
             "redis://user:@127.0.0.1:1/0", "--upstream", fake_->base_url()},
            {{"LLMCACHE_REDIS_PASSWORD", "env-sekrit"}});
  ASSERT_NE(q.WaitListening(), 0) << q.Err();
  q.Signal(SIGTERM);
  q.Wait();
  EXPECT_EQ(q.Err().find("is visible to every local user"), std::string::npos)
      << q.Err();
}

// Durations too long for the timers' arithmetic (1e10 s and more, inf) mean
// "never": they wrapped round to nearly nothing (a keep-alive connection
// closed within a second, the model list never kept, 1e30 s refused).
TEST_F(ServeTest, HugeDurationsMeanNever) {
  Process p(dir_,
            Args({"--idle-timeout", "1e10", "--models-ttl", "1e30",
                  "--upstream-timeout", "1e30", "--shutdown-grace", "inf"}));
  const uint16_t port = p.WaitListening();
  ASSERT_NE(port, 0) << p.Err();
  ::llmcache::testing::HttpConnection conn(port, 20s);
  ASSERT_TRUE(conn.connected()) << conn.error();
  const Reply first = conn.Send("GET", "/v1/models");
  ASSERT_EQ(first.status, 200) << first.error;
  EXPECT_EQ(first.header("x-cache"), "MISS");
  std::this_thread::sleep_for(1500ms);
  const Reply second = conn.Send("GET", "/v1/models");
  ASSERT_EQ(second.status, 200) << second.error;  // the same connection
  EXPECT_EQ(second.header("x-cache"), "HIT");
  EXPECT_EQ(Request(port, "POST", "/v1/chat/completions", Body("m/a"),
                    {{"Authorization", "Bearer k"}})
                .status,
            200);
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(), 0) << p.Err();
}

TEST_F(ServeTest, MemoryModeTouchesNoDisk) {
  Process p(dir_,
            {"serve", "--memory", "--listen", "127.0.0.1:0", "--upstream",
             fake_->base_url()},
            {{"LLMCACHE_DB", dir_.Sub("never")}});
  const uint16_t port = p.WaitListening();
  ASSERT_NE(port, 0) << p.Err();
  EXPECT_EQ(Request(port, "POST", "/v1/chat/completions", Body("m/a"),
                    {{"Authorization", "Bearer k"}})
                .status,
            200);
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(), 0);
  EXPECT_FALSE(std::ifstream(dir_.Sub("never")).good());
  // The database it was also given is named as not opened.
  EXPECT_NE(p.Err().find("--memory: the database " + dir_.Sub("never") +
                         " (--db or $LLMCACHE_DB) is not opened"),
            std::string::npos)
      << p.Err();
}

// The issue's attack at the command's defaults: a web page's cross-origin
// "simple" request would have been forwarded with the operator's key.
TEST_F(ServeTest, WebPagesAreRefusedByDefault) {
  Process p(dir_, Args({"--api-key", "sk-SERVER-SECRET-KEY"}));
  const uint16_t port = p.WaitListening();
  ASSERT_NE(port, 0) << p.Err();
  const Reply r = Request(
      port, "POST", "/v1/chat/completions", Body("m/a"),
      {{"Content-Type", "text/plain"}, {"Origin", "http://evil.example"}});
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(Request(port, "POST", "/v1/chat/completions", Body("m/a"),
                    {{"Authorization", "Basic dXNlcjpwYXNz"}})
                .status,
            401);
  EXPECT_EQ(Request(port, "GET", "/healthz", "",
                    {{"Host", "rebind.evil.example:" + std::to_string(port)}})
                .status,
            403);
  EXPECT_EQ(fake_->completions(), 0u);
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(), 0) << p.Err();
}

TEST_F(ServeTest, AccessSettingsFromTheConfigFileAndEnvironment) {
  const std::string config = dir_.Sub("access.toml");
  {
    std::ofstream f(config);
    f << "[serve]\n"
      << "allow-origin = [\"http://app.example\", \"https://b.example\"]\n"
      << "client-token = \"file-client-token\"\n"
      << "ttl = 30\n"
      << "max-ttl = 60\n";
  }
  Process p(dir_, Args({"--config", config, "--api-key", "sk-SERVER"}),
            {{"LLMCACHE_ALLOW_HOST", "proxy.internal,other.internal"}});
  const uint16_t port = p.WaitListening();
  ASSERT_NE(port, 0) << p.Err();
  const HttpHeaders token = {{"X-Llmcache-Token", "file-client-token"}};
  EXPECT_EQ(Request(port, "POST", "/v1/chat/completions", Body("m/a")).status,
            401);
  Reply r = Request(port, "POST", "/v1/chat/completions", Body("m/a"),
                    {{"X-Llmcache-Token", "file-client-token"},
                     {"Origin", "https://b.example"},
                     {"Host", "other.internal"},
                     {"X-Cache-TTL", "0"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("access-control-allow-origin"), "https://b.example");
  EXPECT_EQ(r.header("x-cache-ttl"), "60");  // forever is cut to max-ttl
  EXPECT_EQ(fake_->last_authorization(), "Bearer sk-SERVER");
  r = Request(port, "POST", "/v1/chat/completions", Body("m/b"), token);
  EXPECT_EQ(r.header("x-cache-ttl"), "30");
  EXPECT_EQ(Request(port, "POST", "/v1/chat/completions", Body("m/a"),
                    {{"X-Llmcache-Token", "file-client-token"},
                     {"Origin", "http://c.example"}})
                .status,
            403);
  EXPECT_EQ(
      Request(port, "GET", "/healthz", "", {{"Host", "proxy.internal"}}).status,
      200);
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(), 0) << p.Err();
  EXPECT_EQ(p.Err().find("file-client-token"), std::string::npos) << p.Err();
}

// The soft open-file limit (commonly 1,024) is raised to the hard one, so
// --max-connections is not capped by an accident of the login session.
TEST_F(ServeTest, RaisesTheOpenFileLimitToTheHardOne) {
  struct rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < 4096) {
    GTEST_SKIP() << "hard open-file limit " << saved.rlim_max;
  }
  std::unique_ptr<Process> p;
  {
    struct rlimit low = saved;
    low.rlim_cur = 512;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    p = std::make_unique<Process>(dir_, Args());  // inherits 512
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  }
  const uint16_t port = p->WaitListening();
  ASSERT_NE(port, 0) << p->Err();
  std::ifstream limits("/proc/" + std::to_string(p->pid()) + "/limits");
  std::string line;
  std::string soft, hard;
  while (std::getline(limits, line)) {
    if (line.rfind("Max open files", 0) == 0) {
      std::istringstream(line.substr(14)) >> soft >> hard;
    }
  }
  ASSERT_FALSE(soft.empty());
  EXPECT_NE(soft, "512");
  if (hard != "unlimited") {
    EXPECT_EQ(soft, hard);
  }
  EXPECT_TRUE(WaitFor([&] {
    return p->Err().find("open-file limit raised from 512 to") !=
           std::string::npos;
  })) << p->Err();
  // Above what 512 descriptors would allow (each connection may hold an
  // upstream socket too).
  EXPECT_GT(Process::Metric(port, "llmcache_max_connections"), 256);
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(), 0) << p->Err();
}

// Under a low hard limit the connection limit is capped below it: every
// connection within the cap is served, the next gets a 503 (not silence),
// and closing one makes room.
TEST_F(ServeTest, ConnectionsAreCappedBelowALowOpenFileLimit) {
  std::unique_ptr<Process> p = Process::UnderFdLimit(
      dir_, 400,
      {"serve", "--memory", "--listen", "127.0.0.1:0", "--upstream",
       fake_->base_url(), "--threads", "1"});
  const uint16_t port = p->WaitListening();
  ASSERT_NE(port, 0) << p->Err();
  const int64_t cap = Process::Metric(port, "llmcache_max_connections");
  ASSERT_GT(cap, 10);
  ASSERT_LT(cap, 200);  // (400 - reserve) / 2
  EXPECT_TRUE(WaitFor([&] {
    return p->Err().find("max connections capped at " + std::to_string(cap)) !=
           std::string::npos;
  })) << p->Err();
  std::vector<std::unique_ptr<::llmcache::testing::HttpConnection>> conns;
  for (int64_t i = 0; i < cap; ++i) {
    conns.push_back(
        std::make_unique<::llmcache::testing::HttpConnection>(port, 20s));
    const Reply r = conns.back()->Send("GET", "/healthz");
    ASSERT_EQ(r.status, 200) << "connection " << i << ": " << r.error;
  }
  {
    ::llmcache::testing::HttpConnection extra(port, 20s);
    const Reply r = extra.Send("GET", "/healthz");
    EXPECT_EQ(r.status, 503) << r.error;
  }
  conns.pop_back();
  EXPECT_TRUE(WaitFor([&] {
    ::llmcache::testing::HttpConnection again(port, 20s);
    return again.Send("GET", "/healthz").status == 200;
  }));
  EXPECT_EQ(conns.front()->Send("GET", "/healthz").status, 200);
  conns.clear();
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(), 0) << p->Err();
}

// max-disk-bytes (here from the config file) reaches the engine: past the
// budget the oldest entries are evicted.
TEST_F(ServeTest, DiskBudgetEvictsTheOldestEntries) {
  const std::string config = dir_.Sub("budget.toml");
  {
    std::ofstream f(config);
    f << "max-disk-bytes = 65536\n";
  }
  Process p(dir_, Args({"--config", config}));
  const uint16_t port = p.WaitListening();
  ASSERT_NE(port, 0) << p.Err();
  const HttpHeaders auth = {{"Authorization", "Bearer k"}};
  ASSERT_EQ(Request(port, "POST", "/v1/chat/completions",
                    Body("m/budget", "first"), auth)
                .header("x-cache"),
            "MISS");
  ASSERT_EQ(Request(port, "POST", "/v1/chat/completions",
                    Body("m/budget", "first"), auth)
                .header("x-cache"),
            "HIT");
  const std::string filler(400, 'x');
  for (int i = 0; i < 300; ++i) {
    ASSERT_EQ(Request(port, "POST", "/v1/chat/completions",
                      Body("m/budget", filler + std::to_string(i)), auth)
                  .status,
              200);
  }
  // Maintenance (every second) enforces the budget.
  EXPECT_TRUE(WaitFor(
      [&] {
        const Reply s = Request(port, "GET", "/stats");
        const std::string name = "\"evictions\":";
        const size_t at = s.body.find(name);
        return at != std::string::npos &&
               std::stoll(s.body.substr(at + name.size())) > 0;
      },
      20s));
  EXPECT_EQ(Request(port, "POST", "/v1/chat/completions",
                    Body("m/budget", "first"), auth)
                .header("x-cache"),
            "MISS");
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(), 0) << p.Err();
}

}  // namespace
}  // namespace llmcache
