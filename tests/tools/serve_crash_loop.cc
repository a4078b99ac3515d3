// Crash loop: `llmcache serve`, with its default durability settings, killed
// with SIGKILL while clients send requests, round after round on one
// persistent database; after every kill the database must open, `llmcache
// verify` must find nothing corrupt, and every response acknowledged as
// stored before the kill must be there.
//
// Each round:
//   - starts `llmcache serve` (the built binary, default durability flags,
//     an admin token) on the database, in front of a fake OpenRouter that
//     lives in this process for the whole run;
//   - sends one request to each of 72 models in order (the first 64 get a
//     column family of their own, the rest share the overflow family), then
//     runs client threads that send a mix of unique misses (plain and
//     streamed, in three namespaces), repeats of acknowledged requests, and
//     reads of /healthz;
//   - depending on the round's kind (round % 4), kills at a random moment
//     (plain), a few milliseconds after POST /admin/flush?model=M (flush),
//     after POST /admin/purge with a random selector (purge: namespace, key,
//     older_than, expired or all), or as soon as RocksDB's compaction thread
//     ("rocksdb:low", seen in /proc) is running (compaction; provoked by
//     flushing a model of the overflow family, which compacts its range, and
//     by the level-0 files every reopen writes);
//   - after the kill runs `llmcache verify --json`, opens the database in
//     this process (Cache::Open, as the next serve would) and checks every
//     key against what the clients and the admin calls saw.
//
// What "acknowledged as stored" means: the proxy stores a clean miss before
// it answers (CachedClient::Finish inserts, then the session writes the
// body; a live stream's terminating chunk is written only after the insert),
// so a 200 with X-Cache: MISS whose body is a complete, clean completion (a
// stream: its last chunk and [DONE] received) is an acknowledgement, unless
// the answer says `X-Cache-Stored: 0`. The rules per key, with removals
// (flushes and purges) seen as intervals [sent, answered] (answered = never
// if the kill came first):
//   - must be present: some acknowledged store S such that every removal
//     that may cover the key was answered before S was sent (older_than:
//     or S is too young for it);
//   - must be absent: some answered removal that covers the key, and every
//     request for the key was answered before that removal was sent;
//   - otherwise either is fine (a store racing a removal, a request cut by
//     the kill).
// Present entries must also hold one of the bodies the clients received for
// the key (byte for byte for plain answers, the same message content for
// streams), and the statistics' entry count must equal the entries found.
//
// Environment (optional): LLMCACHE_CRASH_LOOP_ROUNDS (default 4),
// LLMCACHE_CRASH_LOOP_SEED (printed on every run, to replay one),
// LLMCACHE_CRASH_LOOP_CLIENTS (default 3), LLMCACHE_CRASH_LOOP_BIN (the
// `llmcache` binary; default: the one built with this test). The long run,
// 200 rounds: scripts/crash_loop.sh.

#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fake_openrouter.h"
#include "llmcache/cache.h"
#include "llmcache/key.h"
#include "llmcache/options.h"
#include "testing/http_client.h"
#include "testing/status_matchers.h"
#include "testing/subprocess.h"
#include "testing/temp_dir.h"
#include "testing/wait.h"

#ifndef LLMCACHE_BIN
#error "LLMCACHE_BIN must name the llmcache executable"
#endif

namespace llmcache {
namespace {

namespace json = boost::json;
using ::llmcache::testing::HttpConnection;
using ::llmcache::testing::HttpHeaders;
using ::llmcache::testing::HttpReply;
using ::llmcache::testing::WaitFor;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int kDefaultRounds = 4;  // each kind of round once
constexpr int kDefaultClients = 3;
constexpr int kModels = 72;  // more than the 64 column families a cache has
constexpr char kApiKey[] = "sk-crash-loop";
constexpr char kAdminToken[] = "crash-admin";
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
// Slack between this process's steady clock and the server's wall clock
// (entries' creation times, for older_than).
constexpr int64_t kClockSlackMs = 50;

uint64_t EnvU64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 10);
}

std::string Bin() {
  const char* v = std::getenv("LLMCACHE_CRASH_LOOP_BIN");
  return (v != nullptr && *v != '\0') ? v : LLMCACHE_BIN;
}

int64_t NowMs(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() -
                                                               start)
      .count();
}

std::string ModelName(int i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "crash/m%02d", i);
  return buf;
}

const char* const kNamespaces[] = {"", "ns-a", "ns-b"};

std::string RequestBody(const std::string& model, const std::string& text,
                        bool stream) {
  json::object o;
  o["model"] = model;
  o["temperature"] = 0;
  o["messages"] =
      json::array{json::object{{"role", "user"}, {"content", text}}};
  if (stream) o["stream"] = true;
  return json::serialize(o);
}

// choices[0].message.content of a completion body; nullopt unless it is a
// completion with string content.
std::optional<std::string> MessageContent(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const json::value* choices = v.as_object().if_contains("choices");
  if (choices == nullptr || !choices->is_array() ||
      choices->as_array().empty()) {
    return std::nullopt;
  }
  const json::value& c = choices->as_array()[0];
  if (!c.is_object()) return std::nullopt;
  const json::value* m = c.as_object().if_contains("message");
  if (m == nullptr || !m->is_object()) return std::nullopt;
  const json::value* content = m->as_object().if_contains("content");
  if (content == nullptr || !content->is_string()) return std::nullopt;
  return std::string(content->as_string());
}

// The content a clean event stream delivered (the deltas' content, joined),
// or nullopt if it is not a clean stream ending with [DONE].
std::optional<std::string> StreamContent(std::string_view body) {
  std::string content;
  bool done = false;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find('\n', pos);
    if (end == std::string_view::npos) end = body.size();
    std::string_view line = body.substr(pos, end - pos);
    pos = end + 1;
    if (!line.starts_with("data:")) continue;
    line.remove_prefix(5);
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (line == "[DONE]") {
      done = true;
      continue;
    }
    if (done) return std::nullopt;  // events after [DONE]
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    if (ec || !v.is_object()) return std::nullopt;
    if (v.as_object().contains("error")) return std::nullopt;
    const json::value* choices = v.as_object().if_contains("choices");
    if (choices == nullptr || !choices->is_array()) continue;
    for (const json::value& c : choices->as_array()) {
      const json::value* d =
          c.is_object() ? c.as_object().if_contains("delta") : nullptr;
      const json::value* t = (d != nullptr && d->is_object())
                                 ? d->as_object().if_contains("content")
                                 : nullptr;
      if (t != nullptr && t->is_string()) content += t->as_string();
    }
  }
  if (!done) return std::nullopt;
  return content;
}

// ---- What the clients and the admin calls saw ----

// One request for a key. Times in ms since the run started (steady clock).
struct Attempt {
  int64_t sent = 0;
  int64_t answered = kNever;  // kNever: no complete answer (the kill)
  // When it stopped having any effect: `answered`, or the kill of its round.
  int64_t ended = kNever;
  bool stored_ack = false;  // a MISS 200 whose clean body was received
  bool streamed = false;
  std::optional<std::string> body;  // plain MISS answers: the body
  std::optional<std::string> content;
  int round = 0;
};

struct KeyRecord {
  std::string model;
  std::string ns;
  std::string text;  // the user message (the request is RequestBody(...))
  std::vector<Attempt> attempts;
  bool listed = false;  // in Ledger's list of acknowledged keys
};

enum class RemovalKind { kModel, kNamespace, kKey, kOlderThan, kExpired, kAll };

struct Removal {
  RemovalKind kind = RemovalKind::kAll;
  std::string value;  // model, namespace or key hex
  int64_t age_ms = 0;
  int64_t sent = 0;
  int64_t answered = kNever;
  // When it stopped having any effect: `answered`, or the kill of its round.
  int64_t ended = kNever;
  int round = 0;
  std::string Describe() const {
    switch (kind) {
      case RemovalKind::kModel:
        return "flush model=" + value;
      case RemovalKind::kNamespace:
        return "purge namespace=" + value;
      case RemovalKind::kKey:
        return "purge key=" + value.substr(0, 12) + "...";
      case RemovalKind::kOlderThan:
        return "purge older_than=" + std::to_string(age_ms) + "ms";
      case RemovalKind::kExpired:
        return "purge expired=1";
      case RemovalKind::kAll:
        return "purge all=1";
    }
    return "?";
  }
};

// May `r` remove the entry of key `hex` (record `k`)?
bool Covers(const Removal& r, const std::string& hex, const KeyRecord& k) {
  switch (r.kind) {
    case RemovalKind::kModel:
      return BaseModel(k.model) == BaseModel(r.value);
    case RemovalKind::kNamespace:
      return k.ns == r.value;
    case RemovalKind::kKey:
      return hex == r.value;
    case RemovalKind::kOlderThan:
    case RemovalKind::kAll:
      return true;
    case RemovalKind::kExpired:
      return false;  // entries live 24 h
  }
  return true;
}

class Ledger {
 public:
  // Records an attempt for `hex` (known for repeats before the answer, for
  // unique requests from the answer's X-Cache-Key).
  void Add(const std::string& hex, const KeyRecord& proto, Attempt a) {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, inserted] = keys_.try_emplace(hex, proto);
    KeyRecord& k = it->second;
    if (inserted) {
      k.attempts.clear();
      k.listed = false;
    }
    if (a.stored_ack && !k.listed) {
      k.listed = true;
      acked_keys_.push_back(hex);
    }
    k.attempts.push_back(std::move(a));
  }

  // A key acknowledged earlier (for repeats and purge by key).
  std::optional<std::pair<std::string, KeyRecord>> RandomAcked(
      std::mt19937_64& rng) {
    std::lock_guard<std::mutex> lock(mu_);
    if (acked_keys_.empty()) return std::nullopt;
    const std::string& hex = acked_keys_[std::uniform_int_distribution<size_t>(
        0, acked_keys_.size() - 1)(rng)];
    KeyRecord r = keys_.at(hex);
    r.attempts.clear();
    return std::make_pair(hex, std::move(r));
  }

  void AddRemoval(Removal r) {
    std::lock_guard<std::mutex> lock(mu_);
    removals_.push_back(std::move(r));
  }

  // After the kill at `kill_ms`: whatever was not answered ended then.
  void Killed(int64_t kill_ms) {
    std::lock_guard<std::mutex> lock(mu_);
    for (Removal& r : removals_) {
      if (r.ended == kNever) r.ended = std::min(r.answered, kill_ms);
    }
    for (auto& [hex, k] : keys_) {
      for (Attempt& a : k.attempts) {
        if (a.ended == kNever) a.ended = std::min(a.answered, kill_ms);
      }
    }
  }

  // Not thread-safe: call with no client running.
  const std::map<std::string, KeyRecord>& keys() const { return keys_; }
  const std::vector<Removal>& removals() const { return removals_; }

 private:
  std::mutex mu_;
  std::map<std::string, KeyRecord> keys_;
  std::vector<std::string> acked_keys_;
  std::vector<Removal> removals_;
};

enum class Expect { kPresent, kAbsent, kEither };

struct Expectation {
  Expect expect = Expect::kEither;
  std::string why;  // for messages
};

Expectation Expected(const std::string& hex, const KeyRecord& k,
                     const std::vector<Removal>& removals) {
  // Must be present: an acknowledged store that every covering removal
  // preceded (or, for older_than, was too young for).
  for (const Attempt& s : k.attempts) {
    if (!s.stored_ack) continue;
    bool safe = true;
    for (const Removal& r : removals) {
      if (!Covers(r, hex, k)) continue;
      if (r.ended <= s.sent) continue;
      if (r.kind == RemovalKind::kOlderThan &&
          s.sent >= r.ended - r.age_ms + kClockSlackMs) {
        continue;
      }
      safe = false;
      break;
    }
    if (safe) {
      return {Expect::kPresent, "acknowledged in round " +
                                    std::to_string(s.round) + " at " +
                                    std::to_string(s.answered) + " ms"};
    }
  }
  // Must be absent: an answered covering removal after every request.
  for (const Removal& r : removals) {
    if (r.answered == kNever || !Covers(r, hex, k)) continue;
    const int64_t before = r.kind == RemovalKind::kOlderThan
                               ? r.sent - r.age_ms - kClockSlackMs
                               : r.sent;
    bool all_before = true;
    for (const Attempt& a : k.attempts) {
      if (a.ended > before) {
        all_before = false;
        break;
      }
    }
    if (all_before) {
      return {Expect::kAbsent, r.Describe() + " of round " +
                                   std::to_string(r.round) + " answered at " +
                                   std::to_string(r.answered) + " ms"};
    }
  }
  return {};
}

// ---- The server under test ----

std::vector<std::string> ServeArgs(const std::string& db,
                                   const std::string& upstream) {
  // Default durability: no flag about syncing, TTL or maintenance.
  return {Bin(),       "serve", "--listen",      "127.0.0.1:0",
          "--db",      db,      "--upstream",    upstream,
          "--threads", "2",     "--admin-token", kAdminToken};
}

uint16_t WaitListening(::llmcache::testing::BackgroundProcess& p,
                       std::chrono::milliseconds timeout) {
  uint16_t port = 0;
  WaitFor(
      [&] {
        const std::string out = p.Out();
        const size_t at = out.find("listening on http://");
        if (at != std::string::npos) {
          const size_t colon = out.find(':', at + 20);
          const size_t end = out.find_first_not_of("0123456789", colon + 1);
          if (colon != std::string::npos && end != std::string::npos) {
            port = static_cast<uint16_t>(
                std::stoi(out.substr(colon + 1, end - colon - 1)));
            return true;
          }
        }
        return p.Exited();
      },
      timeout);
  return port;
}

// Whether a thread of `pid` named rocksdb:low (RocksDB's compaction pool,
// util/threadpool_imp.cc names its threads "rocksdb:<priority>") is running
// or in disk wait, or has used CPU since the last call (`ticks`, per tid).
bool CompactionRunning(pid_t pid, std::map<std::string, uint64_t>* ticks) {
  const std::string base = "/proc/" + std::to_string(pid) + "/task";
  DIR* dir = opendir(base.c_str());
  if (dir == nullptr) return false;
  bool busy = false;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream stat_file(base + "/" + e->d_name + "/stat");
    std::string stat((std::istreambuf_iterator<char>(stat_file)),
                     std::istreambuf_iterator<char>());
    const size_t open = stat.find('(');
    const size_t close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    if (stat.compare(open + 1, close - open - 1, "rocksdb:low") != 0) continue;
    std::istringstream rest(stat.substr(close + 2));
    std::string state;
    rest >> state;
    std::string skip;
    for (int i = 0; i < 10; ++i) rest >> skip;  // fields 4..13
    uint64_t utime = 0, stime = 0;
    rest >> utime >> stime;
    uint64_t& last = (*ticks)[e->d_name];
    if (state == "R" || state == "D" || (last != 0 && utime + stime > last)) {
      busy = true;
    }
    last = utime + stime;
  }
  closedir(dir);
  return busy;
}

// Failed assertions of the running test so far.
int FailureCount() {
  const ::testing::TestResult* r =
      ::testing::UnitTest::GetInstance()->current_test_info()->result();
  int n = 0;
  for (int i = 0; i < r->total_part_count(); ++i) {
    if (r->GetTestPartResult(i).failed()) ++n;
  }
  return n;
}

enum class RoundKind { kPlain, kFlush, kPurge, kCompaction };

const char* KindName(RoundKind k) {
  switch (k) {
    case RoundKind::kPlain:
      return "plain";
    case RoundKind::kFlush:
      return "flush";
    case RoundKind::kPurge:
      return "purge";
    case RoundKind::kCompaction:
      return "compaction";
  }
  return "?";
}

struct Totals {
  int rounds = 0;
  int failed_rounds = 0;
  int kills_in_flush = 0;
  int kills_in_purge = 0;
  int kills_in_compaction = 0;
  int compaction_rounds_without_compaction = 0;
  uint64_t requests = 0;
  uint64_t acks = 0;
  uint64_t checked_present = 0;
  uint64_t checked_absent = 0;
  uint64_t lookups = 0;
};

class CrashLoop {
 public:
  CrashLoop(uint64_t seed, int clients, std::string upstream)
      : rng_(seed),
        seed_(seed),
        clients_(clients),
        upstream_(std::move(upstream)),
        start_(Clock::now()) {}

  // One round; adds to *totals. Fatal failures (the database does not open)
  // abort the test; missing entries are reported and counted.
  void Round(int round, RoundKind kind, Totals* totals);

  const std::string& db() const { return db_; }

 private:
  int64_t Now() const { return NowMs(start_); }

  // One completion request; records it.
  void SendCompletion(HttpConnection& c, const std::string& model,
                      const std::string& ns, const std::string& text,
                      bool stream, const std::optional<std::string>& known_hex,
                      int round);
  void ClientLoop(int id, int round, uint64_t seed);
  // POST /admin/<op>?<query> on a fresh connection; records the removal.
  void Admin(uint16_t port, const std::string& op, const std::string& query,
             Removal r);
  void Verify(int round, int64_t kill_ms, Totals* totals);

  std::mt19937_64 rng_;
  const uint64_t seed_;
  const int clients_;
  const std::string upstream_;
  const Clock::time_point start_;
  ::llmcache::testing::TempDir dir_{"llmcache-crash-loop"};
  const std::string db_ = dir_.Sub("db");
  Ledger ledger_;
  // Per model: statistics minus entries found, as last reported.
  std::map<std::string, int64_t> stale_counts_;
  std::atomic<bool> stop_{false};
  std::atomic<uint16_t> port_{0};
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> acks_{0};
  std::atomic<uint64_t> unique_{0};
  KeyBuilder keys_;
  const std::string scope_ = ApiKeyScope(kApiKey);
};

void CrashLoop::SendCompletion(HttpConnection& c, const std::string& model,
                               const std::string& ns, const std::string& text,
                               bool stream,
                               const std::optional<std::string>& known_hex,
                               int round) {
  HttpHeaders headers = {{"Authorization", std::string("Bearer ") + kApiKey}};
  if (!ns.empty()) headers.emplace_back("X-Cache-Namespace", ns);
  Attempt a;
  a.round = round;
  a.streamed = stream;
  a.sent = Now();
  requests_.fetch_add(1, std::memory_order_relaxed);
  const HttpReply r = c.Send("POST", "/v1/chat/completions",
                             RequestBody(model, text, stream), headers);
  if (r.status != 0) a.answered = Now();
  std::string hex = r.header("X-Cache-Key");
  if (known_hex) hex = *known_hex;
  if (hex.empty()) return;  // no answer: the key is new and unknown
  if (r.status == 200 && r.header("X-Cache") == "MISS" &&
      r.header("X-Cache-Stored") != "0") {
    if (stream) {
      a.content = StreamContent(r.body);
    } else {
      a.content = MessageContent(r.body);
      if (a.content) a.body = r.body;
    }
    a.stored_ack = a.content.has_value();
    if (a.stored_ack) acks_.fetch_add(1, std::memory_order_relaxed);
  }
  ledger_.Add(hex, KeyRecord{model, ns, text, {}}, std::move(a));
}

void CrashLoop::ClientLoop(int id, int round, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::unique_ptr<HttpConnection> c;
  while (!stop_.load()) {
    if (!c || !c->connected()) {
      c = std::make_unique<HttpConnection>(port_.load(), 5s);
      if (!c->connected()) {
        std::this_thread::sleep_for(5ms);
        continue;
      }
    }
    const int dice = std::uniform_int_distribution<int>(0, 99)(rng);
    if (dice < 3) {
      c->Send("GET", "/healthz");
      continue;
    }
    if (dice < 30) {
      if (auto k = ledger_.RandomAcked(rng)) {
        SendCompletion(*c, k->second.model, k->second.ns, k->second.text,
                       dice < 10, k->first, round);
        continue;
      }
    }
    const std::string model =
        ModelName(std::uniform_int_distribution<int>(0, kModels - 1)(rng));
    const std::string ns = kNamespaces[std::uniform_int_distribution<int>(
        0, std::size(kNamespaces) - 1)(rng)];
    const std::string text = "crash loop r" + std::to_string(round) + " c" +
                             std::to_string(id) + " #" +
                             std::to_string(unique_.fetch_add(1));
    SendCompletion(*c, model, ns, text, dice >= 80, std::nullopt, round);
  }
}

void CrashLoop::Admin(uint16_t port, const std::string& op,
                      const std::string& query, Removal r) {
  r.sent = Now();
  const HttpReply a = ::llmcache::testing::HttpSend(
      port, "POST", "/admin/" + op + "?" + query, "",
      {{"Authorization", std::string("Bearer ") + kAdminToken}}, 30s);
  if (a.status == 200) {
    r.answered = Now();
  } else if (a.status != 0) {
    ADD_FAILURE() << "/admin/" << op << "?" << query << ": " << a.status << " "
                  << a.body;
  }
  ledger_.AddRemoval(std::move(r));
}

void CrashLoop::Round(int round, RoundKind kind, Totals* totals) {
  SCOPED_TRACE("round " + std::to_string(round) + " (" + KindName(kind) +
               "), seed " + std::to_string(seed_));
  ::llmcache::testing::BackgroundOptions bo;
  bo.drop_env_prefixes = ::llmcache::testing::kLlmcacheEnvironment;
  bo.stdout_path = dir_.Sub("serve.out");
  bo.stderr_path = dir_.Sub("serve.err");
  ::llmcache::testing::BackgroundProcess serve(ServeArgs(db_, upstream_), bo);
  const Clock::time_point t0 = Clock::now();
  const uint16_t port = WaitListening(serve, 60s);
  const int64_t start_ms = NowMs(t0);
  ASSERT_NE(port, 0) << "llmcache serve did not start: " << serve.Err();
  port_.store(port);
  const uint64_t requests_before = requests_.load();
  const uint64_t acks_before = acks_.load();

  // One request per model, in order: the first 64 models (of an empty
  // database) get column families, the rest the overflow family.
  {
    HttpConnection c(port, 10s);
    for (int m = 0; m < kModels && c.connected(); ++m) {
      SendCompletion(
          c, ModelName(m), "",
          "warm-up r" + std::to_string(round) + " m" + std::to_string(m), false,
          std::nullopt, round);
    }
  }

  const int64_t warm_ms = NowMs(t0) - start_ms;
  stop_.store(false);
  std::vector<std::thread> clients;
  for (int i = 0; i < clients_; ++i) {
    clients.emplace_back(
        [this, i, round, s = rng_()] { ClientLoop(i, round, s); });
  }

  auto ms = [&](int lo, int hi) {
    return std::chrono::milliseconds(
        std::uniform_int_distribution<int>(lo, hi)(rng_));
  };
  std::thread admin;
  std::atomic<bool> admin_done{false};
  bool killed_in_compaction = false;
  switch (kind) {
    case RoundKind::kPlain:
      std::this_thread::sleep_for(ms(50, 1500));
      break;
    case RoundKind::kFlush:
    case RoundKind::kPurge: {
      std::this_thread::sleep_for(ms(100, 1000));
      Removal r;
      r.round = round;
      std::string op = "purge", query;
      if (kind == RoundKind::kFlush) {
        op = "flush";
        r.kind = RemovalKind::kModel;
        r.value =
            ModelName(std::uniform_int_distribution<int>(0, kModels - 1)(rng_));
        query = "model=" + r.value;
      } else {
        const int dice = std::uniform_int_distribution<int>(0, 99)(rng_);
        std::optional<std::pair<std::string, KeyRecord>> k;
        if (dice < 20) k = ledger_.RandomAcked(rng_);
        if (k) {
          r.kind = RemovalKind::kKey;
          r.value = k->first;
          query = "key=" + r.value;
        } else if (dice < 50) {
          r.kind = RemovalKind::kNamespace;
          r.value = kNamespaces[std::uniform_int_distribution<int>(1, 2)(rng_)];
          query = "namespace=" + r.value;
        } else if (dice < 70) {
          r.kind = RemovalKind::kOlderThan;
          r.age_ms = std::uniform_int_distribution<int>(1, 20)(rng_) * 100;
          query = "older_than=" + std::to_string(r.age_ms) + "ms";
        } else if (dice < 85) {
          r.kind = RemovalKind::kExpired;
          query = "expired=1";
        } else {
          r.kind = RemovalKind::kAll;
          query = "all=1";
        }
      }
      admin = std::thread([this, port, op, query, r, &admin_done] {
        Admin(port, op, query, r);
        admin_done.store(true);
      });
      // Mostly while the removal runs; sometimes after it.
      std::this_thread::sleep_for(ms(0, 30));
      if (std::uniform_int_distribution<int>(0, 3)(rng_) == 0) {
        std::this_thread::sleep_for(ms(0, 400));
      }
      break;
    }
    case RoundKind::kCompaction: {
      // Compactions run from the start (level-0 files written by the
      // reopen); provoked by POST /admin/compact (a full manual compaction)
      // or by a flush of an overflow model, which compacts its range.
      std::map<std::string, uint64_t> ticks;
      const auto provoke_at = Clock::now() + ms(50, 400);
      const auto deadline = Clock::now() + 5s;
      bool provoked = false;
      while (Clock::now() < deadline) {
        if (CompactionRunning(serve.pid(), &ticks)) {
          killed_in_compaction = true;
          break;
        }
        if (!provoked && Clock::now() >= provoke_at &&
            std::uniform_int_distribution<int>(0, 1)(rng_) == 0) {
          // A full manual compaction (POST /admin/compact).
          provoked = true;
          admin = std::thread([port, &admin_done] {
            const HttpReply a = ::llmcache::testing::HttpSend(
                port, "POST", "/admin/compact", "",
                {{"Authorization", std::string("Bearer ") + kAdminToken}}, 30s);
            if (a.status != 0 && a.status != 200) {
              ADD_FAILURE() << "/admin/compact: " << a.status << " " << a.body;
            }
            admin_done.store(true);
          });
        }
        if (!provoked && Clock::now() >= provoke_at) {
          provoked = true;
          Removal r;
          r.round = round;
          r.kind = RemovalKind::kModel;
          r.value = ModelName(
              std::uniform_int_distribution<int>(64, kModels - 1)(rng_));
          admin = std::thread([this, port, r, &admin_done] {
            Admin(port, "flush", "model=" + r.value, r);
            admin_done.store(true);
          });
        }
        std::this_thread::sleep_for(200us);
      }
      break;
    }
  }
  serve.Signal(SIGKILL);
  const int64_t kill_ms = Now();
  const bool admin_pending = admin.joinable() && !admin_done.load();
  const int code = serve.Wait(10s);
  stop_.store(true);
  for (std::thread& t : clients) t.join();
  if (admin.joinable()) admin.join();
  ledger_.Killed(kill_ms);
  ASSERT_EQ(code, 128 + SIGKILL) << "serve ended on its own: " << serve.Err();

  if (admin_pending && kind == RoundKind::kFlush) ++totals->kills_in_flush;
  if (admin_pending && kind == RoundKind::kPurge) ++totals->kills_in_purge;
  if (killed_in_compaction) ++totals->kills_in_compaction;
  if (kind == RoundKind::kCompaction && !killed_in_compaction) {
    ++totals->compaction_rounds_without_compaction;
  }
  const uint64_t round_requests = requests_.load() - requests_before;
  const uint64_t round_acks = acks_.load() - acks_before;
  totals->requests += round_requests;
  totals->acks += round_acks;

  const int failures_before = FailureCount();
  Totals t;
  const Clock::time_point t1 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(Verify(round, kill_ms, &t));
  const int64_t verify_ms = NowMs(t1);
  const bool failed = FailureCount() != failures_before;
  totals->checked_present += t.checked_present;
  totals->checked_absent += t.checked_absent;
  totals->lookups += t.lookups;
  ++totals->rounds;
  if (failed) ++totals->failed_rounds;
  const Removal* last =
      ledger_.removals().empty() ? nullptr : &ledger_.removals().back();
  std::string admin_note;
  if (last != nullptr && last->round == round) {
    admin_note = ", " + last->Describe() +
                 (admin_pending ? " (killed while running)" : " (answered)");
  }
  std::printf("round %3d %-10s killed at %7" PRId64 " ms%s%s: %" PRIu64
              " requests, %" PRIu64 " acknowledged stores; present %" PRIu64
              ", absent %" PRIu64 ", lookups %" PRIu64 " (start %" PRId64
              " ms, warm-up %" PRId64 " ms, verify %" PRId64 " ms)%s\n",
              round, KindName(kind), kill_ms,
              killed_in_compaction ? " during a compaction" : "",
              admin_note.c_str(), round_requests, round_acks, t.checked_present,
              t.checked_absent, t.lookups, start_ms, warm_ms, verify_ms,
              failed ? "  FAILED" : "");
  std::fflush(stdout);
}

void CrashLoop::Verify(int round, int64_t kill_ms, Totals* totals) {
  (void)kill_ms;
  // 1. `llmcache verify` (inspection mode, as a user runs it).
  const ::llmcache::testing::ProcessResult v = ::llmcache::testing::RunProcess(
      {Bin(), "verify", "--db", db_, "--json"}, "", {},
      ::llmcache::testing::kLlmcacheEnvironment);
  EXPECT_EQ(v.exit_code, 0)
      << "llmcache verify (signal " << v.term_signal << "): " << v.out << v.err;
  {
    boost::system::error_code ec;
    json::value j = json::parse(v.out, ec);
    EXPECT_FALSE(ec) << "llmcache verify --json printed: " << v.out;
    if (!ec && j.is_object() && j.as_object().contains("problems")) {
      EXPECT_EQ(j.as_object().at("problems").to_number<int64_t>(), 0) << v.out;
    }
  }

  // 2. Open it as the next serve would, and read every entry.
  CacheOptions o;
  o.path = db_;
  o.create_if_missing = false;
  o.memory_tier_bytes = 0;
  o.maintenance_interval_ms = 0;
  Result<std::unique_ptr<Cache>> opened = Cache::Open(o);
  ASSERT_OK(opened) << "the database does not open after the kill";
  Cache& cache = **opened;
  struct Found {
    std::string model;
    std::string ns;
    std::string body;
  };
  std::unordered_map<std::string, Found> found;
  uint64_t corrupt = 0;
  std::vector<std::string> corrupt_keys;
  const Status s = cache.ForEachEntry(
      std::nullopt,
      [&](const EntryView& e) {
        found[DigestToHex(e.digest)] =
            Found{e.entry.meta.model, e.entry.meta.ns, e.entry.body};
        return true;
      },
      [&](std::string_view key, const Status& st) {
        ++corrupt;
        if (corrupt_keys.size() < 10) {
          corrupt_keys.push_back(std::string(key) + ": " + st.ToString());
        }
      });
  ASSERT_OK(s);
  EXPECT_EQ(corrupt, 0u) << ::testing::PrintToString(corrupt_keys);
  Result<CacheStats> stats = cache.GetStats();
  ASSERT_OK(stats);
  // The statistics' entry counts are written in the same batch as the
  // entries, so they must match what is there. A discrepancy is reported
  // once (it stays until the model is flushed again), then only new ones.
  {
    std::map<std::string, uint64_t> per_model;
    for (const auto& [hex, f] : found) {
      ++per_model[std::string(BaseModel(f.model))];
    }
    std::string diff;
    for (const ModelStats& m : stats->models) {
      const int64_t d = static_cast<int64_t>(m.entries) -
                        static_cast<int64_t>(per_model[m.model]);
      auto known = stale_counts_.find(m.model);
      if (d == 0 || (known != stale_counts_.end() && known->second == d)) {
        continue;
      }
      stale_counts_[m.model] = d;
      diff += "\n  " + m.model + ": statistics " + std::to_string(m.entries) +
              ", found " + std::to_string(per_model[m.model]) +
              (m.own_column_family ? " (own column family)"
                                   : " (no column family)");
    }
    if (!diff.empty()) {
      ADD_FAILURE() << "the statistics count " << stats->entries
                    << " entries, the database holds " << found.size()
                    << " (round " << round << ", seed " << seed_
                    << "):" << diff;
    }
  }

  // 3. Every key against what the clients saw.
  std::vector<std::string> missing, resurrected, wrong;
  uint64_t lookups = 0;
  for (const auto& [hex, k] : ledger_.keys()) {
    const Expectation e = Expected(hex, k, ledger_.removals());
    auto it = found.find(hex);
    if (e.expect == Expect::kPresent) {
      ++totals->checked_present;
      if (it == found.end()) {
        missing.push_back(hex + " (" + k.model + ", ns '" + k.ns + "', " +
                          e.why + ")");
        continue;
      }
    } else if (e.expect == Expect::kAbsent) {
      ++totals->checked_absent;
      if (it != found.end()) {
        resurrected.push_back(hex + " (" + k.model + ", ns '" + k.ns +
                              "', removed by " + e.why + ")");
      }
      continue;
    }
    if (it == found.end()) continue;
    // Present: is it what some answer delivered?
    const Found& f = it->second;
    bool unanswered = false, any_body = false, body_ok = false,
         content_ok = false;
    const std::optional<std::string> content = MessageContent(f.body);
    for (const Attempt& a : k.attempts) {
      if (a.answered == kNever) unanswered = true;
      if (a.body) {
        any_body = true;
        if (*a.body == f.body) body_ok = true;
      }
      if (a.content && content && *a.content == *content) content_ok = true;
    }
    if (f.model != k.model || f.ns != k.ns) {
      wrong.push_back(hex + ": stored as " + f.model + " ns '" + f.ns +
                      "', requested " + k.model + " ns '" + k.ns + "'");
    } else if (!unanswered && !content_ok) {
      wrong.push_back(
          hex + ": its content matches no answer: " + f.body.substr(0, 120));
    } else if (!unanswered && any_body && !body_ok &&
               std::all_of(k.attempts.begin(), k.attempts.end(),
                           [](const Attempt& a) { return !a.streamed; })) {
      wrong.push_back(hex + ": its body matches no plain answer");
    }
    // The lookup path, with the key computed here as the proxy computes it,
    // for this round's keys.
    if (e.expect == Expect::kPresent && k.attempts.back().round == round &&
        lookups < 500) {
      Result<RequestKey> key = keys_.Compute(
          RequestBody(k.model, k.text, false), {.ns = k.ns, .scope = scope_});
      ASSERT_OK(key);
      EXPECT_EQ(key->Hex(), hex) << "X-Cache-Key differs from the key";
      Result<LookupResult> r = cache.Lookup(*key);
      ASSERT_OK(r);
      EXPECT_TRUE(r->hit()) << "lookup of " << hex << " (" << k.model << ")";
      if (r->hit()) {
        EXPECT_EQ(r->entry->body, f.body);
      }
      ++lookups;
    }
  }
  totals->lookups += lookups;
  auto head = [](const std::vector<std::string>& list) {
    std::string out;
    for (size_t i = 0; i < list.size() && i < 20; ++i) out += "\n  " + list[i];
    if (list.size() > 20)
      out += "\n  ... " + std::to_string(list.size() - 20) + " more";
    return out;
  };
  EXPECT_TRUE(missing.empty())
      << missing.size() << " acknowledged entries missing after the kill"
      << " (round " << round << ", seed " << seed_ << "):" << head(missing);
  EXPECT_TRUE(resurrected.empty())
      << resurrected.size() << " removed entries are back after the kill"
      << " (round " << round << ", seed " << seed_ << "):" << head(resurrected);
  EXPECT_TRUE(wrong.empty()) << wrong.size() << " entries differ from what "
                             << "was answered (round " << round << ", seed "
                             << seed_ << "):" << head(wrong);
}

TEST(ServeCrashLoop, AcknowledgedStoresSurviveKill9OfServe) {
  const uint64_t seed =
      EnvU64("LLMCACHE_CRASH_LOOP_SEED", std::random_device{}());
  const int rounds = static_cast<int>(EnvU64(
      "LLMCACHE_CRASH_LOOP_ROUNDS", static_cast<uint64_t>(kDefaultRounds)));
  const int clients = static_cast<int>(EnvU64(
      "LLMCACHE_CRASH_LOOP_CLIENTS", static_cast<uint64_t>(kDefaultClients)));
  std::printf("crash loop: seed %" PRIu64
              " (replay with LLMCACHE_CRASH_LOOP_SEED=%" PRIu64
              "), %d rounds, %d clients, %s\n",
              seed, seed, rounds, clients, Bin().c_str());
  RecordProperty("seed", std::to_string(seed));
  ASSERT_EQ(access(Bin().c_str(), X_OK), 0) << Bin() << " is not executable";

  fake::FakeOptions fo;
  auto f = fake::FakeOpenRouter::Start(fo);
  ASSERT_OK(f);
  std::unique_ptr<fake::FakeOpenRouter> fake = std::move(f).value();

  CrashLoop loop(seed, clients, fake->base_url());
  Totals totals;
  const auto started = Clock::now();
  for (int round = 0; round < rounds; ++round) {
    const RoundKind kind = static_cast<RoundKind>(round % 4);
    ASSERT_NO_FATAL_FAILURE(loop.Round(round, kind, &totals));
  }
  const double seconds =
      std::chrono::duration<double>(Clock::now() - started).count();
  std::printf(
      "crash loop summary: %d rounds, seed %" PRIu64
      "; kills during a flush %d, during a purge %d, during a compaction %d "
      "(compaction rounds without a compaction seen: %d); %" PRIu64
      " requests, %" PRIu64 " acknowledged stores; entries checked: %" PRIu64
      " present, %" PRIu64 " absent, %" PRIu64
      " looked up; failed rounds %d; %.0f s\n",
      totals.rounds, seed, totals.kills_in_flush, totals.kills_in_purge,
      totals.kills_in_compaction, totals.compaction_rounds_without_compaction,
      totals.requests, totals.acks, totals.checked_present,
      totals.checked_absent, totals.lookups, totals.failed_rounds, seconds);
  EXPECT_GT(totals.acks, 0u);
  EXPECT_GT(totals.checked_present, 0u);
}

}  // namespace
}  // namespace llmcache
