// `llmcache import` killed with SIGKILL at moments spread over its run, as a
// crash or an impatient operator would: batches are stored whole and in
// input order, so the database must hold exactly a prefix of the lines, with
// counters and time index that agree with it, and an import run again must
// complete the set and leave no loader directory.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "testing/subprocess.h"
#include "testing/temp_dir.h"

namespace llmcache {
namespace {

namespace json = boost::json;
using ::llmcache::testing::BackgroundOptions;
using ::llmcache::testing::BackgroundProcess;
using ::llmcache::testing::ProcessResult;
using ::llmcache::testing::RunProcess;
using ::llmcache::testing::TempDir;

constexpr char kBin[] = LLMCACHE_BIN;

ProcessResult Llmcache(std::vector<std::string> args) {
  args.insert(args.begin(), kBin);
  return RunProcess(args, "", {}, testing::kLlmcacheEnvironment);
}

std::string Hex(int i) {
  char buf[65];
  std::snprintf(buf, sizeof(buf), "%064x", i);
  return buf;
}

// The keys `llmcache ls` lists in `db`.
std::set<std::string> ListedKeys(const std::string& db) {
  std::set<std::string> keys;
  ProcessResult ls = Llmcache({"ls", "--db", db, "--json", "--limit", "0"});
  EXPECT_EQ(ls.exit_code, 0) << ls.err;
  boost::system::error_code ec;
  const json::value v = json::parse(ls.out, ec);
  EXPECT_FALSE(ec) << ls.out.substr(0, 200);
  if (ec || !v.is_object()) return keys;
  for (const json::value& e : v.at("entries").as_array()) {
    keys.emplace(e.at("key").as_string());
  }
  return keys;
}

// The entry count `llmcache stats` reports for `db`.
uint64_t StatsEntries(const std::string& db) {
  ProcessResult st = Llmcache({"stats", "--db", db, "--json"});
  EXPECT_EQ(st.exit_code, 0) << st.err;
  boost::system::error_code ec;
  const json::value v = json::parse(st.out, ec);
  EXPECT_FALSE(ec) << st.out.substr(0, 200);
  if (ec || !v.is_object()) return 0;
  return v.at("entries").to_number<uint64_t>();
}

// Directories a bulk load works in, left in `db`.
int LoaderDirectories(const std::string& db) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(db, ec)) {
    if (e.path().filename().string().starts_with("bulk-load.")) ++n;
  }
  return n;
}

TEST(ImportKillTest, AKilledImportKeepsAPrefixOfTheLines) {
  TempDir dir;
  // ~1 KiB per line, batches of 1 MiB: a dozen batches.
  constexpr int kLines = 12000;
  const int64_t created =
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count() -
      1000;
  const std::vector<std::string> models = {
      "openai/gpt-4o-mini", "anthropic/claude-sonnet-4.5", "google/gemini"};
  const std::string file = dir.path() + "/export.jsonl";
  {
    std::ofstream out(file, std::ios::binary);
    for (int i = 0; i < kLines; ++i) {
      const std::string content(800 + static_cast<size_t>(i % 200),
                                static_cast<char>('a' + i % 26));
      json::object line{
          {"key", Hex(i)},
          {"model", models[static_cast<size_t>(i) % models.size()]},
          {"created", created},
          {"response",
           R"({"id":"gen-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":")" +
               content + R"("},"finish_reason":"stop"}]})"}};
      out << json::serialize(line) << "\n";
    }
    ASSERT_TRUE(out.good());
  }
  auto import_args = [&](const std::string& db) {
    return std::vector<std::string>{kBin,          "import", "--db", db,
                                    "--batch-mib", "1",      file};
  };

  // A batch size out of range is a usage error, before anything is opened.
  ProcessResult zero = Llmcache(
      {"import", "--db", dir.path() + "/zero", "--batch-mib", "0", file});
  EXPECT_EQ(zero.exit_code, 2) << zero.err;
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/zero"));

  // How long an uninterrupted import takes.
  const auto start = std::chrono::steady_clock::now();
  {
    ProcessResult r = RunProcess(import_args(dir.path() + "/ref"), "", {},
                                 testing::kLlmcacheEnvironment);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  const auto full = std::chrono::steady_clock::now() - start;

  // Six kills spread over the run; if none landed inside the load (a run
  // slower or faster than the first), up to six more between them.
  constexpr int kRounds = 6;
  constexpr int kMaxRounds = 12;
  int partial = 0;  // rounds that left some lines but not all
  int absent = 0;   // rounds that left no database
  int round = 0;
  for (; round < kMaxRounds && (round < kRounds || partial == 0); ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string db = dir.path() + "/db" + std::to_string(round);
    {
      BackgroundOptions bo;
      bo.drop_env_prefixes = testing::kLlmcacheEnvironment;
      bo.stdout_path = dir.path() + "/out";
      bo.stderr_path = dir.path() + "/err";
      BackgroundProcess run(import_args(db), bo);
      // At 1/7 ... 6/7 of an uninterrupted run, then halfway between.
      const int step = 2 * (round % kRounds) + (round < kRounds ? 2 : 1);
      std::this_thread::sleep_for(full * step / (2 * (kRounds + 1)));
      run.Signal(SIGKILL);
      const int code = run.Wait();
      ASSERT_TRUE(code == 128 + SIGKILL || code == 0) << code;
    }
    if (!std::filesystem::exists(db + "/CURRENT")) {
      // Killed before the database was created: none to read, and the
      // import makes it.
      ++absent;
      ProcessResult ls = Llmcache({"ls", "--db", db});
      EXPECT_EQ(ls.exit_code, 1);
      EXPECT_THAT(ls.err, ::testing::HasSubstr("no database at"));
      ProcessResult again =
          RunProcess(import_args(db), "", {}, testing::kLlmcacheEnvironment);
      ASSERT_EQ(again.exit_code, 0) << again.err;
      EXPECT_EQ(StatsEntries(db), static_cast<uint64_t>(kLines));
      continue;
    }

    const std::set<std::string> keys = ListedKeys(db);
    const size_t n = keys.size();
    EXPECT_EQ(StatsEntries(db), n);
    // Exactly the first n lines.
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(keys.count(Hex(static_cast<int>(i))), 1u)
          << "line " << i << " missing, " << n << " entries stored";
    }
    ProcessResult verify = Llmcache({"verify", "--db", db});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
    if (n > 0 && n < static_cast<size_t>(kLines)) ++partial;

    // Importing again completes the set, and removes what the killed load
    // left in its directory.
    ProcessResult again =
        RunProcess(import_args(db), "", {}, testing::kLlmcacheEnvironment);
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(StatsEntries(db), static_cast<uint64_t>(kLines));
    EXPECT_EQ(LoaderDirectories(db), 0);
  }
  // The kills did land inside the load.
  std::printf("%d of %d kills left part of the lines, %d no database\n",
              partial, round, absent);
  EXPECT_GE(partial, 1);
}

}  // namespace
}  // namespace llmcache
