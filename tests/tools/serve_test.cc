// `llmcache serve` as a subprocess (the built binary), in front of the fake
// OpenRouter run in this process: start-up and /healthz, configuration by
// flags, environment and config file with their precedence, a locked
// database, a port in use, and a graceful SIGTERM with requests in flight.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fake_openrouter.h"
#include "llmcache/cache.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"

extern char** environ;

namespace llmcache {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string header(const std::string& n) const {
    auto it = headers.find(n);
    return it == headers.end() ? "" : it->second;
  }
};

Reply Request(
    uint16_t port, http::verb method, const std::string& target,
    const std::string& body = "",
    const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  Reply r;
  asio::io_context ioc;
  tcp::socket s(ioc);
  boost::system::error_code ec;
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
  if (ec) return r;
  timeval tv{20, 0};
  setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, "127.0.0.1");
  for (const auto& [k, v] : headers) req.set(k, v);
  if (method == http::verb::post) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
  }
  http::write(s, req, ec);
  if (ec) return r;
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(s, buf, res, ec);
  if (ec) return r;
  r.status = static_cast<int>(res.result_int());
  for (const auto& f : res) {
    std::string name(f.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(c));
    r.headers[name] = std::string(f.value());
  }
  r.body = res.body();
  return r;
}

std::string Body(const std::string& model, const std::string& text = "hi") {
  return R"({"model":")" + model +
         R"(","temperature":0,"messages":[{"role":"user","content":")" + text +
         R"("}]})";
}

// A running `llmcache serve` (or any llmcache verb) with its output in files.
class Process {
 public:
  Process(const llmcache::testing::TempDir& dir,
          const std::vector<std::string>& args,
          const std::map<std::string, std::string>& env = {})
      : out_path_(dir.Sub("stdout-" + std::to_string(++counter_))),
        err_path_(dir.Sub("stderr-" + std::to_string(counter_))) {
    std::vector<std::string> argv_s = {LLMCACHE_BIN};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<std::string> env_s;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string kv(*e);
      if (kv.rfind("LLMCACHE_", 0) == 0 || kv.rfind("OPENROUTER_", 0) == 0 ||
          kv.rfind("XDG_CACHE_HOME=", 0) == 0) {
        continue;
      }
      env_s.push_back(kv);
    }
    for (const auto& [k, v] : env) env_s.push_back(k + "=" + v);
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      const int out =
          open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      const int err =
          open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(out, 1);
      dup2(err, 2);
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
  }

  ~Process() {
    if (pid_ > 0 && !exit_code_) {
      kill(pid_, SIGKILL);
      int st = 0;
      waitpid(pid_, &st, 0);
    }
  }

  // Waits for the "listening on http://HOST:PORT" line; the port, or 0 if
  // the process exited or did not start in time.
  uint16_t WaitListening(std::chrono::milliseconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string out = ReadFile(out_path_);
      const size_t at = out.find("listening on http://");
      if (at != std::string::npos) {
        const size_t colon = out.find(':', at + 20);
        const size_t end = out.find_first_not_of("0123456789", colon + 1);
        if (colon != std::string::npos && end != std::string::npos) {
          return static_cast<uint16_t>(
              std::stoi(out.substr(colon + 1, end - colon - 1)));
        }
      }
      if (Exited()) return 0;
      std::this_thread::sleep_for(20ms);
    }
    return 0;
  }

  bool Exited() {
    if (exit_code_) return true;
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      exit_code_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      return true;
    }
    return false;
  }

  // The exit code, or -1 if it did not exit within `timeout`.
  int Wait(std::chrono::milliseconds timeout = 30s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (Exited()) return *exit_code_;
      std::this_thread::sleep_for(10ms);
    }
    return -1;
  }

  void Signal(int sig) { kill(pid_, sig); }
  std::string Out() const { return ReadFile(out_path_); }
  std::string Err() const { return ReadFile(err_path_); }

 private:
  static inline int counter_ = 0;
  std::string out_path_;
  std::string err_path_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

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
    return Request(port, http::verb::post, "/admin/purge?expired=1", "",
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
  for (const char* flag :
       {"--listen", "--db", "--upstream", "--threads", "--config",
        "--admin-token", "--shared-cache", "--mode", "--ttl", "--namespace",
        "--max-body-bytes", "--max-connections", "--log-level", "--memory",
        "--ca-file", "--api-key", "--shutdown-grace"}) {
    EXPECT_NE(out.find(flag), std::string::npos) << flag;
  }
}

TEST_F(ServeTest, ServesHealthzAndCachesThenStopsOnSigterm) {
  Process p(dir_, Args({"--api-key", "sk-SERVER-SECRET-KEY"}));
  const uint16_t port = p.WaitListening();
  ASSERT_NE(port, 0) << p.Err();
  const Reply h = Request(port, http::verb::get, "/healthz");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body, R"({"status":"ok"})");
  EXPECT_EQ(Request(port, http::verb::post, "/v1/chat/completions", Body("m/a"))
                .header("x-cache"),
            "MISS");
  EXPECT_EQ(Request(port, http::verb::post, "/v1/chat/completions", Body("m/a"))
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
  const Reply miss = Request(port, http::verb::post, "/v1/chat/completions",
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
  EXPECT_NE(err.find("http://127.0.0.1:0/admin/purge"), std::string::npos)
      << err;
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
  EXPECT_EQ(Request(port, http::verb::post, "/v1/chat/completions", Body("m/a"),
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
    EXPECT_EQ(Request(port, http::verb::post, "/v1/chat/completions",
                      Body("m/a"), {{"Authorization", "Bearer k1"}})
                  .header("x-cache"),
              "MISS");
    EXPECT_EQ(Request(port, http::verb::post, "/v1/chat/completions",
                      Body("m/a"), {{"Authorization", "Bearer k2"}})
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
}

TEST_F(ServeTest, LockedDatabaseExitsOneNamingIt) {
  CacheOptions co;
  co.path = dir_.Sub("db");
  co.maintenance_interval_ms = 0;
  auto held = Cache::Open(co);
  ASSERT_OK(held);
  Process p(dir_, Args());
  EXPECT_EQ(p.Wait(), 1);
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
      statuses[i] = Request(port, http::verb::post, "/v1/chat/completions",
                            Body("fake/delay-1500", std::to_string(i)),
                            {{"Authorization", "Bearer k"}})
                        .status;
    });
  }
  // Wait until all of them reached the upstream.
  for (int i = 0; i < 300 && fake_->completions() < kRequests; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(fake_->completions(), static_cast<uint64_t>(kRequests));
  const auto start = std::chrono::steady_clock::now();
  p.Signal(SIGTERM);
  for (auto& t : threads) t.join();
  EXPECT_EQ(p.Wait(), 0) << p.Err();
  for (int s : statuses) EXPECT_EQ(s, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 8s);
  // Nothing listens any more.
  EXPECT_EQ(Request(port, http::verb::get, "/healthz").status, 0);
}

TEST_F(ServeTest, MemoryModeTouchesNoDisk) {
  Process p(dir_,
            {"serve", "--memory", "--listen", "127.0.0.1:0", "--upstream",
             fake_->base_url()},
            {{"LLMCACHE_DB", dir_.Sub("never")}});
  const uint16_t port = p.WaitListening();
  ASSERT_NE(port, 0) << p.Err();
  EXPECT_EQ(Request(port, http::verb::post, "/v1/chat/completions", Body("m/a"),
                    {{"Authorization", "Bearer k"}})
                .status,
            200);
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(), 0);
  EXPECT_FALSE(std::ifstream(dir_.Sub("never")).good());
}

}  // namespace
}  // namespace llmcache
