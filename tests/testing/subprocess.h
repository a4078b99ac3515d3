// Runs a program as a child process and collects what it printed: for tests
// that exercise the built binaries exactly as users do.
//
//   auto r = llmcache::testing::RunProcess({LLMCACHE_BIN, "stats", "--json"});
//   EXPECT_EQ(r.exit_code, 0) << r.err;
//
// A child left running (a server under test) is a BackgroundProcess.
//
// Header-only (posix_spawn + poll); aborts the test process only if pipes or
// the spawn itself cannot be created.

#ifndef LLMCACHE_TESTS_TESTING_SUBPROCESS_H_
#define LLMCACHE_TESTS_TESTING_SUBPROCESS_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "testing/wait.h"

extern char** environ;

namespace llmcache::testing {

struct ProcessResult {
  int exit_code = -1;  // -1 if killed by a signal (see term_signal)
  int term_signal = 0;
  std::string out;
  std::string err;
};

// The environment of llmcache's own settings ($LLMCACHE_*, the upstream key,
// the default database's location): tests that run the llmcache binary drop
// these from ours so that a developer's settings cannot leak into a test.
inline const std::vector<std::string> kLlmcacheEnvironment = {
    "LLMCACHE_", "OPENROUTER_", "XDG_CACHE_HOME="};

// Our environment without the entries that start with one of
// `drop_prefixes`, plus `extra` ("NAME=value" entries, added or overriding).
inline std::vector<std::string> MergedEnvironment(
    const std::vector<std::string>& extra,
    const std::vector<std::string>& drop_prefixes = {}) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    bool dropped = false;
    for (const std::string& x : extra) {
      if (x.substr(0, x.find('=')) == name) dropped = true;
    }
    for (const std::string& prefix : drop_prefixes) {
      if (entry.rfind(prefix, 0) == 0) dropped = true;
    }
    if (!dropped) env.push_back(entry);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

[[noreturn]] inline void SubprocessDie(const char* what) {
  std::fprintf(stderr, "RunProcess: %s: %s\n", what, std::strerror(errno));
  std::abort();
}

// Starts `argv` with stdin from `input` and waits for it to exit. `env` and
// `drop_env_prefixes` as for MergedEnvironment.
inline ProcessResult RunProcess(
    const std::vector<std::string>& argv, const std::string& input = "",
    const std::vector<std::string>& env = {},
    const std::vector<std::string>& drop_env_prefixes = {}) {
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0 ||
      pipe2(err_pipe, O_CLOEXEC) != 0) {
    SubprocessDie("pipe2");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  std::vector<char*> args;
  for (const std::string& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_strings =
      MergedEnvironment(env, drop_env_prefixes);
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  const int rc =
      posix_spawn(&pid, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    errno = rc;
    SubprocessDie(argv[0].c_str());
  }
  // Feed stdin and drain stdout/stderr together so that neither side can
  // block on a full pipe.
  signal(SIGPIPE, SIG_IGN);
  ProcessResult result;
  size_t written = 0;
  int in_fd = in_pipe[1];
  if (input.empty()) {
    close(in_fd);
    in_fd = -1;
  }
  int out_fd = out_pipe[0], err_fd = err_pipe[0];
  while (out_fd >= 0 || err_fd >= 0) {
    pollfd fds[3];
    int n = 0;
    if (out_fd >= 0) fds[n++] = {out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[n++] = {err_fd, POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    if (poll(fds, static_cast<nfds_t>(n), -1) < 0) {
      if (errno == EINTR) continue;
      SubprocessDie("poll");
    }
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in_fd) {
        const ssize_t w =
            write(in_fd, input.data() + written, input.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if (w < 0 || written == input.size()) {
          close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      char buf[65536];
      const ssize_t r = read(fds[i].fd, buf, sizeof(buf));
      std::string& sink = fds[i].fd == out_fd ? result.out : result.err;
      if (r > 0) {
        sink.append(buf, static_cast<size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        if (fds[i].fd == out_fd) {
          close(out_fd);
          out_fd = -1;
        } else {
          close(err_fd);
          err_fd = -1;
        }
      }
    }
  }
  if (in_fd >= 0) close(in_fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.term_signal = WTERMSIG(status);
  }
  return result;
}

// Options of a BackgroundProcess.
struct BackgroundOptions {
  // "NAME=value" entries added to (or overriding) our environment.
  std::vector<std::string> env;
  // Entries of our environment that start with one of these are not passed
  // on (see kLlmcacheEnvironment).
  std::vector<std::string> drop_env_prefixes;
  // Files that receive the child's stdout and stderr (created or truncated);
  // "" = the child shares ours.
  std::string stdout_path;
  std::string stderr_path;
};

// How long BackgroundProcess::Wait waits by default.
inline constexpr std::chrono::milliseconds kProcessTimeout{30'000};

// A child left running (a server, a second live process); killed with
// SIGKILL and reaped when destroyed unless it has exited.
class BackgroundProcess {
 public:
  explicit BackgroundProcess(const std::vector<std::string>& argv,
                             const BackgroundOptions& options = {})
      : stdout_path_(options.stdout_path), stderr_path_(options.stderr_path) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    constexpr int kFlags = O_WRONLY | O_CREAT | O_TRUNC;
    if (!stdout_path_.empty()) {
      posix_spawn_file_actions_addopen(&actions, 1, stdout_path_.c_str(),
                                       kFlags, 0600);
    }
    if (!stderr_path_.empty()) {
      posix_spawn_file_actions_addopen(&actions, 2, stderr_path_.c_str(),
                                       kFlags, 0600);
    }
    std::vector<char*> args;
    for (const std::string& a : argv) {
      args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    std::vector<std::string> env_strings =
        MergedEnvironment(options.env, options.drop_env_prefixes);
    std::vector<char*> envp;
    for (std::string& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    const int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(),
                               envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      errno = rc;
      SubprocessDie(argv[0].c_str());
    }
  }
  ~BackgroundProcess() {
    if (!wait_status_) {
      kill(pid_, SIGKILL);
      int status = 0;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Sends `sig` unless the child has been reaped (its pid may be reused).
  void Signal(int sig) {
    if (!wait_status_) kill(pid_, sig);
  }

  // Whether the child has exited (reaps it if so; never blocks).
  bool Exited() {
    if (wait_status_) return true;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) wait_status_ = status;
    return wait_status_.has_value();
  }

  // Waits for the child to exit: its exit code, 128 + the signal number if a
  // signal ended it, or -1 if it is still running after `timeout`.
  int Wait(std::chrono::milliseconds timeout = kProcessTimeout) {
    if (!WaitFor([this] { return Exited(); }, timeout)) return -1;
    return WIFEXITED(*wait_status_) ? WEXITSTATUS(*wait_status_)
                                    : 128 + WTERMSIG(*wait_status_);
  }

  // What the child has written so far to stdout / stderr ("" unless they go
  // to files).
  std::string Out() const { return ReadWholeFile(stdout_path_); }
  std::string Err() const { return ReadWholeFile(stderr_path_); }

 private:
  static std::string ReadWholeFile(const std::string& path) {
    if (path.empty()) return "";
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)),
                       std::istreambuf_iterator<char>());
  }

  pid_t pid_ = 0;
  std::optional<int> wait_status_;
  std::string stdout_path_;
  std::string stderr_path_;
};

}  // namespace llmcache::testing

#endif  // LLMCACHE_TESTS_TESTING_SUBPROCESS_H_
