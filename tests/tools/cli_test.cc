// Tests of the `llmcache` command, run as a subprocess exactly as an operator
// runs it: on databases filled through the engine, on a database held open by
// a second live process, and against the fake OpenRouter for `warm`.

#include <rocksdb/perf_context.h>
#include <rocksdb/sst_file_reader.h>
#include <signal.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cli/progress.h"
#include "cli/util.h"
#include "fake_openrouter.h"
#include "format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmcache/cache.h"
#include "llmcache/entry.h"
#include "llmcache/key.h"
#include "rocks_cache.h"
#include "testing/status_matchers.h"
#include "testing/subprocess.h"
#include "testing/temp_dir.h"
#include "testing/test_cache.h"
#include "testing/test_keys.h"
#include "testing/wait.h"

namespace llmcache {
namespace {

namespace json = boost::json;
using ::llmcache::testing::ProcessResult;
using ::llmcache::testing::RunProcess;
using ::llmcache::testing::TempDir;
using ::llmcache::testing::TestKey;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

constexpr char kBin[] = LLMCACHE_BIN;

// `llmcache <args>` with our environment minus llmcache's own settings plus
// `env`.
ProcessResult Llmcache(std::vector<std::string> args,
                       const std::string& input = "",
                       const std::vector<std::string>& env = {}) {
  args.insert(args.begin(), kBin);
  return RunProcess(args, input, env, testing::kLlmcacheEnvironment);
}

json::object ParseObject(const std::string& text) {
  boost::system::error_code ec;
  json::parse_options deep;
  deep.max_depth = 256;  // stored responses may nest deeper than 32
  json::value v = json::parse(text, ec, json::storage_ptr(), deep);
  EXPECT_FALSE(ec) << "not JSON: " << text;
  if (ec || !v.is_object()) return {};
  return v.as_object();
}

std::string WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
  return path;
}

std::string Body(const std::string& content) {
  return R"({"id":"gen-1","object":"chat.completion","model":"openai/gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":")" +
         content +
         R"("},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}})";
}

constexpr char kRequest[] =
    R"({"model":"openai/gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"Say hi"}],"max_tokens":64})";
// kRequest reordered and reformatted: the same key.
constexpr char kRequestTwin[] = R"({
  "messages": [ { "content": "Say hi", "role": "user" } ],
  "max_tokens": 64.0,
  "temperature": 0.0,
  "model": "openai/gpt-4o-mini"
})";
// A sampling parameter changed: a different key.
constexpr char kRequestTopP[] =
    R"({"model":"openai/gpt-4o-mini","temperature":0,"top_p":0.5,"messages":[{"role":"user","content":"Say hi"}],"max_tokens":64})";

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override { db_ = dir_.path() + "/db"; }

  // Fill(), without the expired entry, exported: the 6 lines an import of a
  // clean export reads.
  void ExportLiveEntries(std::string* out) {
    ASSERT_NO_FATAL_FAILURE(Fill());
    ASSERT_EQ(Llmcache({"purge", "--db", db_, "--expired"}).exit_code, 0);
    ProcessResult exp = Llmcache({"export", "--db", db_});
    ASSERT_EQ(exp.exit_code, 0) << exp.err;
    *out = std::move(exp.out);
  }

  // Fills the database through the engine: 3 entries of gpt-4o-mini (one in
  // namespace "docs", one created two days ago), 2 of claude, 1 expired.
  void Fill() {
    auto cache = testing::OpenTestCache(db_);
    ASSERT_OK(cache.status());
    const int64_t now = cli::NowMs();
    InsertOptions io;
    io.usage.prompt_tokens = 12;
    io.usage.completion_tokens = 5;
    io.usage.cost_nanousd = 42000;
    io.resolved_model = "openai/gpt-4o-mini-2024-07-18";
    ASSERT_OK(
        (*cache)->Insert(TestKey("openai/gpt-4o-mini", 1), Body("one"), io));
    InsertOptions docs = io;
    docs.ns = "docs";
    ASSERT_OK(
        (*cache)->Insert(TestKey("openai/gpt-4o-mini", 2), Body("two"), docs));
    InsertOptions old = io;
    old.created_ms = now - 2 * 86'400'000LL;
    old.expires_ms = now + 86'400'000LL;
    ASSERT_OK(
        (*cache)->Insert(TestKey("openai/gpt-4o-mini", 3), Body("three"), old));
    InsertOptions claude = io;
    claude.resolved_model = "anthropic/claude-sonnet-4.5-20250929";
    ASSERT_OK((*cache)->Insert(TestKey("anthropic/claude-sonnet-4.5", 1),
                               Body("four"), claude));
    ASSERT_OK(
        (*cache)->Insert(TestKey("anthropic/claude-sonnet-4.5:thinking", 2),
                         Body("five"), claude));
    InsertOptions expired = io;
    expired.created_ms = now - 10'000;
    expired.expires_ms = now - 5'000;
    ASSERT_OK((*cache)->Insert(TestKey("openai/gpt-4o-mini", 4), Body("gone"),
                               expired));
    // The real request's key, as the CLI computes it.
    KeyBuilder keys;
    auto key = keys.Compute(kRequest, {});
    ASSERT_OK(key.status());
    ASSERT_OK((*cache)->Insert(*key, Body("hi"), io));
  }

  std::vector<std::string> LsKeys(const std::string& db) {
    ProcessResult r = Llmcache({"ls", "--db", db, "--json", "--limit", "0"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> keys;
    json::object o = ParseObject(r.out);
    if (!o.contains("entries")) return keys;
    for (const auto& e : o["entries"].as_array()) {
      keys.push_back(std::string(e.at("key").as_string()));
    }
    return keys;
  }

  // `copy` lists as db_ does, and holds the same stored response, usage and
  // endpoint under each of `keys`.
  void ExpectSameStore(const std::string& copy,
                       std::initializer_list<RequestKey> keys) {
    ProcessResult a = Llmcache({"ls", "--db", db_, "--json", "--limit", "0"});
    ProcessResult b = Llmcache({"ls", "--db", copy, "--json", "--limit", "0"});
    ASSERT_EQ(a.exit_code, 0);
    EXPECT_EQ(a.out, b.out);
    for (const RequestKey& key : keys) {
      json::object sa =
          ParseObject(Llmcache({"show", "--json", "--db", db_, key.Hex()}).out);
      json::object sb = ParseObject(
          Llmcache({"show", "--json", "--db", copy, key.Hex()}).out);
      EXPECT_EQ(sa["response"], sb["response"]) << key.Hex();
      EXPECT_EQ(sa["usage"], sb["usage"]) << key.Hex();
      EXPECT_EQ(sa["endpoint"], sb["endpoint"]) << key.Hex();
    }
  }

  TempDir dir_;
  std::string db_;
};

// ---- every verb's --help, usage errors ----

TEST(CliHelpTest, EveryVerbHasHelp) {
  for (const char* verb :
       {"stats", "models", "ls", "show", "key", "get", "purge", "compact",
        "export", "import", "verify", "warm", "serve", "fake-openrouter"}) {
    ProcessResult r = Llmcache({verb, "--help"});
    EXPECT_EQ(r.exit_code, 0) << verb << ": " << r.err;
    EXPECT_THAT(r.out, HasSubstr(verb)) << verb;
    EXPECT_THAT(r.out, HasSubstr("--help")) << verb;
    // The database footer only where there is a database.
    const bool has_db = std::string_view(verb) != "key" &&
                        std::string_view(verb) != "fake-openrouter";
    EXPECT_EQ(r.out.find("--db") != std::string::npos, has_db) << verb;
    EXPECT_THAT(r.out, HasSubstr("Exit codes")) << verb;
  }
  ProcessResult top = Llmcache({"--help"});
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_THAT(top.out, HasSubstr("Exit codes"));
  EXPECT_THAT(top.out, HasSubstr("purge"));
}

TEST(CliHelpTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Llmcache({}).exit_code, 2);
  EXPECT_EQ(Llmcache({"no-such-verb"}).exit_code, 2);
  // --help after an unknown verb printed the main help and exited 0.
  const ProcessResult unknown = Llmcache({"flush", "--help"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("unknown verb 'flush'"));
  EXPECT_EQ(Llmcache({"purge", "--help"}).exit_code, 0);
  EXPECT_EQ(Llmcache({"stats", "--no-such-flag"}).exit_code, 2);
  EXPECT_EQ(Llmcache({"show"}).exit_code, 2);  // KEY is required
  EXPECT_EQ(Llmcache({"ls", "--limit", "many"}).exit_code, 2);
}

// A negative TTL was taken as "none given", and one of 13 digits overflowed
// into milliseconds; a timeout of 0 or less failed every request.
TEST(CliHelpTest, WarmRefusesTtlsAndTimeoutsOutOfRange) {
  for (const std::vector<std::string>& flags :
       std::vector<std::vector<std::string>>{{"--ttl", "-5"},
                                             {"--ttl", "1000000000000"},
                                             {"--timeout", "0"},
                                             {"--timeout", "-1"},
                                             {"--timeout", "604801"}}) {
    std::vector<std::string> args = {"warm", "--db", "/nonexistent/llmcache"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back("-");
    ProcessResult r = Llmcache(args);
    EXPECT_EQ(r.exit_code, 2) << flags[0] << " " << flags[1] << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(flags[0])) << flags[1];
  }
}

// ---- reporting verbs on a database filled through the engine ----

TEST_F(CliTest, StatsReportsTotalsAndModels) {
  Fill();
  ProcessResult r = Llmcache({"stats", "--db", db_, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json::object s = ParseObject(r.out);
  EXPECT_EQ(s["entries"].to_number<uint64_t>(), 7u);
  EXPECT_EQ(s["inserts"].to_number<uint64_t>(), 7u);
  ASSERT_TRUE(s["models"].is_array());
  ASSERT_EQ(s["models"].as_array().size(), 2u);
  EXPECT_EQ(s["models"].as_array()[0].at("model").as_string(),
            "anthropic/claude-sonnet-4.5");
  EXPECT_EQ(s["models"].as_array()[0].at("entries").to_number<uint64_t>(), 2u);
  EXPECT_TRUE(
      s["bypasses_by_reason"].as_object().contains("non_zero_temperature"));
  // Doubles in plain decimals: no "0E0" or "5.297342081717864E-2" (Boost.JSON
  // 1.81's own form).
  EXPECT_THAT(r.out, HasSubstr("\"cost_saved_usd\":0.0,"));
  EXPECT_THAT(r.out, Not(ContainsRegex("[0-9]E[-+0-9]")));

  ProcessResult text = Llmcache({"stats", "--db", db_});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("hit rate"));
  EXPECT_THAT(text.out, HasSubstr("openai/gpt-4o-mini"));
  EXPECT_THAT(text.out, HasSubstr("cost saved"));
  // The stored bytes of a small database are mostly the files' keys,
  // indexes and filters: over 100% of the entries, which is said.
  EXPECT_THAT(text.out,
              ContainsRegex("compressed +[0-9.]+ KiB \\([0-9.]+% of the "
                            "entries' uncompressed size: the files also hold "
                            "keys, indexes, filters and removed entries"))
      << text.out;
  // Every entry purged, the files not yet compacted: no percentage of
  // nothing.
  ProcessResult purged =
      Llmcache({"purge", "--db", db_, "--older-than", "0s", "--yes"});
  ASSERT_EQ(purged.exit_code, 0) << purged.err;
  ProcessResult empty = Llmcache({"stats", "--db", db_});
  ASSERT_EQ(empty.exit_code, 0) << empty.err;
  EXPECT_THAT(empty.out, HasSubstr("entries        0 ")) << empty.out;
  EXPECT_THAT(empty.out, Not(HasSubstr("% of the entries"))) << empty.out;
  EXPECT_THAT(empty.out, ContainsRegex("compressed +[0-9.]+ KiB \\(no entries: "
                                       "removed ones, keys, indexes"))
      << empty.out;
}

// Model ids are whatever a client sent (the upstream answered them): text
// views print their control characters and invalid UTF-8 escaped, so that an
// id cannot recolour the terminal, set its title or add a fake row.
TEST_F(CliTest, TextViewsEscapeControlCharactersInModelIds) {
  const std::string hostile =
      "esc\x1b[31mRED\x1b]0;pwned\x07\nspoofed/model 999 \xc2\x9b ok-\xc3\xa9";
  const std::string shown =
      "esc\\x1b[31mRED\\x1b]0;pwned\\x07\\x0aspoofed/model 999 "
      "\\xc2\\x9b ok-\xc3\xa9";
  const std::string resolved = hostile + "-resolved";
  {
    auto cache = testing::OpenTestCache(db_);
    ASSERT_OK(cache.status());
    InsertOptions o;
    o.resolved_model = resolved;
    ASSERT_OK((*cache)->Insert(TestKey(hostile, 1), Body("one"), o));
  }
  for (const char* verb : {"models", "stats", "ls"}) {
    ProcessResult r = Llmcache({verb, "--db", db_});
    ASSERT_EQ(r.exit_code, 0) << verb << ": " << r.err;
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << verb;
    EXPECT_EQ(r.out.find('\x07'), std::string::npos) << verb;
    EXPECT_EQ(r.out.find("\nspoofed"), std::string::npos) << verb;
    EXPECT_THAT(r.out, HasSubstr(shown)) << verb;
  }
  ProcessResult ls = Llmcache({"ls", "--db", db_, "--json"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_EQ(
      ParseObject(ls.out)["entries"].as_array()[0].at("model").as_string(),
      hostile);
  ProcessResult show =
      Llmcache({"show", "--db", db_, TestKey(hostile, 1).Hex()});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_EQ(show.out.find('\x1b'), std::string::npos);
  EXPECT_THAT(show.out, HasSubstr("resolved model  " + shown + "-resolved"));
}

TEST(CliServeFileTest, ReadsOnlyWhatTheHolderWrote) {
  TempDir dir;
  const std::string db = dir.Sub("db");
  std::filesystem::create_directories(db);
  EXPECT_FALSE(cli::ReadServeFile(db, 42));
  ASSERT_TRUE(cli::WriteServeFile(db, 42, "http://127.0.0.1:9123"));
  EXPECT_EQ(cli::ReadServeFile(db, 42), "http://127.0.0.1:9123");
  EXPECT_FALSE(cli::ReadServeFile(db, 43));  // left by another process
  cli::RemoveServeFile(db, 43);              // not its file: kept
  EXPECT_TRUE(cli::ReadServeFile(db, 42));
  cli::RemoveServeFile(db, 42);
  EXPECT_FALSE(std::filesystem::exists(db + "/LLMCACHE-SERVE"));
  std::ofstream(db + "/LLMCACHE-SERVE") << "pid 42\nurl javascript:x\n";
  EXPECT_FALSE(cli::ReadServeFile(db, 42));
}

TEST(CliProxyUrlTest, SplitsRootAndPathAndRefusesTheRest) {
  std::optional<cli::ProxyUrl> u = cli::ParseProxyUrl("http://127.0.0.1:8080");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->root, "http://127.0.0.1:8080");
  EXPECT_EQ(u->path, "");
  u = cli::ParseProxyUrl("https://[::1]:8443/v1//");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->root, "https://[::1]:8443");
  EXPECT_EQ(u->path, "/v1");
  u = cli::ParseProxyUrl("http://cache.internal/");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->root, "http://cache.internal");
  EXPECT_EQ(u->path, "");
  for (const char* bad :
       {"", "127.0.0.1:8080", "ftp://h", "http://", "http:///v1",
        "http://h/v1?x=1", "http://h#f", "http://user:pw@h:8080",
        "http://:8080", "http://h//v1"}) {
    EXPECT_FALSE(cli::ParseProxyUrl(bad).has_value()) << bad;
  }
}

TEST(CliDisplayWidthTest, CountsColumnsNotBytes) {
  EXPECT_EQ(cli::DisplayWidth(""), 0u);
  EXPECT_EQ(cli::DisplayWidth("openai/gpt-4o"), 13u);
  EXPECT_EQ(cli::DisplayWidth("ov/a\xc3\xa9"), 5u);              // é
  EXPECT_EQ(cli::DisplayWidth("e\xcc\x81"), 1u);                 // e + U+0301
  EXPECT_EQ(cli::DisplayWidth("\xe6\xa8\xa1\xe5\x9e\x8b"), 4u);  // 模型
  EXPECT_EQ(cli::DisplayWidth("\xf0\x9f\x98\x80"), 2u);          // emoji
  EXPECT_EQ(cli::DisplayWidth("\\xc2\\x9b"), 8u);  // as Printable escapes
}

// Rows with non-ASCII model ids line up: padding counts columns.
TEST_F(CliTest, TablesAlignNonAsciiModelIds) {
  {
    auto cache = testing::OpenTestCache(db_);
    ASSERT_OK(cache.status());
    int i = 0;
    for (const char* model :
         {"ov/a\xc3\xa9", "ov/\xe6\xa8\xa1\xe5\x9e\x8b", "ov/plain-ascii"}) {
      ASSERT_OK((*cache)->Insert(TestKey(model, ++i), Body("one"), {}));
    }
  }
  ProcessResult models = Llmcache({"models", "--db", db_});
  ASSERT_EQ(models.exit_code, 0) << models.err;
  std::istringstream lines(models.out);
  std::string line;
  std::vector<size_t> entries_end;  // where the ENTRIES column ends
  while (std::getline(lines, line)) {
    const size_t at = line.find("ENTRIES") != std::string::npos
                          ? line.find("ENTRIES") + 7
                          : line.find(" 1 ") + 2;
    entries_end.push_back(cli::DisplayWidth(line.substr(0, at)));
  }
  ASSERT_GE(entries_end.size(), 4u) << models.out;
  for (size_t w : entries_end) EXPECT_EQ(w, entries_end[0]) << models.out;
}

TEST(CliPrintableTest, EscapesControlsAndInvalidUtf8Only) {
  EXPECT_EQ(cli::Printable("openai/gpt-4o-mini:free"),
            "openai/gpt-4o-mini:free");
  EXPECT_EQ(cli::Printable("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 a\\b"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 a\\b");
  EXPECT_EQ(cli::Printable(std::string("a\0b\tc\x7f", 6)),
            "a\\x00b\\x09c\\x7f");
  // C1 controls in UTF-8 (U+009B is CSI); U+00A0 is text.
  EXPECT_EQ(cli::Printable("\xc2\x9b\xc2\xa0"), "\\xc2\\x9b\xc2\xa0");
  // A stray continuation byte, a truncated sequence, an overlong lead, 0xff.
  EXPECT_EQ(cli::Printable("\x80x\xe2\x82y\xc0\xaf\xff"),
            "\\x80x\\xe2\\x82y\\xc0\\xaf\\xff");
  // Overlong 3- and 4-byte forms, a surrogate, past U+10FFFF.
  EXPECT_EQ(cli::Printable("\xe0\x80\xaf|\xf0\x80\x80\xaf|\xed\xa0\x80|"
                           "\xf4\x90\x80\x80"),
            "\\xe0\\x80\\xaf|\\xf0\\x80\\x80\\xaf|\\xed\\xa0\\x80|"
            "\\xf4\\x90\\x80\\x80");
  // Bidirectional overrides and isolates, line separators; not other
  // punctuation of that block (U+2014 em dash).
  EXPECT_EQ(cli::Printable("g\xe2\x80\xae"
                           "h\xe2\x81\xa6"
                           "i\xe2\x80\xa8"
                           "j\xe2\x80\x94"),
            "g\\xe2\\x80\\xaeh\\xe2\\x81\\xa6i\\xe2\\x80\\xa8j\xe2\x80\x94");
  EXPECT_EQ(cli::Printable("a\nz"), "a\\x0az");
  EXPECT_EQ(cli::Printable("a\nz", /*keep_newlines=*/true), "a\nz");
}

TEST_F(CliTest, StatsCountsHitsAndSavings) {
  Fill();
  {
    auto cache = testing::OpenTestCache(db_);
    ASSERT_OK(cache.status());
    for (int i = 0; i < 3; ++i) {
      auto r = (*cache)->Lookup(TestKey("openai/gpt-4o-mini", 1));
      ASSERT_OK(r.status());
      ASSERT_TRUE(r->hit());
    }
    ASSERT_OK((*cache)->Lookup(TestKey("openai/gpt-4o-mini", 99)).status());
  }
  json::object s = ParseObject(Llmcache({"stats", "--db", db_, "--json"}).out);
  EXPECT_EQ(s["hits"].to_number<uint64_t>(), 3u);
  EXPECT_EQ(s["misses"].to_number<uint64_t>(), 1u);
  EXPECT_DOUBLE_EQ(s["hit_rate"].to_number<double>(), 0.75);
  EXPECT_EQ(s["tokens_saved"].to_number<uint64_t>(), 3u * 17u);
  EXPECT_NEAR(s["cost_saved_usd"].to_number<double>(), 3 * 42e-6, 1e-12);
}

TEST_F(CliTest, ModelsHasOneRowPerModel) {
  Fill();
  ProcessResult r = Llmcache({"models", "--db", db_, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json::array models = ParseObject(r.out)["models"].as_array();
  ASSERT_EQ(models.size(), 2u);
  const json::object& gpt = models[1].as_object();
  EXPECT_EQ(gpt.at("model").as_string(), "openai/gpt-4o-mini");
  EXPECT_EQ(gpt.at("entries").to_number<uint64_t>(), 5u);
  EXPECT_EQ(gpt.at("last_resolved_model").as_string(),
            "openai/gpt-4o-mini-2024-07-18");
  const int64_t now = cli::NowMs();
  EXPECT_LT(gpt.at("oldest_ms").to_number<int64_t>(), now - 86'400'000LL);
  EXPECT_GT(gpt.at("newest_ms").to_number<int64_t>(), now - 60'000);

  ProcessResult text = Llmcache({"models", "--db", db_});
  EXPECT_THAT(text.out, HasSubstr("anthropic/claude-sonnet-4.5-20250929"));
  EXPECT_THAT(text.out, HasSubstr("2d0h ago"));
}

TEST_F(CliTest, LsListsFiltersAndLimits) {
  Fill();
  EXPECT_EQ(LsKeys(db_).size(), 7u);
  ProcessResult r = Llmcache(
      {"ls", "--db", db_, "--json", "--model", "anthropic/claude-sonnet-4.5"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json::array entries = ParseObject(r.out)["entries"].as_array();
  ASSERT_EQ(entries.size(), 2u);
  for (const auto& e : entries) {
    EXPECT_THAT(std::string(e.at("model").as_string()),
                HasSubstr("anthropic/claude-sonnet-4.5"));
    EXPECT_EQ(e.at("prompt_tokens").to_number<uint64_t>(), 12u);
  }
  ProcessResult limited = Llmcache({"ls", "--db", db_, "--limit", "2"});
  ASSERT_EQ(limited.exit_code, 0);
  // Header + 2 rows, and a note on stderr.
  EXPECT_EQ(std::count(limited.out.begin(), limited.out.end(), '\n'), 3);
  EXPECT_THAT(limited.err, HasSubstr("2 of 7"));
  EXPECT_THAT(limited.out, HasSubstr("TTL LEFT"));
  EXPECT_THAT(limited.out, HasSubstr("12+5"));
  ProcessResult all = Llmcache({"ls", "--db", db_, "--limit", "0"});
  EXPECT_THAT(all.out, HasSubstr("expired"));
}

TEST_F(CliTest, LsLimitPrintsTheNewest) {
  {
    auto cache = testing::OpenTestCache(db_);
    ASSERT_OK(cache.status());
    const int64_t now = cli::NowMs();
    // Written out of creation order, over two models.
    for (int i : {3, 0, 4, 1, 2}) {
      InsertOptions io;
      io.created_ms = now - 60'000 + i * 1'000;
      ASSERT_OK((*cache)->Insert(
          TestKey(i % 2 ? "openai/gpt-4o-mini" : "anthropic/claude-sonnet-4.5",
                  static_cast<uint64_t>(i)),
          Body("n"), io));
    }
  }
  const std::string newest = TestKey("anthropic/claude-sonnet-4.5", 4).Hex();
  const std::string second = TestKey("openai/gpt-4o-mini", 3).Hex();
  ProcessResult r = Llmcache({"ls", "--db", db_, "--json", "--limit", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json::object o = ParseObject(r.out);
  json::array entries = o["entries"].as_array();
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].at("key").as_string(), newest);
  EXPECT_EQ(entries[1].at("key").as_string(), second);
  EXPECT_EQ(o["total"].to_number<uint64_t>(), 5u);
  EXPECT_TRUE(o["truncated"].as_bool());

  ProcessResult text = Llmcache({"ls", "--db", db_, "--limit", "2"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_EQ(std::count(text.out.begin(), text.out.end(), '\n'), 3);
  EXPECT_LT(text.out.find(newest), text.out.find(second));
  EXPECT_THAT(text.out, Not(HasSubstr(TestKey("openai/gpt-4o-mini", 1).Hex())));
  EXPECT_THAT(text.err, HasSubstr("2 of 5"));

  // Per model, and a limit the entries do not reach: not truncated.
  ProcessResult gpt = Llmcache({"ls", "--db", db_, "--json", "--model",
                                "openai/gpt-4o-mini", "--limit", "2"});
  ASSERT_EQ(gpt.exit_code, 0) << gpt.err;
  o = ParseObject(gpt.out);
  ASSERT_EQ(o["entries"].as_array().size(), 2u);
  EXPECT_EQ(o["entries"].as_array()[0].at("key").as_string(), second);
  EXPECT_FALSE(o["truncated"].as_bool());
  EXPECT_EQ(o["total"].to_number<uint64_t>(), 2u);
}

// A listing longer than the chunks `ls` prints in (4096 rows): every entry
// once, newest first, as one JSON document and as one aligned table, also
// where the last chunk's ages are wider than the first's.
TEST_F(CliTest, LsOfEveryEntryIsPrintedInChunksAsOneListing) {
  constexpr uint64_t kEntries = 9000;
  {
    auto cache = testing::OpenTestCache(db_);
    ASSERT_OK(cache.status());
    const int64_t now = cli::NowMs();
    for (uint64_t i = 0; i < kEntries; ++i) {
      InsertOptions io;
      io.ttl_ms = 0;  // never expires: TTL LEFT is "never" in every row
      // The oldest 100 a year old ("400d0h"), the rest within three hours.
      io.created_ms = i < 100
                          ? now - 400 * 86'400'000LL + i * 1'000
                          : now - 10'000'000 + static_cast<int64_t>(i) * 1'000;
      ASSERT_OK(
          (*cache)->Insert(TestKey("openai/gpt-4o-mini", i), Body("n"), io));
    }
  }
  ProcessResult r = Llmcache({"ls", "--db", db_, "--json", "--limit", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json::object o = ParseObject(r.out);
  const json::array& entries = o["entries"].as_array();
  ASSERT_EQ(entries.size(), kEntries);
  EXPECT_EQ(o["total"].to_number<uint64_t>(), kEntries);
  EXPECT_FALSE(o["truncated"].as_bool());
  for (uint64_t i = 0; i < kEntries; ++i) {
    // Newest first: entry kEntries - 1 - i.
    ASSERT_EQ(entries[i].at("key").as_string(),
              TestKey("openai/gpt-4o-mini", kEntries - 1 - i).Hex())
        << i;
  }

  ProcessResult text = Llmcache({"ls", "--db", db_, "--limit", "0"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  std::istringstream lines(text.out);
  std::string line, header;
  std::getline(lines, header);
  EXPECT_EQ(header.rfind("KEY", 0), 0u);
  uint64_t rows = 0;
  while (std::getline(lines, line)) {
    ++rows;
    // Aligned with the header across chunks: ENDPOINT starts where it does,
    // and the right-aligned TTL LEFT ("never") ends where it does, which
    // moves if any column before it is wider in a later chunk.
    ASSERT_EQ(line.find("chat_completions"), header.find("ENDPOINT")) << rows;
    ASSERT_EQ(line.find("never") + 5, header.find("TTL LEFT") + 8)
        << rows << ": " << line;
  }
  EXPECT_EQ(rows, kEntries);
}

TEST_F(CliTest, ShowPrintsMetadataAndPrettyResponse) {
  Fill();
  const std::string key = TestKey("openai/gpt-4o-mini", 2).Hex();
  ProcessResult r = Llmcache({"show", "--db", db_, key});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("namespace       docs"));
  EXPECT_THAT(r.out, HasSubstr("openai/gpt-4o-mini-2024-07-18"));
  EXPECT_THAT(r.out, HasSubstr("\n  \"choices\": [\n"));
  EXPECT_THAT(r.out, HasSubstr("\"content\": \"two\""));

  json::object o =
      ParseObject(Llmcache({"show", "--db", db_, "--json", key}).out);
  EXPECT_EQ(o["key"].as_string(), key);
  EXPECT_EQ(o["namespace"].as_string(), "docs");
  EXPECT_EQ(o["response"].at("choices").at(0).at("message").at("content"),
            "two");

  EXPECT_EQ(Llmcache({"show", "--db", db_, "xyz"}).exit_code, 2);
  ProcessResult missing = Llmcache({"show", "--db", db_, std::string(64, '0')});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("no entry"));
}

// Output that cannot be written (a full disk) fails the verb: exit 1 and
// why, not exit 0 with the file cut short.
TEST_F(CliTest, AnOutputThatCannotBeWrittenIsAFailure) {
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no /dev/full";
  Fill();
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"stats", "--json"},
        {"stats"},
        {"models"},
        {"ls"},
        {"ls", "--json"},
        {"verify"}}) {
    std::string command = "exec '" + std::string(kBin) + "'";
    for (const std::string& a : args) command += " '" + a + "'";
    command += " --db '" + db_ + "' > /dev/full";
    ProcessResult r = RunProcess({"/bin/sh", "-c", command}, "", {},
                                 testing::kLlmcacheEnvironment);
    EXPECT_EQ(r.exit_code, 1) << args[0] << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("cannot write the output: No space left"))
        << args[0];
    // The same verb to a pipe is fine.
    std::vector<std::string> argv = args;
    argv.insert(argv.end(), {"--db", db_});
    EXPECT_EQ(Llmcache(argv).exit_code, 0) << args[0];
  }
}

TEST_F(CliTest, ReadVerbsOnAMissingDatabaseFailClearly) {
  for (const char* verb : {"stats", "models", "ls", "verify", "export"}) {
    ProcessResult r = Llmcache({verb, "--db", dir_.path() + "/nothing"});
    EXPECT_EQ(r.exit_code, 1) << verb;
    EXPECT_THAT(r.err, HasSubstr("no database at")) << verb;
  }
  // A file where the database should be: said so, by every verb alike.
  const std::string file = WriteFile(dir_.path() + "/a-file", "x");
  for (const char* verb :
       {"stats", "models", "ls", "verify", "export", "purge", "compact"}) {
    std::vector<std::string> argv = {verb, "--db", file};
    if (std::string_view(verb) == "purge") {
      argv.insert(argv.end(), {"--all", "--yes"});
    }
    ProcessResult r = Llmcache(argv);
    EXPECT_EQ(r.exit_code, 1) << verb;
    EXPECT_THAT(r.err, HasSubstr("database path " + file +
                                 " exists and is not a directory"))
        << verb << ": " << r.err;
  }
  // LLMCACHE_DB is the default.
  Fill();
  ProcessResult r = Llmcache({"stats", "--json"}, "", {"LLMCACHE_DB=" + db_});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ParseObject(r.out)["entries"].to_number<uint64_t>(), 7u);
}

// ---- key and get ----

TEST_F(CliTest, KeyIsStableAcrossReorderingAndChangesWithSampling) {
  const std::string a = WriteFile(dir_.path() + "/a.json", kRequest);
  const std::string b = WriteFile(dir_.path() + "/b.json", kRequestTwin);
  const std::string c = WriteFile(dir_.path() + "/c.json", kRequestTopP);
  ProcessResult ra = Llmcache({"key", a});
  ProcessResult rb = Llmcache({"key", b});
  ProcessResult rc = Llmcache({"key", c});
  ASSERT_EQ(ra.exit_code, 0) << ra.err;
  ASSERT_EQ(rb.exit_code, 0) << rb.err;
  const std::string ka = ra.out.substr(0, ra.out.find('\n'));
  EXPECT_EQ(ka.size(), 64u);
  EXPECT_EQ(ka, rb.out.substr(0, rb.out.find('\n')));
  EXPECT_NE(ka, rc.out.substr(0, rc.out.find('\n')));
  EXPECT_THAT(ra.out, HasSubstr("decision   cacheable"));

  // From stdin, with the canonical form.
  ProcessResult canon = Llmcache({"key", "-", "--canonical"}, kRequestTwin);
  ASSERT_EQ(canon.exit_code, 0);
  EXPECT_EQ(canon.out.substr(0, 64), ka);
  EXPECT_THAT(canon.out,
              HasSubstr(R"("max_tokens":64,"messages":[{"content":"Say hi")"));
  // A namespace or scope separates keys.
  ProcessResult ns = Llmcache({"key", a, "--namespace", "v2"});
  EXPECT_NE(ns.out.substr(0, 64), ka);
  ProcessResult scoped = Llmcache({"key", a, "--scope", "tenant-a"});
  EXPECT_NE(scoped.out.substr(0, 64), ka);
  ProcessResult by_key = Llmcache({"key", a, "--api-key-env", "TEST_KEY"}, "",
                                  {"TEST_KEY=sk-test-1"});
  EXPECT_THAT(by_key.out, HasSubstr(ApiKeyScope("sk-test-1")));
  EXPECT_THAT(by_key.out, Not(HasSubstr("sk-test-1")));
  // A variable that is not set is a usage error, as a bad flag is.
  for (const char* verb : {"key", "get"}) {
    ProcessResult unset =
        Llmcache({verb, a, "--api-key-env", "LLMCACHE_TEST_UNSET_KEY"});
    EXPECT_EQ(unset.exit_code, 2) << verb << ": " << unset.err;
    EXPECT_THAT(unset.err, HasSubstr("$LLMCACHE_TEST_UNSET_KEY is not set"));
  }
}

TEST_F(CliTest, KeyExplainsBypasses) {
  ProcessResult warm = Llmcache(
      {"key", "--json", "-"},
      R"({"model":"openai/gpt-4o-mini","temperature":0.7,"messages":[]})");
  ASSERT_EQ(warm.exit_code, 0) << warm.err;
  json::object o = ParseObject(warm.out);
  EXPECT_FALSE(o["cacheable"].as_bool());
  EXPECT_EQ(o["bypass_reason"].as_string(), "non_zero_temperature");
  ProcessResult online = Llmcache(
      {"key", "-"},
      R"({"model":"openai/gpt-4o-mini:online","temperature":0,"messages":[]})");
  EXPECT_THAT(online.out, HasSubstr("bypass: web_search"));
  ProcessResult always =
      Llmcache({"key", "-", "--mode", "always"},
               R"({"model":"openai/gpt-4o-mini","messages":[]})");
  EXPECT_THAT(always.out, HasSubstr("cacheable"));
}

TEST_F(CliTest, KeyRejectsMalformedInput) {
  ProcessResult bad = Llmcache({"key", "-"}, R"({"model": "x", "messages": [)");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("cannot be keyed"));
  ProcessResult no_model = Llmcache({"key", "-"}, R"({"messages": []})");
  EXPECT_EQ(no_model.exit_code, 1);
  EXPECT_THAT(no_model.err, HasSubstr("model"));
  ProcessResult no_file = Llmcache({"key", dir_.path() + "/none.json"});
  EXPECT_EQ(no_file.exit_code, 1);
  EXPECT_THAT(no_file.err, HasSubstr("cannot read"));
  // A misspelt mode or endpoint is a usage error (exit 2): from `get`, exit
  // 1 would read as "not cached".
  Fill();
  for (const std::vector<std::string>& verb :
       {std::vector<std::string>{"key", "-"},
        std::vector<std::string>{"get", "--db", db_, "-"}}) {
    SCOPED_TRACE(verb[0]);
    std::vector<std::string> mode = verb;
    mode.insert(mode.end(), {"--mode", "sometimes"});
    ProcessResult m = Llmcache(mode, kRequest);
    EXPECT_EQ(m.exit_code, 2) << m.err;
    EXPECT_THAT(m.err, HasSubstr("unknown mode 'sometimes'"));
    std::vector<std::string> endpoint = verb;
    endpoint.insert(endpoint.end(), {"--endpoint", "completionz"});
    ProcessResult e = Llmcache(endpoint, kRequest);
    EXPECT_EQ(e.exit_code, 2) << e.err;
    EXPECT_THAT(e.err, HasSubstr("unknown endpoint 'completionz'"));
  }
}

TEST_F(CliTest, GetShowsWhetherARequestIsCached) {
  Fill();
  ProcessResult hit = Llmcache({"get", "--db", db_, "-"}, kRequestTwin);
  ASSERT_EQ(hit.exit_code, 0) << hit.err;
  EXPECT_THAT(hit.out, HasSubstr("\ncached\n"));
  EXPECT_THAT(hit.out, HasSubstr("\"content\": \"hi\""));
  ProcessResult miss =
      Llmcache({"get", "--db", db_, "--json", "-"}, kRequestTopP);
  // Not cached: exit 1, as `show` of an unknown key.
  ASSERT_EQ(miss.exit_code, 1) << miss.err;
  json::object o = ParseObject(miss.out);
  EXPECT_FALSE(o["cached"].as_bool());
  EXPECT_EQ(o["outcome"].as_string(), "miss");
  // An embeddings batch is stored input by input: get cannot answer for it.
  ProcessResult batch = Llmcache(
      {"get", "--db", db_, "--endpoint", "embeddings", "-"},
      R"({"model":"openai/text-embedding-3-small","input":["a","b"]})");
  EXPECT_EQ(batch.exit_code, 2);
  EXPECT_THAT(batch.err, HasSubstr("stored input by input"));
  ProcessResult miss_text = Llmcache({"get", "--db", db_, "-"}, kRequestTopP);
  EXPECT_EQ(miss_text.exit_code, 1) << miss_text.err;
  EXPECT_THAT(miss_text.out, HasSubstr("\nnot cached\n"));
  // A lookup by the CLI is not counted as a miss of the service.
  json::object s = ParseObject(Llmcache({"stats", "--db", db_, "--json"}).out);
  EXPECT_EQ(s["misses"].to_number<uint64_t>(), 0u);
  EXPECT_EQ(s["hits"].to_number<uint64_t>(), 0u);
}

// ---- purge and compact ----

TEST_F(CliTest, PurgeBySelector) {
  Fill();
  ProcessResult key = Llmcache(
      {"purge", "--db", db_, "--key", TestKey("openai/gpt-4o-mini", 1).Hex()});
  ASSERT_EQ(key.exit_code, 0) << key.err;
  EXPECT_THAT(key.out, HasSubstr("removed 1 entry"));
  EXPECT_EQ(LsKeys(db_).size(), 6u);

  // The same key again: nothing to remove, "not found" (exit 1).
  ProcessResult gone = Llmcache(
      {"purge", "--db", db_, "--key", TestKey("openai/gpt-4o-mini", 1).Hex()});
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_THAT(gone.out, HasSubstr("removed 0 entries"));
  EXPECT_THAT(gone.err, HasSubstr("not found"));

  ProcessResult ns = Llmcache({"purge", "--db", db_, "--namespace", "docs"});
  EXPECT_THAT(ns.out, HasSubstr("removed 1 entry"));
  EXPECT_THAT(ns.out, ContainsRegex(" in [0-9.]+ s, [0-9]+ entries/s"));
  ProcessResult exp = Llmcache({"purge", "--db", db_, "--expired", "--json"});
  EXPECT_EQ(ParseObject(exp.out)["removed"].to_number<uint64_t>(), 1u);
  ProcessResult old = Llmcache({"purge", "--db", db_, "--older-than", "1d"});
  ASSERT_EQ(old.exit_code, 0) << old.err;
  EXPECT_THAT(old.out, HasSubstr("removed 1 entry"));
  EXPECT_EQ(LsKeys(db_).size(), 3u);

  ProcessResult model = Llmcache(
      {"purge", "--db", db_, "--model", "anthropic/claude-sonnet-4.5"});
  EXPECT_THAT(model.out, HasSubstr("removed 2 entries"));
  ProcessResult all = Llmcache({"purge", "--db", db_, "--all", "--yes"});
  EXPECT_THAT(all.out, HasSubstr("removed 1 entry"));
  EXPECT_TRUE(LsKeys(db_).empty());
  json::object s = ParseObject(Llmcache({"stats", "--db", db_, "--json"}).out);
  EXPECT_EQ(s["entries"].to_number<uint64_t>(), 0u);
}

// A mistyped --model is an error naming the nearest model, not an empty
// listing or a purge of nothing with exit 0; a model whose entries were all
// purged is still known (purging it again is not an error).
TEST_F(CliTest, AnUnknownModelIsAnErrorThatNamesTheNearestOne) {
  Fill();
  for (const std::vector<std::string>& verb :
       std::vector<std::vector<std::string>>{
           {"ls"}, {"export", "-o", "-"}, {"verify"}, {"purge", "--yes"}}) {
    std::vector<std::string> args = verb;
    args.insert(args.end(), {"--db", db_, "--model", "openai/gpt-4o-minii"});
    ProcessResult r = Llmcache(args);
    EXPECT_EQ(r.exit_code, 1) << verb[0] << ": " << r.out << r.err;
    EXPECT_EQ(r.out, "") << verb[0];
    EXPECT_THAT(r.err, HasSubstr("llmcache " + verb[0] + ": "));
    EXPECT_THAT(r.err,
                HasSubstr("no model \"openai/gpt-4o-minii\" in this cache; "
                          "did you mean \"openai/gpt-4o-mini\"?"))
        << verb[0];
  }
  EXPECT_EQ(LsKeys(db_).size(), 7u);
  // Without the provider, in another case, or a variant of an unknown model.
  EXPECT_THAT(Llmcache({"ls", "--db", db_, "--model", "GPT-4o-Mini"}).err,
              HasSubstr("did you mean \"openai/gpt-4o-mini\"?"));
  ProcessResult variant =
      Llmcache({"ls", "--db", db_, "--model", "anthropic/claude-4:thinking"});
  EXPECT_EQ(variant.exit_code, 1);
  EXPECT_THAT(variant.err, HasSubstr("no model \"anthropic/claude-4\""));
  // Nothing near: no guess, the count of models.
  ProcessResult far = Llmcache({"ls", "--db", db_, "--model", "x/y"});
  EXPECT_EQ(far.exit_code, 1);
  EXPECT_THAT(far.err, Not(HasSubstr("did you mean")));
  EXPECT_THAT(far.err, HasSubstr("lists its 2 models"));
  // A variant of a known model is that model.
  ProcessResult known = Llmcache(
      {"ls", "--db", db_, "--model", "anthropic/claude-sonnet-4.5:free"});
  EXPECT_EQ(known.exit_code, 0) << known.err;
  // A model known only by the row an older version made for an id with two
  // variants (m/x:free for m/x:free:online) is m/x: listed, and purged.
  {
    auto cache = testing::OpenTestCache(db_);
    ASSERT_OK(cache.status());
    RequestKey older = TestKey("meta/llama:free:online", 9);
    older.base_model = "meta/llama:free";  // as BaseModel() made it before
    ASSERT_OK((*cache)->Insert(older, Body("old"), InsertOptions()));
  }
  ProcessResult legacy =
      Llmcache({"ls", "--db", db_, "--json", "--model", "meta/llama"});
  EXPECT_EQ(legacy.exit_code, 0) << legacy.err;
  EXPECT_THAT(Llmcache({"ls", "--db", db_, "--model", "meta/lama"}).err,
              HasSubstr("did you mean \"meta/llama\"?"));
  ProcessResult legacy_purge =
      Llmcache({"purge", "--db", db_, "--model", "meta/llama", "--yes"});
  EXPECT_EQ(legacy_purge.exit_code, 0) << legacy_purge.err;
  EXPECT_THAT(legacy_purge.out, HasSubstr("removed 1 entry"));
  // A model purged whole, whose statistics counted nothing else (no hits),
  // leaves no trace: a purge or a listing of it again says so.
  ProcessResult purged = Llmcache({"purge", "--db", db_, "--model",
                                   "anthropic/claude-sonnet-4.5", "--yes"});
  EXPECT_EQ(purged.exit_code, 0) << purged.err;
  EXPECT_THAT(purged.out, HasSubstr("removed 2 entries"));
  ProcessResult again = Llmcache({"purge", "--db", db_, "--model",
                                  "anthropic/claude-sonnet-4.5", "--yes"});
  // Removes nothing either way: the model is unknown (exit 1, this error)
  // unless a statistics row of it was written back after the flush (a
  // maintenance pass of the first purge's process persisting counters).
  if (again.exit_code == 1) {
    EXPECT_THAT(again.err,
                HasSubstr("nothing removed: no model "
                          "\"anthropic/claude-sonnet-4.5\" in this cache"));
  } else {
    EXPECT_EQ(again.exit_code, 0) << again.err;
    EXPECT_THAT(again.out, HasSubstr("removed 0 entries"));
  }
  EXPECT_FALSE(LsKeys(db_).empty());
}

// An empty --db (an unset variable in --db "$DIR") is a usage error, not the
// default database in the home directory.
TEST_F(CliTest, AnEmptyDatabasePathIsAUsageError) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"stats", "--db", ""},
                                             {"purge", "--all", "--db", ""},
                                             {"serve", "--db", ""}}) {
    ProcessResult r = Llmcache(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("the database path is empty")) << args[0];
  }
}

TEST_F(CliTest, PurgeUsageErrors) {
  Fill();
  EXPECT_EQ(Llmcache({"purge", "--db", db_}).exit_code, 2);
  EXPECT_EQ(Llmcache({"purge", "--db", db_, "--all", "--expired"}).exit_code,
            2);
  ProcessResult bad =
      Llmcache({"purge", "--db", db_, "--older-than", "3 fortnights"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("unknown unit"));
  // A bare number would be seconds: refused, not guessed.
  ProcessResult bare = Llmcache({"purge", "--db", db_, "--older-than", "30"});
  EXPECT_EQ(bare.exit_code, 2);
  EXPECT_THAT(bare.err, HasSubstr("has no unit"));
  EXPECT_THAT(bare.err, HasSubstr("30d"));
  EXPECT_EQ(Llmcache({"purge", "--db", db_, "--key", "beef"}).exit_code, 2);
  EXPECT_EQ(LsKeys(db_).size(), 7u);
  EXPECT_EQ(
      Llmcache({"purge", "--db", dir_.path() + "/none", "--all"}).exit_code, 1);
}

TEST_F(CliTest, CompactReportsSpace) {
  Fill();
  ProcessResult r = Llmcache({"compact", "--db", db_, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json::object o = ParseObject(r.out);
  EXPECT_GT(o["disk_bytes_before"].to_number<uint64_t>(), 0u);
  EXPECT_GT(o["disk_bytes_after"].to_number<uint64_t>(), 0u);
  // The expired entry is gone after compaction.
  EXPECT_EQ(LsKeys(db_).size(), 6u);
  ProcessResult text = Llmcache({"compact", "--db", db_});
  EXPECT_THAT(text.out, HasSubstr("before"));
  EXPECT_THAT(text.out, HasSubstr("after"));
}

// ---- export / import / verify ----

TEST_F(CliTest, ExportImportRoundTripGivesIdenticalLs) {
  Fill();
  ASSERT_EQ(Llmcache({"purge", "--db", db_, "--expired"}).exit_code, 0);
  ProcessResult exp = Llmcache({"export", "--db", db_});
  ASSERT_EQ(exp.exit_code, 0) << exp.err;
  EXPECT_EQ(std::count(exp.out.begin(), exp.out.end(), '\n'), 6);
  EXPECT_THAT(exp.err, HasSubstr("exported 6 entries"));
  EXPECT_THAT(exp.err, Not(HasSubstr("\r")));  // no progress bar off a TTY
  json::object first = ParseObject(exp.out.substr(0, exp.out.find('\n')));
  for (const char* field : {"key", "model", "namespace", "created", "expires",
                            "usage", "response"}) {
    EXPECT_TRUE(first.contains(field)) << field;
  }

  const std::string copy = dir_.path() + "/copy";
  ProcessResult imp = Llmcache({"import", "--db", copy}, exp.out);
  ASSERT_EQ(imp.exit_code, 0) << imp.err;
  EXPECT_THAT(imp.out, HasSubstr("imported 6 entries"));

  // And the stored responses are byte-identical.
  ExpectSameStore(copy, {TestKey("openai/gpt-4o-mini", 2)});

  // Export of one model, to a file.
  const std::string file = dir_.path() + "/claude.jsonl";
  ProcessResult one = Llmcache({"export", "--db", db_, "--model",
                                "anthropic/claude-sonnet-4.5", "-o", file});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_THAT(one.err, HasSubstr("exported 2 entries"));
}

// Entries of every endpoint go through export and import unchanged: each
// response is checked by the rules of its own endpoint (the entry's flags).
TEST_F(CliTest, ExportImportRoundTripKeepsEveryEndpoint) {
  const std::string embeddings =
      R"({"object":"list","data":[{"object":"embedding","index":0,)"
      R"("embedding":[0.25,-0.5]}],"model":"openai/text-embedding-3-small",)"
      R"("usage":{"prompt_tokens":2,"total_tokens":2}})";
  const std::string responses =
      R"({"id":"resp_1","object":"response","created_at":1764000000,)"
      R"("status":"completed","model":"openai/gpt-4o-mini","output":[)"
      R"({"type":"message","id":"msg_1","status":"completed",)"
      R"("role":"assistant","content":[{"type":"output_text","text":"hi",)"
      R"("annotations":[]}]}],"usage":{"input_tokens":5,"output_tokens":1,)"
      R"("total_tokens":6}})";
  const std::string messages =
      R"({"id":"msg_1","type":"message","role":"assistant",)"
      R"("model":"anthropic/claude-sonnet-4.5","content":[{"type":"text",)"
      R"("text":"hi"}],"stop_reason":"end_turn","stop_sequence":null,)"
      R"("usage":{"input_tokens":5,"output_tokens":1}})";
  {
    auto cache = testing::OpenTestCache(db_);
    ASSERT_OK(cache.status());
    auto insert = [&](const RequestKey& key, const std::string& body,
                      Endpoint endpoint) {
      InsertOptions io;
      io.usage.prompt_tokens = 5;
      io.flags = EntryEndpointFlags(static_cast<uint8_t>(endpoint));
      ASSERT_OK((*cache)->Insert(key, body, io));
    };
    insert(TestKey("openai/text-embedding-3-small", 1), embeddings,
           Endpoint::kEmbeddings);
    insert(TestKey("openai/gpt-4o-mini", 1), responses, Endpoint::kResponses);
    insert(TestKey("anthropic/claude-sonnet-4.5", 1), messages,
           Endpoint::kMessages);
    insert(TestKey("openai/gpt-4o-mini", 2), Body("chat"),
           Endpoint::kChatCompletions);
  }
  ProcessResult exp = Llmcache({"export", "--db", db_});
  ASSERT_EQ(exp.exit_code, 0) << exp.err;
  EXPECT_THAT(exp.err, HasSubstr("exported 4 entries"));
  for (const char* flags : {"--per-entry", ""}) {
    SCOPED_TRACE(flags);
    const std::string copy = dir_.path() + "/copy" + flags;
    std::vector<std::string> args{"import", "--db", copy};
    if (*flags != '\0') args.emplace_back(flags);
    ProcessResult imp = Llmcache(args, exp.out);
    ASSERT_EQ(imp.exit_code, 0) << imp.err;
    EXPECT_THAT(imp.out, HasSubstr("imported 4 entries"));
    ExpectSameStore(copy, {TestKey("openai/text-embedding-3-small", 1),
                           TestKey("openai/gpt-4o-mini", 1),
                           TestKey("anthropic/claude-sonnet-4.5", 1),
                           TestKey("openai/gpt-4o-mini", 2)});
  }

  // A response that is not what its flags say is skipped, with the reason:
  // each entry under each of the three other endpoints' flags, twelve lines
  // in one import.
  std::istringstream lines(exp.out);
  std::string changed_lines;
  std::vector<std::string> expected;
  for (std::string line; std::getline(lines, line);) {
    const size_t at = line.find("\"flags\":");
    ASSERT_NE(at, std::string::npos);
    const size_t end = line.find(',', at);
    const int own = std::stoi(line.substr(at + 8, end - at - 8)) >> 3 & 3;
    for (int other = 0; other < 4; ++other) {
      if (other == own) continue;
      std::string changed = line;
      changed.replace(at, end - at, "\"flags\":" + std::to_string(other << 3));
      changed_lines += changed + "\n";
      expected.push_back(changed.substr(0, 200));
    }
  }
  ASSERT_EQ(expected.size(), 12u);
  ProcessResult imp = Llmcache(
      {"import", "--db", dir_.path() + "/mixed", "--json"}, changed_lines);
  EXPECT_EQ(imp.exit_code, 1) << imp.err;
  std::istringstream errors(imp.err);
  std::vector<std::string> reasons(expected.size());
  for (std::string line; std::getline(errors, line);) {
    for (size_t i = 0; i < expected.size(); ++i) {
      if (line.find("line " + std::to_string(i + 1) + ": ") !=
          std::string::npos)
        reasons[i] = line;
    }
  }
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE(expected[i]);
    EXPECT_THAT(reasons[i],
                HasSubstr("line " + std::to_string(i + 1) + ": \"response\" "))
        << imp.err;
    EXPECT_THAT(reasons[i], AnyOf(HasSubstr(" is not a"),
                                  HasSubstr("would not be cached")));
  }
  json::object o = ParseObject(imp.out);
  EXPECT_EQ(o["imported"].to_number<uint64_t>(), 0u);
  EXPECT_EQ(o["malformed"].to_number<uint64_t>(), 12u);
}

TEST_F(CliTest, ImportSkipsMalformedLinesByNumber) {
  Fill();
  ProcessResult exp = Llmcache(
      {"export", "--db", db_, "--model", "anthropic/claude-sonnet-4.5"});
  ASSERT_EQ(exp.exit_code, 0);
  const std::string good1 = exp.out.substr(0, exp.out.find('\n'));
  const std::string good2 = exp.out.substr(exp.out.find('\n') + 1);
  std::string input = good1 + "\n";
  input += "{not json\n";  // line 2
  input += R"({"key":"abc","model":"m","created":1,"response":"{}"})"
           "\n";
  input += "\n";  // blank: ignored
  input += R"({"key":")" + std::string(64, 'a') +
           R"(","model":"m","created":1,"response":5})"
           "\n";  // line 5
  input += R"([1,2,3])"
           "\n";  // line 6
  input +=
      R"({"key":")" + std::string(64, 'b') +
      R"(","model":"m","created":1,"usage":{"prompt_tokens":-1},"response":"{}"})"
      "\n";  // line 7
  input += R"({"key":")" + std::string(64, 'c') +
           R"(","model":"m","created":1,"response":"not json at all"})"
           "\n";  // line 8
  input +=
      R"({"key":")" + std::string(64, 'd') +
      R"(","model":"m","created":1,"response":{"error":{"code":429,"message":"slow down"}}})"
      "\n";  // line 9
  input += R"({"key":")" + std::string(64, 'e') +
           R"(","model":"m","created":99999999999999,"response":"{}"})"
           "\n";   // line 10
  input += good2;  // line 11
  const std::string copy = dir_.path() + "/copy";
  ProcessResult imp = Llmcache({"import", "--db", copy, "--json"}, input);
  EXPECT_EQ(imp.exit_code, 1);
  EXPECT_THAT(imp.err, HasSubstr("line 2: invalid JSON"));
  EXPECT_THAT(imp.err, HasSubstr("line 3: \"key\" must be 64 hex digits"));
  EXPECT_THAT(imp.err, HasSubstr("line 5: \"response\" must be"));
  EXPECT_THAT(imp.err, HasSubstr("line 6: not a JSON object"));
  EXPECT_THAT(imp.err, HasSubstr("line 7: usage:"));
  EXPECT_THAT(imp.err, HasSubstr("line 8: \"response\" is not a chat"));
  EXPECT_THAT(imp.err, HasSubstr("line 9: \"response\""));
  EXPECT_THAT(imp.err, HasSubstr("line 10: \"created\" is in the future"));
  json::object o = ParseObject(imp.out);
  EXPECT_EQ(o["imported"].to_number<uint64_t>(), 2u);
  EXPECT_EQ(o["malformed"].to_number<uint64_t>(), 8u);
  EXPECT_EQ(LsKeys(copy).size(), 2u);
  // The database is intact and usable after the bad lines.
  EXPECT_EQ(Llmcache({"verify", "--db", copy}).exit_code, 0);
  // A file that is not there.
  ProcessResult none = Llmcache({"import", "--db", copy, dir_.path() + "/x"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_THAT(none.err, HasSubstr("cannot read"));
  EXPECT_THAT(none.err, HasSubstr("nothing is stored"));
  // With --json a failed import still says so on stdout, in JSON.
  ProcessResult none_json =
      Llmcache({"import", "--db", copy, "--json", dir_.path() + "/x"});
  EXPECT_EQ(none_json.exit_code, 1);
  json::object failed = ParseObject(none_json.out);
  EXPECT_EQ(failed["imported"].to_number<uint64_t>(), 0u);
  EXPECT_THAT(std::string(failed["error"].as_string()),
              HasSubstr("cannot read"));
}

// An export imported back into its own database once rewrote every entry
// as "replaced" (1M entries: 14.65 s, and 1 GiB of uncompressed files):
// only the mark that an import wrote them differed.
TEST_F(CliTest, ImportingADatabasesOwnExportChangesNothing) {
  std::string exported;
  ASSERT_NO_FATAL_FAILURE(ExportLiveEntries(&exported));
  json::object before =
      ParseObject(Llmcache({"stats", "--db", db_, "--json"}).out);
  for (const bool per_entry : {false, true}) {
    std::vector<std::string> args = {"import", "--db", db_, "--json"};
    if (per_entry) args.push_back("--per-entry");
    ProcessResult r = Llmcache(args, exported);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    json::object o = ParseObject(r.out);
    EXPECT_EQ(o["imported"].to_number<uint64_t>(), 6u) << per_entry;
    EXPECT_EQ(o["replaced"].to_number<uint64_t>(), 0u) << per_entry;
    EXPECT_EQ(o["unchanged"].to_number<uint64_t>(), 6u) << per_entry;
    if (!per_entry) {
      EXPECT_EQ(o["uncompressed_bytes"].to_number<uint64_t>(), 0u);
    }
  }
  json::object after =
      ParseObject(Llmcache({"stats", "--db", db_, "--json"}).out);
  EXPECT_EQ(after["inserts"], before["inserts"]);
  EXPECT_EQ(after["entries"], before["entries"]);
  EXPECT_EQ(after["bytes"], before["bytes"]);
  // Byte for byte as it was: the entries keep their own flags.
  EXPECT_EQ(Llmcache({"export", "--db", db_}).out, exported);
}

TEST_F(CliTest, ImportTwiceReplacesWithoutDoubleCounting) {
  std::string exported;
  ASSERT_NO_FATAL_FAILURE(ExportLiveEntries(&exported));
  const std::string copy = dir_.path() + "/copy";
  ProcessResult first = Llmcache({"import", "--db", copy, "--json"}, exported);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  json::object o = ParseObject(first.out);
  EXPECT_EQ(o["imported"].to_number<uint64_t>(), 6u);
  EXPECT_EQ(o["replaced"].to_number<uint64_t>(), 0u);
  EXPECT_TRUE(o.contains("seconds"));
  EXPECT_TRUE(o.contains("entries_per_second"));
  // The same export again, each line twice: replaces, counts nothing twice.
  std::string twice;
  for (size_t at = 0; at < exported.size();) {
    const size_t end = exported.find('\n', at) + 1;
    twice += exported.substr(at, end - at) + exported.substr(at, end - at);
    at = end;
  }
  ProcessResult again = Llmcache({"import", "--db", copy}, twice);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  // Each first copy gives way to the second in the load, with the same
  // bytes, and the second is as stored already: nothing changed, nothing is
  // written again (as `--per-entry` counts it).
  EXPECT_THAT(again.out, HasSubstr("imported 12 entries (12 unchanged) in "));
  EXPECT_THAT(again.out, HasSubstr(" entries/s"));
  json::object a = ParseObject(Llmcache({"stats", "--db", db_, "--json"}).out);
  json::object b = ParseObject(Llmcache({"stats", "--db", copy, "--json"}).out);
  EXPECT_EQ(b["entries"].to_number<uint64_t>(), 6u);
  EXPECT_EQ(a["bytes"], b["bytes"]);
  // What was written: the first import's 6; the second wrote nothing (each
  // first copy gave way to the second, as stored already).
  EXPECT_EQ(b["inserts"].to_number<uint64_t>(), 6u);
  // Once more, as it is: nothing replaced, everything unchanged.
  ProcessResult third = Llmcache({"import", "--db", copy, "--json"}, exported);
  ASSERT_EQ(third.exit_code, 0) << third.err;
  json::object t = ParseObject(third.out);
  // As the text says it: replaced entries are the ones that changed.
  EXPECT_EQ(t["replaced"].to_number<uint64_t>(), 0u);
  EXPECT_EQ(t["unchanged"].to_number<uint64_t>(), 6u);
  EXPECT_THAT(Llmcache({"import", "--db", copy}, exported).out,
              HasSubstr("imported 6 entries (6 unchanged) in "));
  ASSERT_EQ(a["models"].as_array().size(), b["models"].as_array().size());
  for (size_t i = 0; i < a["models"].as_array().size(); ++i) {
    const json::object& ma = a["models"].as_array()[i].as_object();
    const json::object& mb = b["models"].as_array()[i].as_object();
    EXPECT_EQ(ma.at("model"), mb.at("model"));
    EXPECT_EQ(ma.at("entries"), mb.at("entries"));
    EXPECT_EQ(ma.at("bytes"), mb.at("bytes"));
    EXPECT_EQ(ma.at("last_resolved_model"), mb.at("last_resolved_model"));
  }
  ProcessResult la = Llmcache({"ls", "--db", db_, "--json", "--limit", "0"});
  ProcessResult lb = Llmcache({"ls", "--db", copy, "--json", "--limit", "0"});
  EXPECT_EQ(la.out, lb.out);
  const std::string key = TestKey("anthropic/claude-sonnet-4.5", 1).Hex();
  json::object sa =
      ParseObject(Llmcache({"show", "--json", "--db", db_, key}).out);
  json::object sb =
      ParseObject(Llmcache({"show", "--json", "--db", copy, key}).out);
  EXPECT_EQ(sa["response"], sb["response"]);
  EXPECT_EQ(sa["usage"], sb["usage"]);
  EXPECT_EQ(sa["created_ms"], sb["created_ms"]);
  EXPECT_EQ(sa["size"], sb["size"]);
  EXPECT_EQ(Llmcache({"verify", "--db", copy}).exit_code, 0);
}

TEST_F(CliTest, ImportPerEntryStoresWhatTheBulkPathStores) {
  std::string exported;
  ASSERT_NO_FATAL_FAILURE(ExportLiveEntries(&exported));
  const std::string bulk = dir_.path() + "/bulk";
  const std::string each = dir_.path() + "/each";
  ProcessResult b = Llmcache({"import", "--db", bulk, "--json"}, exported);
  ProcessResult e =
      Llmcache({"import", "--db", each, "--json", "--per-entry"}, exported);
  ASSERT_EQ(b.exit_code, 0) << b.err;
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_EQ(ParseObject(e.out)["imported"].to_number<uint64_t>(), 6u);
  json::object sb =
      ParseObject(Llmcache({"stats", "--db", bulk, "--json"}).out);
  json::object se =
      ParseObject(Llmcache({"stats", "--db", each, "--json"}).out);
  EXPECT_EQ(se["entries"].to_number<uint64_t>(), 6u);
  EXPECT_EQ(sb["entries"], se["entries"]);
  EXPECT_EQ(sb["bytes"], se["bytes"]);
  EXPECT_EQ(Llmcache({"ls", "--db", bulk, "--json", "--limit", "0"}).out,
            Llmcache({"ls", "--db", each, "--json", "--limit", "0"}).out);
  EXPECT_EQ(Llmcache({"verify", "--db", each}).exit_code, 0);
  // Imported again: both paths find every entry unchanged (one at a time:
  // the entry count does not grow, and nothing is written).
  ProcessResult b2 = Llmcache({"import", "--db", bulk, "--json"}, exported);
  ProcessResult e2 =
      Llmcache({"import", "--db", each, "--json", "--per-entry"}, exported);
  ASSERT_EQ(b2.exit_code, 0) << b2.err;
  ASSERT_EQ(e2.exit_code, 0) << e2.err;
  EXPECT_EQ(ParseObject(b2.out)["replaced"].to_number<uint64_t>(), 0u);
  EXPECT_EQ(ParseObject(b2.out)["unchanged"].to_number<uint64_t>(), 6u);
  EXPECT_EQ(ParseObject(e2.out)["replaced"].to_number<uint64_t>(), 0u);
  EXPECT_EQ(ParseObject(e2.out)["unchanged"].to_number<uint64_t>(), 6u);
  EXPECT_EQ(
      ParseObject(Llmcache({"stats", "--db", each, "--json"}).out)["entries"]
          .to_number<uint64_t>(),
      6u);
  // A file that holds every line twice (two exports joined): both paths
  // count each second line as unchanged, as a second Insert of it is.
  const std::string twice = exported + exported;
  for (bool per_entry : {false, true}) {
    std::vector<std::string> args = {
        "import", "--db", dir_.path() + (per_entry ? "/twice-each" : "/twice"),
        "--json"};
    if (per_entry) args.push_back("--per-entry");
    ProcessResult r = Llmcache(args, twice);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    json::object o = ParseObject(r.out);
    EXPECT_EQ(o["imported"].to_number<uint64_t>(), 12u) << per_entry;
    EXPECT_EQ(o["replaced"].to_number<uint64_t>(), 0u) << per_entry;
    EXPECT_EQ(o["unchanged"].to_number<uint64_t>(), 6u) << per_entry;
  }
  // Two different lines of each key, into a database that holds the first
  // or the second: each line counts as an Insert of it in turn would (the
  // first against the stored version, the next against the first).
  std::string changed;  // every answer's content changed
  for (std::string_view rest = exported; !rest.empty();) {
    const size_t eol = rest.find('\n');
    json::object line = ParseObject(std::string(rest.substr(0, eol)));
    rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 1);
    json::value& response = line["response"];
    json::value body = response.is_string() ? json::parse(response.as_string())
                                            : json::value(response);
    json::value& content =
        body.at("choices").at(0).at("message").as_object()["content"];
    content = std::string(content.as_string()) + " (again)";
    response = response.is_string() ? json::value(json::serialize(body)) : body;
    changed += json::serialize(line) + "\n";
  }
  struct Case {
    std::string stored, file;
    uint64_t replaced, unchanged;
  };
  int n = 0;
  for (const Case& c : {Case{exported, exported + changed, 6, 6},
                        Case{exported, changed + exported, 12, 0},
                        Case{changed, exported + changed, 12, 0}}) {
    for (bool per_entry : {false, true}) {
      const std::string db = dir_.path() + "/mixed-" + std::to_string(n++);
      ASSERT_EQ(Llmcache({"import", "--db", db}, c.stored).exit_code, 0);
      std::vector<std::string> args = {"import", "--db", db, "--json"};
      if (per_entry) args.push_back("--per-entry");
      ProcessResult r = Llmcache(args, c.file);
      ASSERT_EQ(r.exit_code, 0) << r.err;
      json::object o = ParseObject(r.out);
      EXPECT_EQ(o["replaced"].to_number<uint64_t>(), c.replaced)
          << per_entry << " " << r.out;
      EXPECT_EQ(o["unchanged"].to_number<uint64_t>(), c.unchanged)
          << per_entry << " " << r.out;
    }
  }
}

TEST_F(CliTest, ImportRefusesADirectoryBeforeCreatingTheDatabase) {
  const std::string db = dir_.path() + "/never";
  ProcessResult r = Llmcache({"import", "--db", db, dir_.path()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("is a directory"));
  EXPECT_FALSE(std::filesystem::exists(db));
  // Standard input that is a directory, too.
  ProcessResult in = RunProcess(
      {"/bin/sh", "-c",
       std::string(kBin) + " import --db " + db + " - < " + dir_.path()});
  EXPECT_EQ(in.exit_code, 1);
  EXPECT_THAT(in.err, HasSubstr("standard input is a directory"));
  EXPECT_FALSE(std::filesystem::exists(db));
}

// `import --db ~/Documents` makes no database among the user's files, and a
// database that lost its CURRENT file is reported as damaged, not replaced
// by a new one (which would delete its table files).
TEST_F(CliTest, NoDatabaseIsMadeAmongOtherFilesOrOverADamagedOne) {
  std::string exported;
  ASSERT_NO_FATAL_FAILURE(ExportLiveEntries(&exported));
  const std::string file = dir_.path() + "/export.jsonl";
  std::ofstream(file) << exported;

  const std::string docs = dir_.path() + "/docs";
  std::filesystem::create_directories(docs);
  std::ofstream(docs + "/notes.txt") << "mine";
  ProcessResult r = Llmcache({"import", "--db", docs, file});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("not empty (notes.txt)"));
  EXPECT_FALSE(std::filesystem::exists(docs + "/CURRENT"));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(docs),
                          std::filesystem::directory_iterator()),
            1);

  ASSERT_EQ(Llmcache({"compact", "--db", db_}).exit_code, 0);
  std::filesystem::remove(db_ + "/CURRENT");
  for (std::vector<std::string> args :
       {std::vector<std::string>{"stats"}, {"import", file}, {"compact"}}) {
    args.insert(args.begin() + 1, {"--db", db_});
    ProcessResult damaged = Llmcache(args);
    EXPECT_EQ(damaged.exit_code, 1) << args[0];
    EXPECT_THAT(damaged.err, HasSubstr("damaged database")) << args[0];
    EXPECT_THAT(damaged.err, HasSubstr("restore CURRENT")) << args[0];
  }
  EXPECT_FALSE(std::filesystem::exists(db_ + "/CURRENT"));
}

TEST_F(CliTest, ImportSkipsAByteOrderMark) {
  std::string exported;
  ASSERT_NO_FATAL_FAILURE(ExportLiveEntries(&exported));
  const std::string copy = dir_.path() + "/bom";
  ProcessResult r =
      Llmcache({"import", "--db", copy, "--json"}, "\xEF\xBB\xBF" + exported);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json::object o = ParseObject(r.out);
  EXPECT_EQ(o["imported"].to_number<uint64_t>(), 6u);
  EXPECT_EQ(o["malformed"].to_number<uint64_t>(), 0u);
  // Only at the very start: a mark inside the file is a malformed line.
  ProcessResult inner = Llmcache({"import", "--db", copy, "--json"},
                                 exported + "\xEF\xBB\xBF" + exported);
  EXPECT_EQ(inner.exit_code, 1);
  EXPECT_EQ(ParseObject(inner.out)["malformed"].to_number<uint64_t>(), 1u);
}

TEST_F(CliTest, LsRejectsANegativeLimit) {
  Fill();
  ProcessResult r = Llmcache({"ls", "--db", db_, "--limit", "-1"});
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_TRUE(r.out.empty());
  EXPECT_THAT(r.err, HasSubstr("must be 0 or more"));
}

TEST_F(CliTest, ImportReadsLinesAcrossChunkBoundaries) {
  // Input is read in 1 MiB chunks: lines that straddle them, a line longer
  // than a chunk, CRLF line ends, blank lines, a last line without a line
  // end, and optional members that one line has and the next lacks.
  const int64_t created =
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count() -
      1000;
  auto hex = [](int i) {
    char buf[65];
    std::snprintf(buf, sizeof(buf), "%064x", i);
    return std::string(buf);
  };
  constexpr int kLines = 3000;
  std::string input;
  std::map<std::string, std::string> want_ns;
  for (int i = 0; i < kLines; ++i) {
    json::object line{
        {"key", hex(i)},
        {"model", "openai/gpt-4o-mini"},
        {"created", created},
        {"response", Body(std::string(300 + static_cast<size_t>(i % 700),
                                      static_cast<char>('a' + i % 26)))}};
    if (i % 2 == 0) {
      line["namespace"] = "team-" + std::to_string(i % 3);
      line["resolved_model"] = "openai/gpt-4o-mini-2024-07-18";
    }
    want_ns[hex(i)] = i % 2 == 0 ? "team-" + std::to_string(i % 3) : "";
    input += json::serialize(line);
    input += i % 5 == 0 ? "\r\n" : "\n";
    if (i % 97 == 0) input += "\n";
  }
  const std::string long_body = Body(std::string(size_t{2} << 20, 'z'));
  input += json::serialize(json::object{{"key", hex(kLines)},
                                        {"model", "openai/gpt-4o-mini"},
                                        {"created", created},
                                        {"response", long_body}}) +
           "\n";
  want_ns[hex(kLines)] = "";
  input += json::serialize(json::object{{"key", hex(kLines + 1)},
                                        {"model", "openai/gpt-4o-mini"},
                                        {"namespace", "last"},
                                        {"created", created},
                                        {"response", Body("last")}});
  want_ns[hex(kLines + 1)] = "last";

  const std::string file = WriteFile(dir_.path() + "/in.jsonl", input);
  for (const std::string& source : {file, std::string("-")}) {
    SCOPED_TRACE(source);
    const std::string db = dir_.path() + "/db-" + std::to_string(source.size());
    ProcessResult r = Llmcache({"import", "--db", db, "--json", source},
                               source == "-" ? input : "");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    json::object o = ParseObject(r.out);
    EXPECT_EQ(o["imported"].to_number<uint64_t>(), kLines + 2u);
    EXPECT_EQ(o["malformed"].to_number<uint64_t>(), 0u);
    ProcessResult ls = Llmcache({"ls", "--db", db, "--json", "--limit", "0"});
    ASSERT_EQ(ls.exit_code, 0) << ls.err;
    std::map<std::string, std::string> got_ns;
    json::object listed = ParseObject(ls.out);
    for (const json::value& e : listed["entries"].as_array()) {
      got_ns[std::string(e.at("key").as_string())] =
          std::string(e.at("namespace").as_string());
    }
    EXPECT_EQ(got_ns, want_ns);
    json::object big =
        ParseObject(Llmcache({"show", "--json", "--db", db, hex(kLines)}).out);
    EXPECT_EQ(big["response"], json::parse(long_body));
  }
}

// The compression of each table file of the entry column families in the
// database directory `db` (table properties: "NoCompression", "ZSTD", ...).
std::vector<std::string> EntryFileCompressions(const std::string& db) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(db)) {
    if (e.path().extension() != ".sst") continue;
    rocksdb::Options o;
    rocksdb::SstFileReader reader(o);
    rocksdb::Status st = reader.Open(e.path().string());
    EXPECT_TRUE(st.ok()) << e.path() << ": " << st.ToString();
    if (!st.ok()) continue;
    auto p = reader.GetTableProperties();
    const std::string& cf = p->column_family_name;
    if (cf != kOverflowColumnFamily &&
        !cf.starts_with(kModelColumnFamilyPrefix)) {
      continue;
    }
    out.push_back(p->compression_name);
  }
  return out;
}

TEST_F(CliTest, ImportCompactRewritesTheLoadedFiles) {
  std::string exported;
  ASSERT_NO_FATAL_FAILURE(ExportLiveEntries(&exported));
  const std::string copy = dir_.path() + "/compacted";
  ProcessResult r =
      Llmcache({"import", "--db", copy, "--json", "--compact"}, exported);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json::object o = ParseObject(r.out);
  EXPECT_EQ(o["imported"].to_number<uint64_t>(), 6u);
  ASSERT_TRUE(o.contains("compact_seconds")) << r.out;
  EXPECT_GE(o["compact_seconds"].to_number<double>(), 0.0);
  ProcessResult text = Llmcache(
      {"import", "--db", dir_.path() + "/text", "--compact"}, exported);
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("imported 6 entries in "));
  EXPECT_THAT(text.out, HasSubstr("; compacted in "));
  EXPECT_EQ(Llmcache({"ls", "--db", db_, "--json", "--limit", "0"}).out,
            Llmcache({"ls", "--db", copy, "--json", "--limit", "0"}).out);
  EXPECT_EQ(Llmcache({"verify", "--db", copy}).exit_code, 0);
  // Without --compact the loaded files stay uncompressed; with it they are
  // rewritten with the store's compression.
  const std::string plain = dir_.path() + "/plain";
  ProcessResult loaded_only = Llmcache({"import", "--db", plain}, exported);
  ASSERT_EQ(loaded_only.exit_code, 0) << loaded_only.err;
  EXPECT_THAT(loaded_only.err,
              HasSubstr("note: the loaded files are not compressed yet ("));
  EXPECT_THAT(loaded_only.err, HasSubstr("`llmcache compact`"));
  EXPECT_THAT(text.err, Not(HasSubstr("not compressed yet")));
  EXPECT_EQ(o["uncompressed_bytes"].to_number<uint64_t>(), 0u);
  ProcessResult loaded_json = Llmcache(
      {"import", "--db", dir_.path() + "/plain-json", "--json"}, exported);
  ASSERT_EQ(loaded_json.exit_code, 0) << loaded_json.err;
  json::object lj = ParseObject(loaded_json.out);
  EXPECT_GT(lj["uncompressed_bytes"].to_number<uint64_t>(), 6u * 100);
  const std::vector<std::string> loaded = EntryFileCompressions(plain);
  ASSERT_FALSE(loaded.empty());
  for (const std::string& c : loaded) EXPECT_EQ(c, "NoCompression");
  const std::vector<std::string> compacted = EntryFileCompressions(copy);
  ASSERT_FALSE(compacted.empty());
  for (const std::string& c : compacted) EXPECT_EQ(c, "ZSTD");
}

TEST_F(CliTest, VerifyReportsCorruptEntriesByKey) {
  Fill();
  ProcessResult ok = Llmcache({"verify", "--db", db_});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("checked 7 entries: 0 bad"));
  const std::string bad_key = TestKey("openai/gpt-4o-mini", 77).Hex();
  const std::string text_key = TestKey("openai/gpt-4o-mini", 78).Hex();
  {
    auto cache = testing::OpenTestCache(db_);
    ASSERT_OK(cache.status());
    auto* rocks = dynamic_cast<RocksCache*>(cache->get());
    ASSERT_NE(rocks, nullptr);
    const Digest d = TestKey("openai/gpt-4o-mini", 77).digest;
    ASSERT_OK(rocks->PutRawForTest("openai/gpt-4o-mini",
                                   std::string(d.begin(), d.end()),
                                   std::string("\x01\x00garbage", 9)));
    ASSERT_OK((*cache)->Insert(TestKey("openai/gpt-4o-mini", 78),
                               "not json at all", InsertOptions{}));
  }
  ProcessResult r = Llmcache({"verify", "--db", db_, "--json"});
  EXPECT_EQ(r.exit_code, 1);
  json::object o = ParseObject(r.out);
  EXPECT_EQ(o["checked"].to_number<uint64_t>(), 9u);
  EXPECT_EQ(o["problems"].to_number<uint64_t>(), 2u);
  const std::string all = json::serialize(o["entries"]);
  EXPECT_THAT(all, HasSubstr(bad_key));
  EXPECT_THAT(all, HasSubstr(text_key));
  EXPECT_THAT(all, HasSubstr("corrupt"));
  // Export skips the corrupt one, names it, and says so in its exit code.
  ProcessResult exp = Llmcache({"export", "--db", db_});
  EXPECT_EQ(exp.exit_code, 1);
  EXPECT_THAT(exp.err, HasSubstr(bad_key));
  EXPECT_EQ(std::count(exp.out.begin(), exp.out.end(), '\n'), 8);
}

// A damaged block in a table file: the walk over the entries stops at it
// (RocksDB cannot read past it), and a damaged index file is never walked.
// A purge of many entries one by one (here a namespace's) compacts what it
// removed, so that no later walk steps over the deleted creation-time
// records one by one (nor are their bytes kept until a compaction).
TEST_F(CliTest, APurgeOfManyEntriesCompactsWhatItRemoved) {
  {
    auto cache = testing::OpenTestCache(db_);
    ASSERT_OK(cache.status());
    InsertOptions gone;
    gone.ns = "gone";
    for (int i = 0; i < 2000; ++i) {
      ASSERT_OK((*cache)->Insert(TestKey("m/a", i), Body("x"), gone));
    }
    for (int i = 2000; i < 2100; ++i) {
      ASSERT_OK((*cache)->Insert(TestKey("m/a", i), Body("y"), {}));
    }
    ASSERT_OK((*cache)->Compact());  // the entries in table files
  }
  ProcessResult r = Llmcache(
      {"purge", "--db", db_, "--namespace", "gone", "--yes", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  json::object o = ParseObject(r.out);
  EXPECT_EQ(o["removed"].to_number<uint64_t>(), 2000u);
  EXPECT_TRUE(o.contains("compact_seconds")) << r.out;
  {
    auto cache = testing::OpenTestCache(db_);
    ASSERT_OK(cache.status());
    rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
    rocksdb::get_perf_context()->Reset();
    int listed = 0;
    ASSERT_OK((*cache)->ForEachEntryByAge(std::nullopt, /*newest_first=*/false,
                                          [&](const EntryView& v) {
                                            EXPECT_EQ(v.entry.meta.ns, "");
                                            return ++listed < 1;
                                          }));
    const uint64_t skipped =
        rocksdb::get_perf_context()->internal_delete_skipped_count;
    rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
    EXPECT_EQ(listed, 1);
    EXPECT_LT(skipped, 100u) << "the oldest live entry is behind the purged";
  }
  // A small purge (under a tenth of the entries) leaves that to the
  // service's compactions.
  ProcessResult small =
      Llmcache({"purge", "--db", db_, "--key", TestKey("m/a", 2000).Hex(),
                "--yes", "--json"});
  ASSERT_EQ(small.exit_code, 0) << small.err;
  EXPECT_FALSE(ParseObject(small.out).contains("compact_seconds"));
}

// verify reads every file whole and names each damaged one with what it
// holds (it said "0 bad" for a damaged index, and stopped at a damaged
// entry file without naming it).
TEST_F(CliTest, VerifyNamesDamagedTableFiles) {
  Fill();
  {
    auto cache = testing::OpenTestCache(db_);
    ASSERT_OK(cache.status());
    ASSERT_OK((*cache)->Compact());
  }
  // Every table file damaged in its middle.
  int damaged = 0;
  for (const auto& e : std::filesystem::directory_iterator(db_)) {
    if (e.path().extension() != ".sst") continue;
    const auto size = std::filesystem::file_size(e.path());
    if (size < 300) continue;
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size / 3));
    f.write("DAMAGEDDAMAGED", 14);
    ++damaged;
  }
  ASSERT_GE(damaged, 2);
  ProcessResult r = Llmcache({"verify", "--db", db_});
  EXPECT_EQ(r.exit_code, 1);
  // The damage stops the walk of the entries: how far it got is said too.
  EXPECT_THAT(r.out, HasSubstr("checked 0 entries (stopped by the error"));
  EXPECT_THAT(r.err, HasSubstr("iterating entries"));
  EXPECT_THAT(r.out, HasSubstr("damaged file (holds entries of model "));
  EXPECT_THAT(r.out, HasSubstr("damaged file (holds the creation-time index)"));
  EXPECT_THAT(r.out, HasSubstr(".sst"));
  ProcessResult j = Llmcache({"verify", "--db", db_, "--json"});
  EXPECT_EQ(j.exit_code, 1);
  EXPECT_THAT(j.out, HasSubstr("checksum"));
  // A listing that walks the damaged index says so too.
  ProcessResult l = Llmcache({"ls", "--db", db_});
  EXPECT_EQ(l.exit_code, 1) << l.out << l.err;
  EXPECT_THAT(l.err, HasSubstr("checksum"));
}

TEST_F(CliTest, VerifyOfOneModelIgnoresAnotherModelsDamagedFile) {
  Fill();
  {
    auto cache = testing::OpenTestCache(db_);
    ASSERT_OK(cache.status());
    ASSERT_OK((*cache)->Compact());
  }
  // Which file holds claude's entries: damage a copy whole, ask verify.
  const std::string copy = dir_.path() + "/copy";
  std::filesystem::copy(db_, copy);
  for (const auto& e : std::filesystem::directory_iterator(copy)) {
    if (e.path().extension() != ".sst") continue;
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(
        static_cast<std::streamoff>(std::filesystem::file_size(e.path()) / 3));
    f.write("DAMAGEDDAMAGED", 14);
  }
  std::string claude_file;
  const std::string listed = Llmcache({"verify", "--db", copy, "--json"}).out;
  json::object report = ParseObject(listed);
  for (const auto& v : report["entries"].as_array()) {
    const json::object& o = v.as_object();
    if (o.contains("file") &&
        o.at("holds") == "entries of model anthropic/claude-sonnet-4.5") {
      claude_file = std::filesystem::path(o.at("file").as_string().c_str())
                        .filename()
                        .string();
    }
  }
  ASSERT_FALSE(claude_file.empty()) << listed;
  {
    const auto p = std::filesystem::path(db_) / claude_file;
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(p) / 3));
    f.write("DAMAGEDDAMAGED", 14);
  }
  ProcessResult other =
      Llmcache({"verify", "--db", db_, "--model", "openai/gpt-4o-mini"});
  EXPECT_EQ(other.exit_code, 0) << other.out << other.err;
  EXPECT_THAT(other.out, HasSubstr(": 0 bad, "));
  ProcessResult own = Llmcache(
      {"verify", "--db", db_, "--model", "anthropic/claude-sonnet-4.5"});
  EXPECT_EQ(own.exit_code, 1) << own.out;
  EXPECT_THAT(own.out, HasSubstr(claude_file));
  json::object j = ParseObject(Llmcache({"verify", "--db", db_, "--json"}).out);
  EXPECT_EQ(j["damaged_files"].to_number<uint64_t>(), 1u);
}

TEST_F(CliTest, VerifyFailsWheneverADamagedFileChangesWhatIsShown) {
  // Damage anywhere in any table file (its properties block too, which
  // makes RocksDB leave the file out of an inspection's view without an
  // error): either nothing an operator is shown changes, or verify fails.
  Fill();
  {
    auto cache = testing::OpenTestCache(db_);
    ASSERT_OK(cache.status());
    ASSERT_OK((*cache)->Compact());
  }
  const ProcessResult clean = Llmcache({"models", "--db", db_, "--json"});
  ASSERT_EQ(clean.exit_code, 0) << clean.err;
  std::vector<std::filesystem::path> ssts;
  for (const auto& e : std::filesystem::directory_iterator(db_)) {
    if (e.path().extension() == ".sst") ssts.push_back(e.path().filename());
  }
  ASSERT_GE(ssts.size(), 3u);
  const std::string copy = dir_.path() + "/copy";
  int changed = 0, unseen = 0, refused = 0;
  for (const auto& name : ssts) {
    for (double at : {0.2, 0.35, 0.5, 0.65, 0.8}) {
      std::filesystem::remove_all(copy);
      std::filesystem::copy(db_, copy);
      const std::filesystem::path p = std::filesystem::path(copy) / name;
      const auto size = std::filesystem::file_size(p);
      {
        std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(static_cast<double>(size) * at));
        f.write("DAMAGEDDAMAGED", 14);
      }
      // A file written a while ago (not one an owner is still writing).
      std::filesystem::last_write_time(
          p, std::filesystem::file_time_type::clock::now() -
                 std::chrono::minutes(5));
      const ProcessResult m = Llmcache({"models", "--db", copy, "--json"});
      const ProcessResult s = Llmcache({"stats", "--db", copy});
      if (m.exit_code == 0 && m.out == clean.out && s.exit_code == 0) continue;
      ++changed;
      const ProcessResult v = Llmcache({"verify", "--db", copy});
      EXPECT_EQ(v.exit_code, 1)
          << name << " damaged at " << at << ": models " << m.out << m.err
          << "; verify " << v.out << v.err;
      if (m.exit_code == 0 && s.exit_code == 0) ++unseen;  // silently wrong
      if (m.err.find("cannot be opened") != std::string::npos) {
        ++refused;
        // verify reads on past the file it names, to the end of the walk.
        EXPECT_THAT(v.out, HasSubstr("damaged files, ")) << v.out << v.err;
      }
    }
  }
  EXPECT_GT(changed, 0);
  EXPECT_GT(refused, 0);
  // Nothing reads differently without saying so.
  EXPECT_EQ(unseen, 0);
}

TEST_F(CliTest, UnreferencedTableFilesAreNotDamage) {
  // Left by a writer killed mid-compaction (cut short, no footer) or not
  // yet deleted (whole): neither is part of the database, neither is
  // reported, however old.
  Fill();
  {
    auto cache = testing::OpenTestCache(db_);
    ASSERT_OK(cache.status());
    ASSERT_OK((*cache)->Compact());
  }
  std::filesystem::path some;
  for (const auto& e : std::filesystem::directory_iterator(db_)) {
    if (e.path().extension() == ".sst") some = e.path();
  }
  ASSERT_FALSE(some.empty());
  const std::filesystem::path whole = std::filesystem::path(db_) / "999998.sst";
  const std::filesystem::path cut = std::filesystem::path(db_) / "999999.sst";
  std::filesystem::copy_file(some, whole);
  std::filesystem::copy_file(some, cut);
  std::filesystem::resize_file(cut, std::filesystem::file_size(some) / 2);
  for (const auto& p : {whole, cut}) {
    std::filesystem::last_write_time(
        p, std::filesystem::file_time_type::clock::now() -
               std::chrono::minutes(5));
  }
  const ProcessResult v = Llmcache({"verify", "--db", db_});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  const ProcessResult m = Llmcache({"models", "--db", db_});
  EXPECT_EQ(m.exit_code, 0) << m.err;
  EXPECT_THAT(m.out, HasSubstr("openai/gpt-4o-mini"));
}

TEST_F(CliTest, DeeplyNestedResponsesAreValidJson) {
  // Provider metadata can nest deeper than Boost.JSON's default limit (32);
  // the service stores such responses, so verify and show must read them.
  std::string deep = "1";
  for (int i = 0; i < 40; ++i) deep = R"({"x":)" + deep + "}";
  const std::string body =
      R"({"id":"gen-d","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"provider_metadata":)" +
      deep + "}";
  {
    auto cache = testing::OpenTestCache(db_);
    ASSERT_OK(cache.status());
    ASSERT_OK((*cache)->Insert(TestKey("m", 1), body, InsertOptions{}));
  }
  ProcessResult v = Llmcache({"verify", "--db", db_});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  EXPECT_THAT(v.out, HasSubstr("checked 1 entries: 0 bad"));
  ProcessResult show =
      Llmcache({"show", "--json", "--db", db_, TestKey("m", 1).Hex()});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_TRUE(ParseObject(show.out)["response"].is_object()) << show.out;
}

TEST_F(CliTest, ProgressBarOnlyOnATerminal) {
  Fill();
  // `script` gives the child a pseudo-terminal.
  const std::string cmd = std::string(kBin) + " export --db " + db_ + " -o " +
                          dir_.path() + "/out.jsonl";
  ProcessResult tty = RunProcess({"/usr/bin/script", "-qec", cmd, "/dev/null"});
  ASSERT_EQ(tty.exit_code, 0) << tty.out << tty.err;
  EXPECT_THAT(tty.out, HasSubstr("export ["));
  EXPECT_THAT(tty.out, HasSubstr("/s ETA"));
  ProcessResult pipe =
      Llmcache({"export", "--db", db_, "-o", dir_.path() + "/out2.jsonl"});
  EXPECT_THAT(pipe.err, Not(HasSubstr("export [")));
  // import and verify draw theirs too.
  const std::string copy = dir_.path() + "/copy";
  ProcessResult imp = RunProcess({"/usr/bin/script", "-qec",
                                  std::string(kBin) + " import --db " + copy +
                                      " " + dir_.path() + "/out.jsonl",
                                  "/dev/null"});
  EXPECT_EQ(imp.exit_code, 0) << imp.out;
  EXPECT_THAT(imp.out, HasSubstr("import ["));
  EXPECT_THAT(imp.out, HasSubstr("import: storing the last batch"));
  ProcessResult piped = Llmcache(
      {"import", "--db", dir_.path() + "/piped", dir_.path() + "/out.jsonl"});
  EXPECT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_THAT(piped.err, Not(HasSubstr("storing the last batch")));
  ProcessResult ver =
      RunProcess({"/usr/bin/script", "-qec",
                  std::string(kBin) + " verify --db " + copy, "/dev/null"});
  EXPECT_EQ(ver.exit_code, 0) << ver.out;
  EXPECT_THAT(ver.out, HasSubstr("verify ["));
}

TEST(ProgressTest, RendersRateAndEta) {
  const std::string line = cli::Progress::Render("import", 50, 200, 2.0, 60);
  EXPECT_THAT(line, HasSubstr("50/200"));
  EXPECT_THAT(line, HasSubstr("25/s"));
  EXPECT_THAT(line, HasSubstr("ETA 0m06s"));
  EXPECT_THAT(line, HasSubstr("[#"));
  const std::string open = cli::Progress::Render("warm", 7, 0, 1.0, 60);
  EXPECT_THAT(open, HasSubstr("7 7/s"));
  // Not from the first moments: 1 line after 16 ms is not 62/s for the
  // next 53 minutes.
  const std::string early =
      cli::Progress::Render("import", 1, 200000, 0.016, 80);
  EXPECT_THAT(early, HasSubstr("1/200000 -/s ETA -"));
  EXPECT_THAT(early, Not(ContainsRegex("[0-9]m[0-9]")));
  EXPECT_THAT(cli::Progress::Render("warm", 3, 0, 0.1, 60),
              HasSubstr(" 3 -/s"));
  EXPECT_THAT(cli::Progress::Render("import", 0, 10, 5.0, 60),
              HasSubstr("0/10 -/s ETA -"));
}

TEST(ParseListenTest, HostPortAndIpv6) {
  std::string host;
  uint16_t port = 0;
  EXPECT_TRUE(cli::ParseListen("127.0.0.1:8080", &host, &port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 8080);
  EXPECT_TRUE(cli::ParseListen("[::1]:0", &host, &port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 0);
  for (const char* bad : {"8080", ":8080", "h:", "h:65536", "h:-1", "h:8x"}) {
    EXPECT_FALSE(cli::ParseListen(bad, &host, &port)) << bad;
  }
}

TEST(RedactCommandLineTest, HidesSecretsOfTheLockHolder) {
  using namespace std::string_literals;
  EXPECT_EQ(cli::RedactCommandLine("llmcache\0serve\0--admin-token\0s3cret\0"
                                   "--api-key=sk-1\0--db\0/x"s),
            "llmcache serve --admin-token *** --api-key=*** --db /x");
  EXPECT_EQ(cli::RedactCommandLine("prog"), "prog");
  // A password in a URL's user info: the last '@' ends it (a password may
  // hold '/', '?' or '#'), also in a list of seeds and after '='.
  EXPECT_EQ(
      cli::RedactCommandLine("serve\0--redis\0redis://:pw@h:6379/0\0"
                             "--redis=rediss://u:p@ss@a:1,b:2\0"
                             "--redis\0redis://:pa/ss#?@h:1\0"
                             "--upstream\0https://tok@x.example/api\0"
                             "--upstream=http://x.example/a\0"
                             "--db\0/x:y@z"s),
      "serve --redis redis://:***@h:6379/0 --redis=rediss://u:***@a:1,b:2 "
      "--redis redis://:***@h:1 --upstream https://***@x.example/api "
      "--upstream=http://x.example/a --db /x:y@z");
}

// ---- a database held open by a second live process ----

TEST_F(CliTest, LiveDatabaseReadVerbsSeeWritesAndMutatingVerbsExitThree) {
  const std::string acks = dir_.path() + "/acks";
  testing::BackgroundProcess writer({CRASH_WRITER_PATH, db_, acks, "0"});
  auto acked = [&] {
    std::ifstream in(acks);
    return static_cast<uint64_t>(std::count(std::istreambuf_iterator<char>(in),
                                            std::istreambuf_iterator<char>(),
                                            '\n'));
  };
  auto wait_for = [&](uint64_t n) {
    return testing::WaitFor([&] { return acked() >= n; }, 30s);
  };
  ASSERT_TRUE(wait_for(20));
  const uint64_t before = acked();
  json::object s1 = ParseObject(Llmcache({"stats", "--db", db_, "--json"}).out);
  EXPECT_GE(s1["entries"].to_number<uint64_t>(), before);
  const size_t listed1 = LsKeys(db_).size();
  EXPECT_GE(listed1, before);

  ASSERT_TRUE(wait_for(before + 50));
  const uint64_t later = acked();
  json::object s2 = ParseObject(Llmcache({"stats", "--db", db_, "--json"}).out);
  EXPECT_GE(s2["entries"].to_number<uint64_t>(), later);
  EXPECT_GT(s2["entries"].to_number<uint64_t>(),
            s1["entries"].to_number<uint64_t>());
  EXPECT_GE(LsKeys(db_).size(), later);
  ProcessResult models = Llmcache({"models", "--db", db_, "--json"});
  EXPECT_EQ(models.exit_code, 0) << models.err;
  EXPECT_EQ(ParseObject(models.out)["models"].as_array().size(), 5u);
  EXPECT_EQ(Llmcache({"verify", "--db", db_}).exit_code, 0);

  const std::string pid = std::to_string(writer.pid());
  const std::string requests =
      WriteFile(dir_.path() + "/warm.jsonl", std::string(kRequest) + "\n");
  for (std::vector<std::string> args :
       {std::vector<std::string>{"purge", "--db", db_, "--all", "--yes"},
        {"purge", "--db", db_, "--model", "openai/gpt-4o-mini"},
        {"compact", "--db", db_},
        {"import", "--db", db_},
        {"warm", "--db", db_, "--upstream", "http://127.0.0.1:9/api/v1",
         requests}}) {
    ProcessResult r = Llmcache(args, "");
    EXPECT_EQ(r.exit_code, 3) << args[0] << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("in use by process " + pid)) << args[0];
    EXPECT_THAT(r.err, HasSubstr("crash_writer")) << args[0];
    // Not `llmcache serve`: no admin endpoint or proxy to send it to.
    EXPECT_THAT(r.err, HasSubstr("wait for that process to end")) << args[0];
    EXPECT_THAT(r.err, Not(HasSubstr("/admin/"))) << args[0];
    EXPECT_THAT(r.err, Not(HasSubstr("--proxy"))) << args[0];
  }
  // Nothing was removed.
  EXPECT_GE(LsKeys(db_).size(), later);
}

// ---- warm, against the fake OpenRouter ----

TEST_F(CliTest, WarmFillsTheCacheAndSkipsWhatIsCached) {
  fake::FakeOptions fo;
  auto fake = fake::FakeOpenRouter::Start(fo);
  ASSERT_OK(fake.status());
  std::string lines;
  lines +=
      R"({"model":"openai/gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"one"}]})"
      "\n";
  lines +=
      R"({"model":"openai/gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"two"}]})"
      "\n";
  lines +=
      R"({"model":"openai/gpt-4o-mini","temperature":0.9,"messages":[{"role":"user","content":"hot"}]})"
      "\n";
  lines +=
      R"({"model":"anthropic/claude-sonnet-4.5","temperature":0,"messages":[{"role":"user","content":"three"}]})"
      "\n";
  const std::string file = WriteFile(dir_.path() + "/warm.jsonl", lines);
  const std::vector<std::string> env = {"OPENROUTER_API_KEY=sk-warm-test"};
  ProcessResult r = Llmcache({"warm", "--db", db_, "--upstream",
                              (*fake)->base_url(), file, "--json", "-j", "2"},
                             "", env);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  json::object o = ParseObject(r.out);
  EXPECT_EQ(o["stored"].to_number<uint64_t>(), 3u);
  EXPECT_EQ(o["bypassed"].to_number<uint64_t>(), 1u);
  EXPECT_EQ(o["already_cached"].to_number<uint64_t>(), 0u);
  EXPECT_EQ((*fake)->completions(), 3u);
  EXPECT_EQ((*fake)->last_authorization(), "Bearer sk-warm-test");
  EXPECT_EQ(LsKeys(db_).size(), 3u);

  // The entries are where the proxy would look for this API key.
  const std::string first = lines.substr(0, lines.find('\n'));
  ProcessResult get = Llmcache({"get", "--db", db_, "--json", "--api-key-env",
                                "OPENROUTER_API_KEY", "-"},
                               first, env);
  EXPECT_TRUE(ParseObject(get.out)["cached"].as_bool()) << get.out << get.err;

  // Again: nothing is sent.
  ProcessResult again = Llmcache(
      {"warm", "--db", db_, "--upstream", (*fake)->base_url(), file}, "", env);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.out, HasSubstr("already cached  3"));
  EXPECT_EQ((*fake)->completions(), 3u);

  // Malformed lines and upstream errors are reported, not stored.
  std::string bad = "{oops\n";
  bad +=
      R"({"model":"fake/fault-400","temperature":0,"messages":[{"role":"user","content":"x"}]})"
      "\n";
  const std::string bad_file = WriteFile(dir_.path() + "/bad.jsonl", bad);
  ProcessResult failed = Llmcache(
      {"warm", "--db", db_, "--upstream", (*fake)->base_url(), bad_file}, "",
      env);
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_THAT(failed.err, HasSubstr("line 1:"));
  EXPECT_THAT(failed.err, HasSubstr("line 2: upstream status 400"));
  EXPECT_EQ(LsKeys(db_).size(), 3u);
}

// Ctrl-C on a warm: nothing more is sent, what was sent is answered and
// stored, the summary says so, exit 130.
TEST_F(CliTest, AnInterruptedWarmSendsNothingMore) {
  auto fake = fake::FakeOpenRouter::Start(fake::FakeOptions{});
  ASSERT_OK(fake.status());
  constexpr int kLines = 10;
  std::string lines;
  for (int i = 0; i < kLines; ++i) {
    lines +=
        R"({"model":"fake/delay-300","temperature":0,"messages":[{"role":"user","content":"q)" +
        std::to_string(i) + "\"}]}\n";
  }
  const std::string file = WriteFile(dir_.path() + "/warm.jsonl", lines);
  testing::BackgroundOptions bo;
  bo.drop_env_prefixes = testing::kLlmcacheEnvironment;
  bo.env = {"OPENROUTER_API_KEY=sk-warm-test"};
  bo.stdout_path = dir_.path() + "/out";
  bo.stderr_path = dir_.path() + "/err";
  testing::BackgroundProcess warm(
      {LLMCACHE_BIN, "warm", "--db", db_, "--upstream", (*fake)->base_url(),
       "-j", "1", "--json", file},
      bo);
  // One answered: the handler is in place, the second request is on its way.
  ASSERT_TRUE(testing::WaitFor([&] { return (*fake)->completions() >= 1; },
                               std::chrono::seconds(30)))
      << warm.Err();
  warm.Signal(SIGINT);
  ASSERT_EQ(warm.Wait(), 128 + SIGINT) << warm.Err();
  EXPECT_THAT(warm.Err(), HasSubstr("llmcache warm: interrupted (SIGINT): "));
  json::object o = ParseObject(warm.Out());
  EXPECT_EQ(o["interrupted"], "SIGINT");
  const uint64_t stored = o["stored"].to_number<uint64_t>();
  const uint64_t not_sent = o["not_sent"].to_number<uint64_t>();
  EXPECT_GE(stored, 1u);
  EXPECT_GE(not_sent, 1u);
  EXPECT_EQ(stored + not_sent, static_cast<uint64_t>(kLines));
  EXPECT_EQ((*fake)->completions(), stored);
  EXPECT_EQ(LsKeys(db_).size(), stored);
}

// A stream request is read as a stream and stored from its events; a line
// that repeats one before it is sent once.
TEST_F(CliTest, WarmStoresStreamRequestsAndSendsARepeatedLineOnce) {
  auto fake = fake::FakeOpenRouter::Start(fake::FakeOptions{});
  ASSERT_OK(fake.status());
  const std::string chat =
      R"({"model":"openai/gpt-4o-mini","temperature":0,"stream":true,"messages":[{"role":"user","content":"s"}]})";
  std::string lines = chat + "\n" + chat + "\n";
  lines +=
      R"({"endpoint":"messages","body":{"model":"anthropic/claude-sonnet-4.5","temperature":0,"stream":true,"max_tokens":8,"messages":[{"role":"user","content":"m"}]}})"
      "\n";
  const std::string file = WriteFile(dir_.path() + "/warm.jsonl", lines);
  const std::vector<std::string> env = {"OPENROUTER_API_KEY=sk-warm-test"};
  ProcessResult r = Llmcache({"warm", "--db", db_, "--upstream",
                              (*fake)->base_url(), file, "--json", "-j", "4"},
                             "", env);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  json::object o = ParseObject(r.out);
  EXPECT_EQ(o["stored"].to_number<uint64_t>(), 2u) << r.out;
  EXPECT_EQ(o["duplicates"].to_number<uint64_t>(), 1u) << r.out;
  EXPECT_EQ(o["sent"].to_number<uint64_t>(), 2u) << r.out;
  EXPECT_EQ((*fake)->completions(), 1u);
  EXPECT_EQ((*fake)->messages(), 1u);
  EXPECT_EQ(LsKeys(db_).size(), 2u);
  // Again: the repeat is still a duplicate, the rest already cached.
  r = Llmcache(
      {"warm", "--db", db_, "--upstream", (*fake)->base_url(), file, "--json"},
      "", env);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  o = ParseObject(r.out);
  EXPECT_EQ(o["already_cached"].to_number<uint64_t>(), 2u) << r.out;
  EXPECT_EQ(o["duplicates"].to_number<uint64_t>(), 1u) << r.out;
  EXPECT_EQ((*fake)->completions(), 1u);
}

TEST_F(CliTest, KeyExplainsEveryEndpoint) {
  const std::string body =
      R"({"model":"openai/text-embedding-3-small","input":"hello"})";
  ProcessResult emb =
      Llmcache({"key", "--json", "--endpoint", "embeddings", "-"}, body);
  ASSERT_EQ(emb.exit_code, 0) << emb.err;
  json::object o = ParseObject(emb.out);
  EXPECT_EQ(o["endpoint"].as_string(), "embeddings");
  EXPECT_TRUE(o["cacheable"].as_bool());  // no temperature needed
  // Chat completions need `messages`: the same body is not a chat request.
  ProcessResult chat = Llmcache({"key", "--json", "-"}, body);
  EXPECT_EQ(chat.exit_code, 1);
  EXPECT_THAT(chat.err, HasSubstr("messages"));
  ProcessResult stored = Llmcache(
      {"key", "--endpoint", "responses", "-"},
      R"({"model":"openai/gpt-4o","temperature":0,"store":true,"input":"x"})");
  ASSERT_EQ(stored.exit_code, 0) << stored.err;
  EXPECT_THAT(stored.out, HasSubstr("store_requested"));
  EXPECT_THAT(stored.out, HasSubstr("endpoint   responses"));
  ProcessResult unknown =
      Llmcache({"key", "--endpoint", "completions", "-"}, body);
  EXPECT_EQ(unknown.exit_code, 2);  // a usage error
  EXPECT_THAT(unknown.err, HasSubstr("unknown endpoint 'completions'"));
}

TEST_F(CliTest, WarmAcceptsEveryEndpointAndLsShowsIt) {
  auto fake = fake::FakeOpenRouter::Start(fake::FakeOptions{});
  ASSERT_OK(fake.status());
  std::string lines;
  lines +=
      R"({"endpoint":"embeddings","body":{"model":"openai/emb","input":["a","b"]}})"
      "\n";
  lines +=
      R"({"endpoint":"responses","body":{"model":"openai/gpt-4o","temperature":0,"input":"r"}})"
      "\n";
  lines +=
      R"({"endpoint":"messages","body":{"model":"anthropic/claude-sonnet-4.5","temperature":0,"max_tokens":8,"messages":[{"role":"user","content":"m"}]}})"
      "\n";
  lines +=
      R"({"model":"openai/gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"c"}]})"
      "\n";
  lines += R"({"endpoint":"nope","body":{}})"
           "\n";
  const std::string file = WriteFile(dir_.path() + "/warm.jsonl", lines);
  const std::vector<std::string> env = {"OPENROUTER_API_KEY=sk-warm-test"};
  ProcessResult r = Llmcache(
      {"warm", "--db", db_, "--upstream", (*fake)->base_url(), file, "--json"},
      "", env);
  EXPECT_EQ(r.exit_code, 1) << r.err << r.out;  // the malformed last line
  EXPECT_THAT(r.err, HasSubstr("line 5: unknown endpoint 'nope'"));
  json::object o = ParseObject(r.out);
  EXPECT_EQ(o["stored"].to_number<uint64_t>(), 4u);
  EXPECT_EQ((*fake)->embedded_items(), 2u);
  EXPECT_EQ((*fake)->responses(), 1u);
  EXPECT_EQ((*fake)->messages(), 1u);
  EXPECT_EQ((*fake)->completions(), 1u);

  ProcessResult ls = Llmcache({"ls", "--db", db_, "--json"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  std::map<std::string, int> endpoints;
  json::object listed = ParseObject(ls.out);
  for (const json::value& e : listed["entries"].as_array()) {
    ++endpoints[std::string(e.at("endpoint").as_string())];
  }
  EXPECT_EQ(endpoints, (std::map<std::string, int>{{"chat_completions", 1},
                                                   {"embeddings", 2},
                                                   {"messages", 1},
                                                   {"responses", 1}}));
  ProcessResult table = Llmcache({"ls", "--db", db_});
  EXPECT_THAT(table.out, HasSubstr("ENDPOINT"));
  EXPECT_THAT(table.out, HasSubstr("embeddings"));
}

}  // namespace
}  // namespace llmcache
