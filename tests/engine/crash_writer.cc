// crash_writer: the victim process of the kill -9 crash test (crash_test.cc).
//
//   crash_writer DB_DIR ACK_FILE START_INDEX [COUNT]
//
// Opens a persistent llmcache::Cache at DB_DIR with synchronous writes and
// inserts entries START_INDEX, START_INDEX+1, ... forever (or COUNT of them,
// then exits 0). After each Insert has returned OK it appends "<index>\n" to
// ACK_FILE. On any error it prints the status to stderr and exits 1.
//
// Every entry is a pure function of its index (see the generator below), so
// the test can recompute what must be stored for every acknowledged index.
// THE GENERATOR IS DUPLICATED IN crash_test.cc: change both or neither (the
// test fails on the first acknowledged entry if they disagree).

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "engine/crash_entries.h"
#include "llmcache/cache.h"
#include "llmcache/entry.h"
#include "llmcache/key.h"
#include "llmcache/options.h"
#include "llmcache/status.h"

namespace llmcache::crash {
namespace {

// ---- The writer ----

int Fail(const std::string& what) {
  std::fprintf(stderr, "crash_writer: %s\n", what.c_str());
  return 1;
}

bool ParseU64(const char* s, uint64_t* out) {
  if (s == nullptr || *s == '\0' || *s == '-') return false;
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}

// Appends `line` with plain write(2) calls: once write returns, the bytes are
// in the kernel's page cache and survive the death of this process (not a
// power loss, which the test does not simulate).
bool WriteAll(int fd, std::string_view line) {
  while (!line.empty()) {
    const ssize_t n = ::write(fd, line.data(), line.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    line.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

int Run(int argc, char** argv) {
  uint64_t start = 0;
  uint64_t count = UINT64_MAX;
  if ((argc != 4 && argc != 5) || !ParseU64(argv[3], &start) ||
      (argc == 5 && !ParseU64(argv[4], &count))) {
    std::fprintf(stderr,
                 "usage: %s DB_DIR ACK_FILE START_INDEX [COUNT]\n"
                 "Inserts deterministic entries START_INDEX, START_INDEX+1, "
                 "... into the cache at DB_DIR (forever, or COUNT of them) "
                 "and appends each index to ACK_FILE once its insert "
                 "returned OK.\n",
                 argc > 0 ? argv[0] : "crash_writer");
    return 2;
  }
  const std::string db_dir = argv[1];
  const std::string ack_file = argv[2];

  const int ack_fd =
      ::open(ack_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (ack_fd < 0) {
    return Fail("cannot open ack file " + ack_file + ": " +
                std::strerror(errno));
  }

  CacheOptions options;
  options.path = db_dir;
  options.sync_writes = true;
  options.maintenance_interval_ms = 50;  // statistics writes race the kill
  options.default_ttl_ms = 30LL * 24 * 3600 * 1000;  // nothing expires
  Result<std::unique_ptr<Cache>> cache = Cache::Open(options);
  if (!cache.ok()) return Fail("open: " + cache.status().ToString());

  for (uint64_t i = start, n = 0; n < count; ++i, ++n) {
    const RequestKey key = KeyFor(i);
    const std::string body = BodyFor(i);
    InsertOptions insert;
    insert.ns = kNamespace;
    insert.usage = UsageFor(i, body.size());
    insert.resolved_model = key.base_model;
    const Status s = (*cache)->Insert(key, body, insert);
    if (!s.ok()) {
      return Fail("insert " + std::to_string(i) + ": " + s.ToString());
    }
    if (!WriteAll(ack_fd, std::to_string(i) + "\n")) {
      return Fail("cannot append to " + ack_file + ": " + std::strerror(errno));
    }
  }
  ::close(ack_fd);
  return 0;
}

}  // namespace
}  // namespace llmcache::crash

int main(int argc, char** argv) { return llmcache::crash::Run(argc, argv); }
