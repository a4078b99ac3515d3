// TempDir: a fresh directory under /tmp (or $TMPDIR) for one test, removed
// with everything in it when the object goes out of scope.
//
//   llmcache::testing::TempDir dir;
//   options.path = dir.path() + "/db";
//
// Header-only so that any test or tool can use it without a link dependency.
// Not thread-safe to destroy while another thread writes into the directory.

#ifndef LLMCACHE_TESTS_TESTING_TEMP_DIR_H_
#define LLMCACHE_TESTS_TESTING_TEMP_DIR_H_

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

namespace llmcache::testing {

class TempDir {
 public:
  // Creates <$TMPDIR or /tmp>/<prefix>-XXXXXX (mode 0700). Aborts the process
  // with a message if it cannot: a test without its directory is meaningless,
  // and constructors cannot return a Status.
  explicit TempDir(std::string_view prefix = "llmcache-test") {
    const char* env = std::getenv("TMPDIR");
    std::string templ = (env != nullptr && *env != '\0') ? env : "/tmp";
    if (templ.back() != '/') templ += '/';
    templ.append(prefix);
    templ += "-XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) {
      std::fprintf(stderr, "TempDir: mkdtemp(%s) failed: %s\n", templ.c_str(),
                   std::strerror(errno));
      std::abort();
    }
    std::error_code ec;
    std::filesystem::path absolute = std::filesystem::absolute(templ, ec);
    path_ = ec ? std::move(templ) : absolute.string();
  }

  // Removes the directory recursively. Errors are ignored (best effort: a
  // leftover directory under /tmp must not fail a test that passed).
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) {
    other.path_.clear();
  }
  TempDir& operator=(TempDir&& other) noexcept {
    if (this != &other) {
      TempDir doomed(std::move(*this));  // removes the old directory
      path_ = std::move(other.path_);
      other.path_.clear();
    }
    return *this;
  }

  // Absolute path of the directory, without a trailing slash.
  const std::string& path() const { return path_; }

  // path() + "/" + name.
  std::string Sub(std::string_view name) const {
    std::string p = path_;
    p += '/';
    p.append(name);
    return p;
  }

 private:
  std::string path_;
};

}  // namespace llmcache::testing

#endif  // LLMCACHE_TESTS_TESTING_TEMP_DIR_H_
