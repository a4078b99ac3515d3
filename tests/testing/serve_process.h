// `llmcache <args>` as a child process (`serve`, or any verb), for the tests
// that run the built binary exactly as users do: the binary is LLMCACHE_BIN
// (a compile definition of the test target).

#ifndef LLMCACHE_TESTS_TESTING_SERVE_PROCESS_H_
#define LLMCACHE_TESTS_TESTING_SERVE_PROCESS_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "testing/http_client.h"
#include "testing/subprocess.h"
#include "testing/temp_dir.h"
#include "testing/wait.h"

namespace llmcache::testing {

// `llmcache <args>` running (`serve`, or any verb), with our environment
// minus llmcache's own settings plus `env`, its output in files in `dir`.
class ServeProcess : public BackgroundProcess {
 public:
  ServeProcess(const TempDir& dir, const std::vector<std::string>& args,
               const std::map<std::string, std::string>& env = {})
      : BackgroundProcess(Argv(args), Options(dir, env)) {}

  // `llmcache <args>` under an open-file limit of `fd_limit` (soft and
  // hard, set by the shell's ulimit before it execs llmcache).
  static std::unique_ptr<ServeProcess> UnderFdLimit(
      const TempDir& dir, int fd_limit, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {
        "/bin/sh", "-c",
        "ulimit -n " + std::to_string(fd_limit) + " && exec \"$0\" \"$@\""};
    const std::vector<std::string> llmcache = Argv(args);
    argv.insert(argv.end(), llmcache.begin(), llmcache.end());
    return std::unique_ptr<ServeProcess>(
        new ServeProcess(argv, Options(dir, {})));
  }

  // `llmcache <args>` with its standard output sent to `path` instead
  // (/dev/full: an output that cannot be written).
  static std::unique_ptr<ServeProcess> WithStdoutTo(
      const TempDir& dir, const std::string& path,
      const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"/bin/sh", "-c",
                                     "exec \"$0\" \"$@\" > " + path};
    const std::vector<std::string> llmcache = Argv(args);
    argv.insert(argv.end(), llmcache.begin(), llmcache.end());
    return std::unique_ptr<ServeProcess>(
        new ServeProcess(argv, Options(dir, {})));
  }

  // Waits for the "listening on http://HOST:PORT" line; the port, or 0 if
  // the process exited or did not start in time.
  uint16_t WaitListening(
      std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    uint16_t port = 0;
    WaitFor(
        [&] {
          const std::string out = Out();
          const size_t at = out.find("listening on http://");
          if (at != std::string::npos) {
            const size_t colon = out.find(':', at + 20);
            const size_t end = out.find_first_not_of("0123456789", colon + 1);
            if (colon != std::string::npos && end != std::string::npos) {
              port = static_cast<uint16_t>(
                  std::stoi(out.substr(colon + 1, end - colon - 1)));
              return true;
            }
          }
          return Exited();
        },
        timeout);
    return port;
  }

  // The value of `metric` in GET /metrics on `port`, -1 if absent.
  static int64_t Metric(uint16_t port, const std::string& metric) {
    const HttpReply r =
        HttpSend(port, "GET", "/metrics", {}, {}, std::chrono::seconds(20));
    const size_t at = r.body.find("\n" + metric + " ");
    if (at == std::string::npos) return -1;
    return std::stoll(r.body.substr(at + metric.size() + 2));
  }

 private:
  ServeProcess(const std::vector<std::string>& argv,
               const BackgroundOptions& options)
      : BackgroundProcess(argv, options) {}

  static std::vector<std::string> Argv(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {LLMCACHE_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  static BackgroundOptions Options(
      const TempDir& dir, const std::map<std::string, std::string>& env) {
    BackgroundOptions o;
    o.drop_env_prefixes = kLlmcacheEnvironment;
    for (const auto& [k, v] : env) o.env.push_back(k + "=" + v);
    const std::string n = std::to_string(++counter_);
    o.stdout_path = dir.Sub("stdout-" + n);
    o.stderr_path = dir.Sub("stderr-" + n);
    return o;
  }

  static inline int counter_ = 0;
};

}  // namespace llmcache::testing

#endif  // LLMCACHE_TESTS_TESTING_SERVE_PROCESS_H_
