// How many CPUs this process may use: what thread pools and parallel jobs
// are sized by (the proxy's default threads, `llmcache import`'s parsers, the
// bulk loader's table-file writers).

#ifndef LLMCACHE_CPUS_H_
#define LLMCACHE_CPUS_H_

#include <cstddef>
#include <filesystem>

namespace llmcache {

// The CPUs the calling thread may run on (sched_getaffinity: `taskset`, a
// container's cpuset), capped by the CPU quota of the process's cgroup and
// its ancestors (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` /
// `cpu.cfs_period_us`), rounded up; at least 1.
// std::thread::hardware_concurrency() counts the machine's online CPUs:
// 64 in a container limited to 2 CPUs on a 64-CPU host.
size_t UsableCpus() noexcept;

// UsableCpus with its sources given, for tests: `affinity_cpus` (0:
// unknown), the text of /proc/self/cgroup, and the directory the cgroup
// hierarchies are mounted under (/sys/fs/cgroup).
size_t UsableCpusFrom(size_t affinity_cpus,
                      const std::filesystem::path& self_cgroup,
                      const std::filesystem::path& cgroup_root) noexcept;

}  // namespace llmcache

#endif  // LLMCACHE_CPUS_H_
