// Tests for UsableCpus (llmcache/cpus.h): the affinity mask of the calling
// thread, and cgroup CPU quotas read from a fake hierarchy of both versions.

#include "llmcache/cpus.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "testing/temp_dir.h"

namespace llmcache {
namespace {

namespace fs = std::filesystem;

void Write(const fs::path& file, const std::string& text) {
  fs::create_directories(file.parent_path());
  std::ofstream(file) << text;
}

TEST(CpusTest, FollowsTheThreadsAffinity) {
  const size_t all = UsableCpus();
  EXPECT_GE(all, 1u);
  cpu_set_t mine;
  ASSERT_EQ(sched_getaffinity(0, sizeof(mine), &mine), 0);
  int first = -1;  // the first CPU this process may use (not always 0)
  for (int cpu = 0; cpu < CPU_SETSIZE && first < 0; ++cpu) {
    if (CPU_ISSET(cpu, &mine)) first = cpu;
  }
  ASSERT_GE(first, 0);
  size_t pinned = 0;
  bool set = false;
  std::thread t([&] {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    set = sched_setaffinity(0, sizeof(one), &one) == 0;
    if (set) pinned = UsableCpus();
  });
  t.join();
  ASSERT_TRUE(set);
  EXPECT_EQ(pinned, 1u);
}

TEST(CpusTest, CgroupV2QuotaOfTheGroupAndItsAncestors) {
  testing::TempDir tmp;
  const fs::path dir(tmp.path());
  const fs::path root = dir / "cgroup";
  Write(dir / "self", "0::/a/b\n");
  // No file at all: the affinity.
  EXPECT_EQ(UsableCpusFrom(16, dir / "self", root), 16u);
  Write(root / "a" / "b" / "cpu.max", "max 100000\n");
  EXPECT_EQ(UsableCpusFrom(16, dir / "self", root), 16u);
  Write(root / "a" / "cpu.max", "250000 100000\n");  // 2.5 CPUs: 3
  EXPECT_EQ(UsableCpusFrom(16, dir / "self", root), 3u);
  Write(root / "a" / "b" / "cpu.max", "50000 100000\n");  // half a CPU: 1
  EXPECT_EQ(UsableCpusFrom(16, dir / "self", root), 1u);
  // A quota above the affinity does not raise it.
  Write(root / "a" / "b" / "cpu.max", "6400000 100000\n");
  EXPECT_EQ(UsableCpusFrom(2, dir / "self", root), 2u);
  // Unknown affinity: the quota.
  EXPECT_EQ(UsableCpusFrom(0, dir / "self", root), 3u);
}

TEST(CpusTest, CgroupV1QuotaOfTheCpuController) {
  testing::TempDir tmp;
  const fs::path dir(tmp.path());
  const fs::path root = dir / "cgroup";
  Write(dir / "self", "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n0::/\n");
  const fs::path group = root / "cpu,cpuacct" / "docker" / "abc";
  Write(group / "cpu.cfs_quota_us", "-1\n");
  Write(group / "cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(UsableCpusFrom(8, dir / "self", root), 8u);
  Write(group / "cpu.cfs_quota_us", "200000\n");
  EXPECT_EQ(UsableCpusFrom(8, dir / "self", root), 2u);
  // The memory controller's files say nothing of CPUs; garbage is no limit.
  Write(root / "memory" / "x" / "cpu.max", "100000 100000\n");
  Write(group / "cpu.cfs_quota_us", "lots\n");
  EXPECT_EQ(UsableCpusFrom(8, dir / "self", root), 8u);
}

TEST(CpusTest, NeverZero) {
  testing::TempDir tmp;
  const fs::path dir(tmp.path());
  Write(dir / "self", "0::/\n");
  Write(dir / "cgroup" / "cpu.max", "0 100000\n");  // no quota
  EXPECT_GE(UsableCpusFrom(0, dir / "self", dir / "cgroup"), 1u);
  EXPECT_GE(UsableCpusFrom(0, dir / "missing", dir / "none"), 1u);
}

}  // namespace
}  // namespace llmcache
