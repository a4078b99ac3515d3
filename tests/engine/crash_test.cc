// Crash test: acknowledged inserts survive kill -9 of the writing process.
//
// Each round fork()+execv()s crash_writer (a bare fork of a process that has
// run RocksDB would stall the child: RocksDB's thread pools outlive a closed
// database), lets it run for a random 50-400 ms (counted from the spawn in
// even rounds, so that some kills hit Cache::Open, and from its first
// acknowledged insert in odd rounds, so that slow starts under sanitizers
// still leave most kills among inserts), SIGKILLs it, then reopens the
// database and checks that
//   - Cache::Open succeeds;
//   - every stored entry decodes (ForEachEntry reports no corrupt entry) and
//     is exactly the entry the writer derives from its index;
//   - every index the writer acknowledged is present, and a Lookup hit with
//     the expected body (every one while at most 10000 were acknowledged
//     before the round, which fsync'd writes on a disk never exceed; beyond
//     that the new ones and a rotating sample of the old, see CheckPlan);
//   - what came back is a contiguous prefix: at most the one insert that was
//     in flight at the kill is present without an acknowledgement.
// The next round continues after the last acknowledged index, so the
// database grows across rounds.
//
// Environment (optional): LLMCACHE_CRASH_SEED (the RNG seed, printed on every
// run so that a failure can be replayed), LLMCACHE_CRASH_ROUNDS (default 20),
// LLMCACHE_CRASH_WRITER (overrides the CRASH_WRITER_PATH compile definition).

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "engine/crash_entries.h"
#include "llmcache/cache.h"
#include "llmcache/entry.h"
#include "llmcache/key.h"
#include "llmcache/options.h"
#include "llmcache/status.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"

#ifndef CRASH_WRITER_PATH
#error "CRASH_WRITER_PATH must name the crash_writer executable"
#endif

namespace llmcache::crash {
namespace {

// ---- Harness ----

constexpr int kDefaultRounds = 20;
constexpr int kMinRunMs = 50;
constexpr int kMaxRunMs = 400;
constexpr std::chrono::milliseconds kFirstAckTimeout{30000};
constexpr uint64_t kMaxOldChecks = 10000;
constexpr int kWriterMaintenanceMs = 50;             // crash_writer's interval
constexpr int64_t kTtlMs = 30LL * 24 * 3600 * 1000;  // nothing expires

uint64_t EnvU64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 10);
}

std::string WriterPath() {
  const char* v = std::getenv("LLMCACHE_CRASH_WRITER");
  return (v != nullptr && *v != '\0') ? v : CRASH_WRITER_PATH;
}

// The index an entry body names ({"id":"gen-crash-<i>", ...), if any.
std::optional<uint64_t> IndexOfBody(std::string_view body) {
  if (body.substr(0, kIdPrefix.size()) != kIdPrefix) return std::nullopt;
  body.remove_prefix(kIdPrefix.size());
  uint64_t v = 0;
  size_t digits = 0;
  while (digits < body.size() && digits < 19 && body[digits] >= '0' &&
         body[digits] <= '9') {
    v = v * 10 + static_cast<uint64_t>(body[digits] - '0');
    ++digits;
  }
  if (digits == 0 || digits >= body.size() || body[digits] != '"') {
    return std::nullopt;
  }
  return v;
}

std::string OutcomeName(LookupOutcome outcome) {
  switch (outcome) {
    case LookupOutcome::kHit:
      return "hit";
    case LookupOutcome::kMiss:
      return "miss";
    case LookupOutcome::kExpired:
      return "expired";
  }
  return "outcome " + std::to_string(static_cast<int>(outcome));
}

// Starts the writer. Everything the child needs is built before fork(); the
// child only calls execv (and _exit if that fails).
pid_t SpawnWriter(const std::string& writer, const std::string& db,
                  const std::string& acks, uint64_t start) {
  std::vector<std::string> args = {writer, db, acks, std::to_string(start)};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

std::string DescribeWaitStatus(int status) {
  std::ostringstream os;
  if (WIFEXITED(status)) {
    os << "exited with code " << WEXITSTATUS(status);
    if (WEXITSTATUS(status) == 127) os << " (execv failed?)";
  } else if (WIFSIGNALED(status)) {
    os << "killed by signal " << WTERMSIG(status) << " ("
       << strsignal(WTERMSIG(status)) << ")";
  } else {
    os << "wait status " << status;
  }
  return os.str();
}

// Size of `path`, 0 if it does not exist.
off_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

// Waits until `path` is larger than `size`. Returns an error message if the
// writer `pid` exits first or `timeout` passes; the writer is then reaped
// (killed first if need be).
std::string WaitForFileToGrow(const std::string& path, off_t size, pid_t pid,
                              std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (FileSize(path) <= size) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return "the writer stopped before its first insert: " +
             DescribeWaitStatus(status);
    }
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      return "the writer acknowledged nothing within " +
             std::to_string(timeout.count()) + " ms";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return "";
}

// The acknowledged indices: complete lines only (a line cut short by the
// kill is not an acknowledgement).
std::vector<uint64_t> ReadAcks(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  std::vector<uint64_t> acks;
  size_t pos = 0;
  for (size_t nl; (nl = text.find('\n', pos)) != std::string::npos;
       pos = nl + 1) {
    acks.push_back(std::strtoull(text.c_str() + pos, nullptr, 10));
  }
  return acks;
}

CacheOptions VerifyOptions(const std::string& db) {
  CacheOptions options;
  options.path = db;
  options.create_if_missing = true;  // a kill during the first open is fine
  options.default_ttl_ms = kTtlMs;
  options.memory_tier_bytes = 0;  // every lookup reads RocksDB
  options.maintenance_interval_ms = 0;
  return options;
}

struct RoundReport {
  uint64_t entries = 0;   // entries iterated
  uint64_t corrupt = 0;   // entries ForEachEntry could not decode
  uint64_t verified = 0;  // acknowledged indices looked up and matched
  std::optional<uint64_t> max_index;
  uint64_t stats_entries = 0;  // CacheStats::entries after reopening
  double open_ms = 0;          // Cache::Open (recovery)
  double iterate_ms = 0;       // ForEachEntry and its checks
  double lookup_ms = 0;        // lookups and their checks
};

double MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - start)
      .count();
}

// Which entries get the full check (body comparison, Lookup) this round:
// those acknowledged since the previous round (and the in-flight one), and
// of the older ones all while there are at most kMaxOldChecks, else a
// rotating 1-in-`stride` sample. Every entry is still iterated, decoded and
// checked for presence, key and model every round. (With fsync'd writes on a
// disk the sample never kicks in; it bounds the run time where fsync is free,
// e.g. a tmpfs, and the writer inserts tens of thousands per round.)
struct CheckPlan {
  uint64_t previous_acked = 0;
  uint64_t stride = 1;
  uint64_t offset = 0;

  CheckPlan(uint64_t previous, int round) : previous_acked(previous) {
    stride = previous / kMaxOldChecks + 1;
    offset = static_cast<uint64_t>(round) % stride;
  }
  bool Full(uint64_t i) const {
    return i >= previous_acked || i % stride == offset;
  }
};

// Iterates every entry and checks it is what the writer stored for the index
// it names (fully for plan.Full(index)); returns the set of present indices
// in *present.
void CheckAllEntries(Cache& cache, const CheckPlan& plan,
                     std::vector<bool>* present, RoundReport* report) {
  std::vector<std::string> problems;
  auto problem = [&](std::string what) {
    if (problems.size() < 10) problems.push_back(std::move(what));
  };
  const Status s = cache.ForEachEntry(
      std::nullopt,
      [&](const EntryView& v) {
        ++report->entries;
        const std::optional<uint64_t> index = IndexOfBody(v.entry.body);
        if (!index) {
          problem("entry " + DigestToHex(v.digest) + " of '" +
                  std::string(v.base_model) +
                  "' has an unknown body: " + v.entry.body.substr(0, 60));
          return true;
        }
        const uint64_t i = *index;
        const RequestKey key = KeyFor(i);
        const std::string at = "entry " + std::to_string(i) + ": ";
        if (v.digest != key.digest) problem(at + "wrong digest");
        if (v.base_model != key.base_model) {
          problem(at + "in model '" + std::string(v.base_model) + "'");
        }
        if (v.entry.meta.model != key.model) problem(at + "model differs");
        if (v.entry.meta.ns != kNamespace) problem(at + "namespace differs");
        if (plan.Full(i)) {
          const std::string body = BodyFor(i);
          if (v.entry.body != body) problem(at + "body differs");
          if (!(v.entry.meta.usage == UsageFor(i, body.size()))) {
            problem(at + "usage differs");
          }
        }
        if (v.entry.meta.expires_ms <= v.entry.meta.created_ms) {
          problem(at + "expires before it was created");
        }
        if (present->size() <= i) present->resize(i + 1, false);
        if ((*present)[i]) problem(at + "iterated twice");
        (*present)[i] = true;
        if (!report->max_index || i > *report->max_index) {
          report->max_index = i;
        }
        return true;
      },
      [&](std::string_view key, const Status& st) {
        ++report->corrupt;
        problem("corrupt entry " + std::string(key) + ": " + st.ToString());
      });
  ASSERT_OK(s);
  EXPECT_THAT(problems, ::testing::IsEmpty());
}

// Opens the database the writer left behind and checks it against the
// `acked` acknowledged indices (0 .. acked-1); looks up those of plan.Full().
void VerifyDatabase(const std::string& db, uint64_t acked,
                    const CheckPlan& plan, RoundReport* report) {
  auto start = std::chrono::steady_clock::now();
  Result<std::unique_ptr<Cache>> opened = Cache::Open(VerifyOptions(db));
  ASSERT_OK(opened);
  Cache& cache = **opened;
  report->open_ms = MillisSince(start);
  start = std::chrono::steady_clock::now();

  std::vector<bool> present;
  ASSERT_NO_FATAL_FAILURE(CheckAllEntries(cache, plan, &present, report));
  report->iterate_ms = MillisSince(start);
  start = std::chrono::steady_clock::now();
  EXPECT_EQ(report->corrupt, 0u);

  // A contiguous prefix: every acknowledged index, plus at most the one
  // insert that was in flight when the writer died.
  for (uint64_t i = 0; i < acked; ++i) {
    if (i >= present.size() || !present[i]) {
      ADD_FAILURE() << "acknowledged entry " << i << " of " << acked
                    << " is missing from the iteration";
      break;
    }
  }
  if (report->max_index) {
    EXPECT_LE(*report->max_index, acked)
        << "an entry beyond the in-flight one exists";
  }
  EXPECT_EQ(report->entries, acked + (present.size() > acked ? 1 : 0));

  for (uint64_t i = 0; i < acked; ++i) {
    if (!plan.Full(i)) continue;
    const RequestKey key = KeyFor(i);
    Result<LookupResult> r = cache.Lookup(key);
    ASSERT_OK(r) << "lookup of acknowledged entry " << i;
    ASSERT_EQ(OutcomeName(r->outcome), "hit")
        << "acknowledged entry " << i << " (" << key.model << ", " << key.Hex()
        << ")";
    ASSERT_NE(r->entry, nullptr);
    EXPECT_FALSE(r->from_memory);
    const std::string body = BodyFor(i);
    ASSERT_EQ(r->entry->body, body) << "body of acknowledged entry " << i;
    ASSERT_EQ(r->entry->meta.model, key.model) << "entry " << i;
    ASSERT_TRUE(r->entry->meta.usage == UsageFor(i, body.size()))
        << "usage of entry " << i;
    ++report->verified;
  }
  report->lookup_ms = MillisSince(start);

  // Entry counts are written in the same batch as the entries themselves, so
  // they stay exact across kills (hit counters may lose one interval).
  Result<CacheStats> stats = cache.GetStats();
  ASSERT_OK(stats);
  report->stats_entries = stats->entries;
  EXPECT_EQ(report->stats_entries, report->entries);
}

TEST(CrashTest, AcknowledgedInsertsSurviveKill9) {
  const uint64_t seed = EnvU64("LLMCACHE_CRASH_SEED", std::random_device{}());
  const int rounds = static_cast<int>(
      EnvU64("LLMCACHE_CRASH_ROUNDS", static_cast<uint64_t>(kDefaultRounds)));
  std::printf("crash test: seed %" PRIu64
              " (replay with LLMCACHE_CRASH_SEED=%" PRIu64 "), %d rounds\n",
              seed, seed, rounds);
  RecordProperty("seed", std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> run_ms(kMinRunMs, kMaxRunMs);

  const std::string writer = WriterPath();
  ASSERT_EQ(access(writer.c_str(), X_OK), 0)
      << "writer " << writer << " is not executable: " << std::strerror(errno);

  llmcache::testing::TempDir dir("llmcache-crash");
  const std::string db = dir.Sub("db");
  const std::string acks_path = dir.Sub("acks");
  const auto started = std::chrono::steady_clock::now();

  uint64_t acked = 0;  // acknowledged so far: indices 0 .. acked-1
  uint64_t verified = 0;
  RoundReport last;
  int kills_in_open = 0;  // rounds that ended before the writer's first ack
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round) + ", seed " +
                 std::to_string(seed));
    // Even rounds count the run time from the spawn, so some kills land in
    // Cache::Open (recovery, column-family creation); odd rounds count it
    // from the first acknowledged insert, so that slow starts (sanitizers, a
    // loaded machine) cannot turn the test into one of Open alone.
    const bool from_first_ack = round % 2 == 1;
    const int ms = run_ms(rng);
    const off_t acks_before = FileSize(acks_path);
    const pid_t pid = SpawnWriter(writer, db, acks_path, acked);
    ASSERT_GT(pid, 0) << "fork: " << std::strerror(errno);
    if (from_first_ack) {
      const std::string error =
          WaitForFileToGrow(acks_path, acks_before, pid, kFirstAckTimeout);
      ASSERT_EQ(error, "");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    ASSERT_EQ(kill(pid, SIGKILL), 0) << std::strerror(errno);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid) << std::strerror(errno);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the writer did not run until the kill: "
        << DescribeWaitStatus(status);

    const std::vector<uint64_t> acks = ReadAcks(acks_path);
    ASSERT_GE(acks.size(), acked) << "acknowledgements disappeared";
    for (uint64_t k = acked; k < acks.size(); ++k) {
      ASSERT_EQ(acks[k], k) << "acknowledgements are not consecutive";
    }
    const CheckPlan plan(acked, round);
    const uint64_t new_acks = acks.size() - acked;
    if (from_first_ack) {
      ASSERT_GT(new_acks, 0u);
    }
    if (new_acks == 0) ++kills_in_open;
    acked = acks.size();

    RoundReport report;
    ASSERT_NO_FATAL_FAILURE(VerifyDatabase(db, acked, plan, &report));
    ASSERT_FALSE(HasFailure());
    verified += report.verified;
    last = report;
    std::printf(
        "round %2d: killed %3d ms after %-9s +%" PRIu64 " acked (total %" PRIu64
        "), %" PRIu64 " entries (%s), %" PRIu64
        " lookups ok, 0 corrupt; open %.0f ms, iterate %.0f ms, "
        "lookups %.0f ms\n",
        round, ms, from_first_ack ? "1st ack," : "spawn,", new_acks, acked,
        report.entries, report.entries > acked ? "+1 unacked" : "all acked",
        report.verified, report.open_ms, report.iterate_ms, report.lookup_ms);
  }

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
          .count();
  std::printf(
      "crash test: %d rounds (%d killed before their first insert), "
      "%" PRIu64
      " acknowledged writes, all present after every "
      "round; %" PRIu64 " lookups verified; %.1f s\n",
      rounds, kills_in_open, acked, verified, seconds);
  std::printf("crash test: the statistics count %" PRIu64
              " entries, the iteration found %" PRIu64 "\n",
              last.stats_entries, last.entries);
  RecordProperty("acknowledged", std::to_string(acked));
  RecordProperty("verified", std::to_string(verified));
  if (rounds >= 2) {
    EXPECT_GT(acked, 0u);  // odd rounds insert at least once
  }
}

}  // namespace
}  // namespace llmcache::crash
