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

#include "llmcache/cache.h"
#include "llmcache/format.h"
#include "llmcache/key.h"
#include "llmcache/options.h"
#include "llmcache/status.h"

namespace llmcache::crash {
namespace {

// ---- Deterministic entry generator (keep in sync with crash_test.cc) ----

// SplitMix64: identical on every platform, unlike std:: distributions.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

struct ModelName {
  std::string_view model;  // as sent
  std::string_view base;   // without the `:variant`
};

// Written out by hand instead of calling BaseModel(), so that the writer
// depends on nothing but the cache itself.
constexpr std::array<ModelName, 5> kModels = {{
    {"openai/gpt-4o-mini", "openai/gpt-4o-mini"},
    {"anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4.5"},
    {"meta-llama/llama-3.3-70b-instruct:free",
     "meta-llama/llama-3.3-70b-instruct"},
    {"google/gemini-2.5-flash", "google/gemini-2.5-flash"},
    {"mistralai/mistral-large-2411", "mistralai/mistral-large-2411"},
}};

constexpr std::string_view kNamespace = "crash";
constexpr std::string_view kIdPrefix = R"({"id":"gen-crash-)";
constexpr size_t kMinBody = 200;
constexpr size_t kMaxBody = 3000;

const ModelName& ModelFor(uint64_t i) { return kModels[i % kModels.size()]; }

RequestKey KeyFor(uint64_t i) {
  SplitMix64 rng(i * 0xD6E8FEB86659FD93ull ^ 0x63726173685F6B65ull);
  RequestKey key;
  for (size_t w = 0; w < kDigestSize / 8; ++w) {
    const uint64_t v = rng.Next();
    for (size_t b = 0; b < 8; ++b) {
      key.digest[w * 8 + b] = static_cast<uint8_t>(v >> (8 * b));
    }
  }
  key.model = std::string(ModelFor(i).model);
  key.base_model = std::string(ModelFor(i).base);
  return key;
}

// A chat-completion response of kMinBody..kMaxBody bytes that names its own
// index (so an iteration can tell which entry it is looking at).
std::string BodyFor(uint64_t i) {
  SplitMix64 rng(i * 0x9E3779B97F4A7C15ull ^ 0x63726173685F626Full);
  const size_t size = kMinBody + rng.Next() % (kMaxBody - kMinBody + 1);
  std::string out(kIdPrefix);
  out += std::to_string(i);
  out += R"(","object":"chat.completion","model":")";
  out += ModelFor(i).base;
  out += R"(","choices":[{"index":0,"message":{"role":"assistant",)";
  out += R"("content":")";
  const std::string_view tail = R"("},"finish_reason":"stop"}]})";
  static constexpr std::array<std::string_view, 12> kWords = {
      "cache", "the", "response", "durable", "write", "ahead",
      "log",   "of",  "entries",  "survive", "kill",  "nine"};
  while (out.size() + tail.size() < size) {
    std::string_view w = kWords[rng.Next() % kWords.size()];
    const size_t room = size - tail.size() - out.size();
    out.append(w.substr(0, room));
    if (out.size() + tail.size() < size) out += ' ';
  }
  out += tail;
  return out;
}

Usage UsageFor(uint64_t i, size_t body_size) {
  Usage u;
  u.prompt_tokens = 50 + i % 997;
  u.completion_tokens = body_size / 4;
  u.cached_tokens = i % 3 == 0 ? 32 : 0;
  u.cache_write_tokens = i % 5 == 0 ? 16 : 0;
  u.cost_nanousd =
      static_cast<int64_t>((u.prompt_tokens + u.completion_tokens) * 150);
  return u;
}

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
