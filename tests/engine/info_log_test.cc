// RocksDB's info log (rocks_info_log.h): a failing disk never ends the
// process, a refused open never moves the owner's log, lines stay whole.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdarg>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "llmcache/cache.h"
#include "rocks_info_log.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"

namespace llmcache {
namespace {

namespace fs = std::filesystem;
using ::llmcache::testing::StatusIs;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

void LogAt(rocksdb::Logger& log, rocksdb::InfoLogLevel level,
           const char* format, ...) {
  va_list ap;
  va_start(ap, format);
  log.Logv(level, format, ap);
  va_end(ap);
}

template <typename... Args>
void Log(rocksdb::Logger& log, const char* format, Args... args) {
  LogAt(log, rocksdb::InfoLogLevel::ERROR_LEVEL, format, args...);
}

// Every write fails with ENOSPC (the device that is always full). RocksDB's
// own logger aborts on the second failed write to its file; this one drops
// the lines and goes on.
TEST(InfoLogTest, AFullDiskDropsLinesAndNeverEndsTheProcess) {
  InfoLog log("/dev/full", 0600, 1u << 30, rocksdb::InfoLogLevel::WARN_LEVEL);
  for (int i = 0; i < 1000; ++i) Log(log, "background error %d", i);
  EXPECT_EQ(log.dropped(), 1000u);
}

TEST(InfoLogTest, AppendsWholeLinesAndNothingBelowItsLevel) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/LOG";
  { std::ofstream(path) << "an earlier process's line\n"; }
  InfoLog log(path, 0600, 1u << 20, rocksdb::InfoLogLevel::WARN_LEVEL);
  Log(log, "first %s %d", "error", 7);
  LogAt(log, rocksdb::InfoLogLevel::INFO_LEVEL, "not at info");
  Log(log, "%s", std::string(10000, 'x').c_str());  // cut, still one line
  const std::vector<std::string> lines = Lines(ReadFile(path));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "an earlier process's line");
  EXPECT_TRUE(lines[1].ends_with(" first error 7")) << lines[1];
  EXPECT_GT(lines[2].size(), 4000u);
  EXPECT_LT(lines[2].size(), 4096u);
  EXPECT_EQ(log.dropped(), 0u);
}

TEST(InfoLogTest, ConcurrentLinesStayWhole) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/LOG";
  {
    InfoLog log(path, 0600, 1u << 30, rocksdb::InfoLogLevel::WARN_LEVEL);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&log, t] {
        for (int i = 0; i < 500; ++i) Log(log, "thread %d line %d end", t, i);
      });
    }
    for (std::thread& t : threads) t.join();
  }
  const std::vector<std::string> lines = Lines(ReadFile(path));
  ASSERT_EQ(lines.size(), 2000u);
  for (const std::string& line : lines) {
    EXPECT_TRUE(line.ends_with(" end")) << line;
  }
}

TEST(InfoLogTest, RotatesToOneOldFileAfterMaxBytesOfItsOwn) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/LOG";
  InfoLog log(path, 0600, 10000, rocksdb::InfoLogLevel::WARN_LEVEL);
  for (int i = 0; i < 1000; ++i) Log(log, "line %04d %s", i, "padding");
  ASSERT_TRUE(fs::exists(path + ".old"));
  EXPECT_LE(fs::file_size(path), 10100u);
  EXPECT_LE(fs::file_size(path + ".old"), 10100u);
  // The newest line is in LOG, and no other rotated file was made.
  EXPECT_TRUE(Lines(ReadFile(path)).back().ends_with("line 0999 padding"));
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 2);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// A second open of a database another owner holds is refused by the lock;
// RocksDB's own logger had already moved the owner's LOG to LOG.old.<time>
// by then (and its cleanup later deleted it while the owner still wrote).
TEST(InfoLogTest, ARefusedOpenLeavesTheOwnersLogInPlace) {
  testing::TempDir dir;
  CacheOptions o;
  o.path = dir.path() + "/db";
  o.maintenance_interval_ms = 0;
  auto owner = Cache::Open(o);
  ASSERT_OK(owner);
  const std::string log = o.path + "/LOG";
  ASSERT_TRUE(fs::exists(log));
  struct stat before {};
  ASSERT_EQ(::stat(log.c_str(), &before), 0);
  for (int i = 0; i < 5; ++i) {
    EXPECT_THAT(Cache::Open(o),
                StatusIs(StatusCode::kFailedPrecondition, "locked"));
  }
  struct stat after {};
  ASSERT_EQ(::stat(log.c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);
  for (const auto& e : fs::directory_iterator(o.path)) {
    EXPECT_FALSE(e.path().filename().string().starts_with("LOG.old"))
        << e.path();
  }
}

}  // namespace
}  // namespace llmcache
