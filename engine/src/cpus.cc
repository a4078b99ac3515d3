// UsableCpus: the affinity mask, capped by cgroup CPU quotas (llmcache/cpus.h).

#include "llmcache/cpus.h"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace llmcache {
namespace {

namespace fs = std::filesystem;

// The CPUs of the calling thread's affinity mask, or 0.
size_t AffinityCpus() {
  // Grows the set for machines with more CPUs than cpu_set_t holds (1024).
  for (int cpus = CPU_SETSIZE; cpus <= (1 << 16); cpus *= 2) {
    cpu_set_t* set = CPU_ALLOC(cpus);
    if (set == nullptr) return 0;
    const size_t size = CPU_ALLOC_SIZE(cpus);
    CPU_ZERO_S(size, set);
    const int rc = sched_getaffinity(0, size, set);
    const int error = errno;
    const int count = rc == 0 ? CPU_COUNT_S(size, set) : -1;
    CPU_FREE(set);
    if (rc == 0) return static_cast<size_t>(count);
    if (error != EINVAL) return 0;  // EINVAL: the set is too small
  }
  return 0;
}

std::optional<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<int64_t> ParseInt(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
    s.remove_suffix(1);
  }
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  bool negative = false;
  size_t i = 0;
  if (s[0] == '-') {
    negative = true;
    i = 1;
  }
  if (i == s.size()) return std::nullopt;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - 9) / 10) {
      return std::nullopt;
    }
    v = v * 10 + (s[i] - '0');
  }
  return negative ? -v : v;
}

// CPUs a quota of `quota` per `period` allows, rounded up; nullopt: none.
std::optional<size_t> QuotaCpus(std::optional<int64_t> quota,
                                std::optional<int64_t> period) {
  if (!quota || !period || *quota <= 0 || *period <= 0) return std::nullopt;
  return static_cast<size_t>((*quota + *period - 1) / *period);
}

// The limit of one cgroup directory, v2 (`cpu.max`: "max 100000" or
// "<quota> <period>") or v1 (cpu.cfs_quota_us, -1 for none).
std::optional<size_t> DirectoryLimit(const fs::path& dir) {
  if (std::optional<std::string> max = ReadFile(dir / "cpu.max")) {
    const size_t space = max->find(' ');
    if (space == std::string::npos) return std::nullopt;
    return QuotaCpus(ParseInt(std::string_view(*max).substr(0, space)),
                     ParseInt(std::string_view(*max).substr(space + 1)));
  }
  std::optional<std::string> quota = ReadFile(dir / "cpu.cfs_quota_us");
  std::optional<std::string> period = ReadFile(dir / "cpu.cfs_period_us");
  if (!quota || !period) return std::nullopt;
  return QuotaCpus(ParseInt(*quota), ParseInt(*period));
}

// The smallest limit of `mount / path` and its ancestors up to `mount`.
std::optional<size_t> HierarchyLimit(const fs::path& mount,
                                     std::string_view path) {
  std::vector<std::string> parts;
  for (size_t at = 0; at < path.size();) {
    size_t slash = path.find('/', at);
    if (slash == std::string_view::npos) slash = path.size();
    const std::string_view part = path.substr(at, slash - at);
    if (part == "..") return std::nullopt;  // not a cgroup path
    if (!part.empty() && part != ".") parts.emplace_back(part);
    at = slash + 1;
  }
  std::optional<size_t> limit;
  for (size_t depth = 0; depth <= parts.size(); ++depth) {
    fs::path dir = mount;
    for (size_t i = 0; i < depth; ++i) dir /= parts[i];
    if (std::optional<size_t> l = DirectoryLimit(dir)) {
      limit = limit ? std::min(*limit, *l) : *l;
    }
  }
  return limit;
}

}  // namespace

size_t UsableCpusFrom(size_t affinity_cpus, const fs::path& self_cgroup,
                      const fs::path& cgroup_root) noexcept {
  size_t cpus = affinity_cpus;
  try {
    std::optional<std::string> text = ReadFile(self_cgroup);
    std::istringstream lines(text.value_or(std::string()));
    std::optional<size_t> limit;
    auto cap = [&limit](std::optional<size_t> l) {
      if (l) limit = limit ? std::min(*limit, *l) : *l;
    };
    for (std::string line; std::getline(lines, line);) {
      // "<id>:<controllers>:<path>"; v2 is "0::<path>".
      const size_t a = line.find(':');
      const size_t b = a == std::string::npos ? a : line.find(':', a + 1);
      if (b == std::string::npos) continue;
      const std::string controllers = line.substr(a + 1, b - a - 1);
      const std::string_view path = std::string_view(line).substr(b + 1);
      if (controllers.empty()) {
        cap(HierarchyLimit(cgroup_root, path));
        continue;
      }
      std::istringstream names(controllers);
      for (std::string name; std::getline(names, name, ',');) {
        if (name == "cpu") {
          // Mounted as "cpu,cpuacct" (with a "cpu" link) or as "cpu".
          cap(HierarchyLimit(cgroup_root / controllers, path));
          if (controllers != "cpu") {
            cap(HierarchyLimit(cgroup_root / "cpu", path));
          }
        }
      }
    }
    if (limit) cpus = cpus == 0 ? *limit : std::min(cpus, *limit);
  } catch (const std::exception&) {
    // bad_alloc, a file system error: the affinity alone.
  }
  if (cpus == 0) cpus = std::thread::hardware_concurrency();
  return std::max<size_t>(1, cpus);
}

size_t UsableCpus() noexcept {
  const size_t affinity = AffinityCpus();
  try {
    return UsableCpusFrom(affinity, "/proc/self/cgroup", "/sys/fs/cgroup");
  } catch (const std::exception&) {  // bad_alloc making the paths
    return std::max<size_t>(
        1, affinity != 0 ? affinity : std::thread::hardware_concurrency());
  }
}

}  // namespace llmcache
