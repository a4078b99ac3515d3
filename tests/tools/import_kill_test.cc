// `llmcache import` killed with SIGKILL at moments spread over its run, as a
// crash or an impatient operator would: batches are stored whole and in
// input order, so the database must hold exactly a prefix of the lines, with
// counters and time index that agree with it, and an import run again must
// complete the set and leave no loader directory. And the long verbs
// interrupted (SIGINT, Ctrl-C): they stop at the next entry, keep what they
// did, write their counters and exit 130.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/util.h"
#include "cli/verbs.h"
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

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Line `i` of an export: a ~1 KiB chat completion, key Hex(i), one of three
// models.
std::string ExportLine(int i, int64_t created) {
  static const std::vector<std::string> models = {
      "openai/gpt-4o-mini", "anthropic/claude-sonnet-4.5", "google/gemini"};
  const std::string content(800 + static_cast<size_t>(i % 200),
                            static_cast<char>('a' + i % 26));
  json::object line{
      {"key", Hex(i)},
      {"model", models[static_cast<size_t>(i) % models.size()]},
      {"created", created},
      {"response",
       R"({"id":"gen-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":")" +
           content + R"("},"finish_reason":"stop"}]})"}};
  return json::serialize(line) + "\n";
}

// Writes lines [from, to) to `path`.
void WriteExport(const std::string& path, int from, int to, int64_t created) {
  std::ofstream out(path, std::ios::binary);
  for (int i = from; i < to; ++i) out << ExportLine(i, created);
  ASSERT_TRUE(out.good());
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

// The counter `field` that `llmcache stats` reports for `db`.
uint64_t StatsField(const std::string& db, const std::string& field) {
  ProcessResult st = Llmcache({"stats", "--db", db, "--json"});
  EXPECT_EQ(st.exit_code, 0) << st.err;
  boost::system::error_code ec;
  const json::value v = json::parse(st.out, ec);
  EXPECT_FALSE(ec) << st.out.substr(0, 200);
  if (ec || !v.is_object()) return 0;
  return v.at(field).to_number<uint64_t>();
}

uint64_t StatsEntries(const std::string& db) {
  return StatsField(db, "entries");
}

// Runs `argv` and kills it with SIGKILL after `delay` (its output in files
// under `dir`); its exit code (128 + SIGKILL, or 0 if it ended first).
int RunAndKill(const std::vector<std::string>& argv,
               std::chrono::steady_clock::duration delay,
               const std::string& dir) {
  BackgroundOptions bo;
  bo.drop_env_prefixes = testing::kLlmcacheEnvironment;
  bo.stdout_path = dir + "/out";
  bo.stderr_path = dir + "/err";
  BackgroundProcess run(argv, bo);
  std::this_thread::sleep_for(delay);
  run.Signal(SIGKILL);
  return run.Wait();
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
  const std::string file = dir.path() + "/export.jsonl";
  WriteExport(file, 0, kLines, NowMs() - 1000);
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

  // Six kills spread over the run (at 1/7 ... 6/7 of it). If none landed
  // inside the load (runs slower or faster than the first, as on a loaded
  // machine), up to six more, each halfway between the latest kill that
  // came too early (nothing stored yet) and the earliest that came too late
  // (all stored): the window is found whatever the pace.
  constexpr int kRounds = 6;
  constexpr int kMaxRounds = 12;
  int partial = 0;  // rounds that left some lines but not all
  int absent = 0;   // rounds that left no database
  std::chrono::steady_clock::duration too_early{0}, too_late = 4 * full;
  int round = 0;
  for (; round < kMaxRounds && (round < kRounds || partial == 0); ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string db = dir.path() + "/db" + std::to_string(round);
    const auto delay = round < kRounds ? full * (round + 1) / (kRounds + 1)
                                       : too_early + (too_late - too_early) / 2;
    const int code = RunAndKill(import_args(db), delay, dir.path());
    ASSERT_TRUE(code == 128 + SIGKILL || code == 0) << code;
    if (!std::filesystem::exists(db + "/CURRENT")) {
      // Killed before the database was created: none to read, and the
      // import makes it.
      ++absent;
      too_early = std::max(too_early, delay);
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
    // Counted with what it wrote, in the same ingestion.
    EXPECT_EQ(StatsField(db, "inserts"), n);
    // Exactly the first n lines.
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(keys.count(Hex(static_cast<int>(i))), 1u)
          << "line " << i << " missing, " << n << " entries stored";
    }
    ProcessResult verify = Llmcache({"verify", "--db", db});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
    if (n > 0 && n < static_cast<size_t>(kLines)) ++partial;
    if (n == 0) too_early = std::max(too_early, delay);
    if (n == static_cast<size_t>(kLines)) too_late = std::min(too_late, delay);

    // Importing again completes the set, and removes what the killed load
    // left in its directory.
    ProcessResult again =
        RunProcess(import_args(db), "", {}, testing::kLlmcacheEnvironment);
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(StatsEntries(db), static_cast<uint64_t>(kLines));
    EXPECT_EQ(StatsField(db, "inserts"), static_cast<uint64_t>(kLines));
    EXPECT_EQ(LoaderDirectories(db), 0);
  }
  // The kills did land inside the load.
  std::printf("%d of %d kills left part of the lines, %d no database\n",
              partial, round, absent);
  EXPECT_GE(partial, 1);
}

// `llmcache purge --older-than` killed with SIGKILL: what it removed is
// counted as purged whenever the kill lands (each chunk's deletes and its
// count are one write; the count was kept in memory until the close, and
// lost).
TEST(ImportKillTest, AKilledAgePurgeKeepsItsCount) {
  TempDir dir;
  constexpr int kLines = 12000;
  const std::string file = dir.path() + "/old.jsonl";
  WriteExport(file, 0, kLines, NowMs() - 2 * 86'400'000);
  auto fill = [&](const std::string& db) {
    ASSERT_EQ(Llmcache({"import", "--db", db, file}).exit_code, 0);
  };
  auto purge_args = [&](const std::string& db) {
    return std::vector<std::string>{kBin,           "purge", "--db", db,
                                    "--older-than", "1d",    "--yes"};
  };
  const std::string ref = dir.path() + "/ref";
  fill(ref);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(RunProcess(purge_args(ref), "", {}, testing::kLlmcacheEnvironment)
                .exit_code,
            0);
  const auto full = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(StatsField(ref, "purged"), static_cast<uint64_t>(kLines));

  // Kills spread over the run, then halfway between the latest too early
  // and the earliest too late, until one lands inside the purge.
  int partial = 0;
  std::chrono::steady_clock::duration too_early{0}, too_late = 4 * full;
  int round = 0;
  for (; round < 10 && (round < 3 || partial == 0); ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string db = dir.path() + "/db" + std::to_string(round);
    fill(db);
    const auto delay = round < 3 ? full * (round + 1) / 4
                                 : too_early + (too_late - too_early) / 2;
    const int code = RunAndKill(purge_args(db), delay, dir.path());
    ASSERT_TRUE(code == 128 + SIGKILL || code == 0) << code;
    const uint64_t left = StatsEntries(db);
    EXPECT_EQ(StatsField(db, "purged"), kLines - left);
    EXPECT_EQ(ListedKeys(db).size(), left);
    if (left == static_cast<uint64_t>(kLines)) {
      too_early = std::max(too_early, delay);
    } else if (left == 0) {
      too_late = std::min(too_late, delay);
    } else {
      ++partial;
    }
  }
  std::printf("%d of %d kills landed inside the purge\n", partial, round);
  EXPECT_GE(partial, 1);
}

// Writes `data` to `fd` (a FIFO the child reads), waiting at most 30 s for
// room; false if the child stopped reading.
bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, 30'000) != 1) return false;
    const ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Ctrl-C on an import reading a pipe: it stops at the next line, stores whole
// what it has read before that line (a prefix), closes the database with its
// counters, reports how far it got and exits 130; the same import again
// stores the rest.
TEST(ImportInterruptTest, AnInterruptedImportKeepsAPrefixAndItsCounters) {
  TempDir dir;
  const std::string db = dir.path() + "/db";
  const std::string fifo = dir.path() + "/in.fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  // Not blocking: the child may not have opened it yet. Our descriptor is the
  // only writer; closing it is the child's end of input.
  const int fd = open(fifo.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  const int64_t created = NowMs() - 1000;
  constexpr int kBefore = 6000;  // ~6 MiB, six 1 MiB batches
  constexpr int kAfter = 30;     // fits in the pipe: written after the signal
  BackgroundOptions bo;
  bo.drop_env_prefixes = testing::kLlmcacheEnvironment;
  bo.stdout_path = dir.path() + "/out";
  bo.stderr_path = dir.path() + "/err";
  BackgroundProcess run(
      {kBin, "import", "--db", db, "--batch-mib", "1", "--json", fifo}, bo);
  std::string before;
  for (int i = 0; i < kBefore; ++i) before += ExportLine(i, created);
  // Written only as the child reads: it has read all but the pipe's buffer.
  ASSERT_TRUE(WriteAll(fd, before)) << run.Err();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  run.Signal(SIGINT);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::string after;
  for (int i = kBefore; i < kBefore + kAfter; ++i) {
    after += ExportLine(i, created);
  }
  ASSERT_TRUE(WriteAll(fd, after));
  close(fd);
  ASSERT_EQ(run.Wait(), 128 + SIGINT) << run.Err();
  EXPECT_THAT(
      run.Err(),
      ::testing::HasSubstr("llmcache import: interrupted (SIGINT) after line"));
  boost::system::error_code ec;
  const json::value report = json::parse(run.Out(), ec);
  ASSERT_FALSE(ec) << run.Out();
  EXPECT_EQ(report.at("interrupted"), "SIGINT");
  const uint64_t imported = report.at("imported").to_number<uint64_t>();
  EXPECT_EQ(report.at("lines").to_number<uint64_t>(), imported);
  EXPECT_LE(imported, static_cast<uint64_t>(kBefore));
  std::printf("interrupted after %llu of %d lines\n",
              static_cast<unsigned long long>(imported), kBefore + kAfter);

  // Exactly the first `imported` lines, counted as written.
  const std::set<std::string> keys = ListedKeys(db);
  ASSERT_EQ(keys.size(), imported);
  for (uint64_t i = 0; i < imported; ++i) {
    ASSERT_EQ(keys.count(Hex(static_cast<int>(i))), 1u) << i;
  }
  EXPECT_EQ(StatsEntries(db), imported);
  EXPECT_EQ(StatsField(db, "inserts"), imported);
  EXPECT_EQ(LoaderDirectories(db), 0);

  // The same input again stores the rest.
  const std::string file = dir.path() + "/all.jsonl";
  {
    std::ofstream out(file, std::ios::binary);
    out << before << after;
  }
  ProcessResult again = Llmcache({"import", "--db", db, file});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(StatsEntries(db), static_cast<uint64_t>(kBefore + kAfter));
}

// Ctrl-C on an export whose reader is slow: what it wrote is whole lines, as
// many as it says, and imports as a smaller export.
TEST(ImportInterruptTest, AnInterruptedExportWritesWholeLines) {
  TempDir dir;
  const std::string db = dir.path() + "/db";
  constexpr int kLines = 4000;  // ~4 MiB: more than one 1 MiB write
  const std::string file = dir.path() + "/all.jsonl";
  WriteExport(file, 0, kLines, NowMs() - 1000);
  ASSERT_EQ(Llmcache({"import", "--db", db, file}).exit_code, 0);

  const std::string fifo = dir.path() + "/out.fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  // Opened before the child, so that its open for writing does not wait.
  const int fd = open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(fcntl(fd, F_SETFL, 0), 0);  // blocking reads from here on
  BackgroundOptions bo;
  bo.drop_env_prefixes = testing::kLlmcacheEnvironment;
  bo.stderr_path = dir.path() + "/err";
  BackgroundProcess run({kBin, "export", "--db", db, "-o", fifo}, bo);
  std::string got;
  char buf[65536];
  auto read_some = [&] {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 30'000) != 1) return false;
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) return false;
    got.append(buf, static_cast<size_t>(n));
    return true;
  };
  // Some of the first write; the child then waits for the pipe.
  while (got.size() < (128u << 10)) ASSERT_TRUE(read_some()) << run.Err();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  run.Signal(SIGINT);
  while (read_some()) {
  }
  close(fd);
  ASSERT_EQ(run.Wait(), 128 + SIGINT) << run.Err();
  EXPECT_THAT(run.Err(), ::testing::HasSubstr(
                             "llmcache export: interrupted (SIGINT): " + fifo +
                             " holds those entries as whole lines"));
  ASSERT_FALSE(got.empty());
  ASSERT_EQ(got.back(), '\n');
  std::istringstream lines(got);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    boost::system::error_code ec;
    const json::value v = json::parse(line, ec);
    ASSERT_FALSE(ec) << "line " << n << ": " << line.substr(0, 100);
    ASSERT_TRUE(v.is_object() && v.as_object().contains("key"));
    ++n;
  }
  EXPECT_GT(n, 0);
  EXPECT_LT(n, kLines);
  EXPECT_THAT(run.Err(), ::testing::HasSubstr("exported " + std::to_string(n) +
                                              " entries"));
  // A valid, smaller export.
  const std::string part = dir.path() + "/part.jsonl";
  {
    std::ofstream out(part, std::ios::binary);
    out << got;
  }
  ProcessResult in = Llmcache({"import", "--db", dir.path() + "/copy", part});
  ASSERT_EQ(in.exit_code, 0) << in.err;
  EXPECT_EQ(StatsEntries(dir.path() + "/copy"), static_cast<uint64_t>(n));
}

// Resets the interrupt flag at the end of a test.
struct InterruptGuard {
  explicit InterruptGuard(int sig) { cli::SetInterruptForTest(sig); }
  ~InterruptGuard() { cli::SetInterruptForTest(0); }
};

// An age purge and a verify told to stop before their first entry: nothing
// removed or checked, said so, exit 130; then they run whole.
TEST(ImportInterruptTest, AgePurgeAndVerifyStopAtTheNextEntry) {
  TempDir dir;
  const std::string db = dir.path() + "/db";
  constexpr int kLines = 300;
  const std::string file = dir.path() + "/all.jsonl";
  WriteExport(file, 0, kLines, NowMs() - 2 * 86'400'000);
  ASSERT_EQ(Llmcache({"import", "--db", db, file}).exit_code, 0);
  cli::PurgeArgs purge;
  purge.older_than = "1d";
  purge.yes = true;
  std::istringstream in;
  {
    InterruptGuard stop(SIGINT);
    std::ostringstream out, err;
    const cli::Io io{in, out, err};
    EXPECT_EQ(cli::Purge(db, purge, io), 128 + SIGINT) << err.str();
    EXPECT_THAT(out.str(), ::testing::HasSubstr("removed 0 entries"));
    EXPECT_THAT(err.str(), ::testing::HasSubstr(
                               "llmcache purge: interrupted (SIGINT): the 0 "
                               "oldest are removed"));
  }
  EXPECT_EQ(StatsEntries(db), static_cast<uint64_t>(kLines));
  {
    InterruptGuard stop(SIGTERM);
    std::ostringstream out, err;
    const cli::Io io{in, out, err};
    EXPECT_EQ(cli::Verify(db, std::nullopt, /*as_json=*/false, io),
              128 + SIGTERM);
    EXPECT_THAT(out.str(), ::testing::HasSubstr("checked 0 entries"));
    EXPECT_THAT(err.str(), ::testing::HasSubstr(
                               "llmcache verify: interrupted (SIGTERM) after "
                               "0 entries"));
  }
  std::ostringstream out, err;
  const cli::Io io{in, out, err};
  EXPECT_EQ(cli::Verify(db, std::nullopt, false, io), 0) << err.str();
  EXPECT_THAT(out.str(), ::testing::HasSubstr("checked 300 entries: 0 bad"));
  EXPECT_EQ(cli::Purge(db, purge, io), 0) << err.str();
  EXPECT_EQ(StatsEntries(db), 0u);
}

// `llmcache compact` told to stop: it stops its compaction, says that
// nothing is lost, exits 130; run again, it finishes. (Before, it did not
// catch the signal: the first one killed it mid-compaction.)
TEST(ImportInterruptTest, CompactStopsAndKeepsEverything) {
  TempDir dir;
  const std::string db = dir.path() + "/db";
  constexpr int kLines = 300;
  const std::string file = dir.path() + "/all.jsonl";
  WriteExport(file, 0, kLines, NowMs());
  ASSERT_EQ(Llmcache({"import", "--db", db, file}).exit_code, 0);
  std::istringstream in;
  {
    InterruptGuard stop(SIGINT);
    std::ostringstream out, err;
    const cli::Io io{in, out, err};
    EXPECT_EQ(cli::Compact(db, /*json=*/false, io), 128 + SIGINT);
    EXPECT_THAT(err.str(),
                ::testing::HasSubstr("llmcache compact: interrupted (SIGINT): "
                                     "what it compacted stays compacted, "
                                     "nothing is lost"));
    EXPECT_EQ(out.str(), "");
  }
  EXPECT_EQ(StatsEntries(db), static_cast<uint64_t>(kLines));
  std::ostringstream out, err;
  const cli::Io io{in, out, err};
  EXPECT_EQ(cli::Compact(db, /*json=*/false, io), 0) << err.str();
  EXPECT_THAT(out.str(), ::testing::HasSubstr("saved"));
  EXPECT_EQ(StatsEntries(db), static_cast<uint64_t>(kLines));
  EXPECT_EQ(ListedKeys(db).size(), static_cast<size_t>(kLines));
}

}  // namespace
}  // namespace llmcache
