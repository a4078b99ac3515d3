// Private files (see rocks_private_fs.h).

#include "rocks_private_fs.h"

#include <dirent.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "format.h"

namespace llmcache {
namespace {

namespace fs = std::filesystem;

// The umask without changing it (umask(2) can only be read by setting it,
// which races with other threads creating files). Linux >= 4.7 reports it in
// /proc/self/status.
mode_t CurrentUmask() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Umask:", 0) == 0) {
      return static_cast<mode_t>(std::strtoul(line.c_str() + 6, nullptr, 8)) &
             0777;
    }
  }
  return 022;
}

void Chmod(const std::string& path, mode_t mode) {
  (void)::chmod(path.c_str(), mode);  // see the header: failures are ignored
}

class PrivateFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  explicit PrivateFileSystem(const std::shared_ptr<rocksdb::FileSystem>& base)
      : FileSystemWrapper(base) {}

  static const char* kClassName() { return "llmcache.PrivateFileSystem"; }
  const char* Name() const override { return kClassName(); }

  rocksdb::IOStatus NewWritableFile(const std::string& f,
                                    const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    return File(f, target()->NewWritableFile(f, o, r, dbg));
  }
  rocksdb::IOStatus ReopenWritableFile(
      const std::string& f, const rocksdb::FileOptions& o,
      std::unique_ptr<rocksdb::FSWritableFile>* r,
      rocksdb::IODebugContext* dbg) override {
    return File(f, target()->ReopenWritableFile(f, o, r, dbg));
  }
  rocksdb::IOStatus ReuseWritableFile(
      const std::string& f, const std::string& old,
      const rocksdb::FileOptions& o,
      std::unique_ptr<rocksdb::FSWritableFile>* r,
      rocksdb::IODebugContext* dbg) override {
    return File(f, target()->ReuseWritableFile(f, old, o, r, dbg));
  }
  rocksdb::IOStatus NewRandomRWFile(const std::string& f,
                                    const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    return File(f, target()->NewRandomRWFile(f, o, r, dbg));
  }
  // Counted per path (see the header): handles of one lock of `base`.
  rocksdb::IOStatus LockFile(const std::string& f, const rocksdb::IOOptions& o,
                             rocksdb::FileLock** l,
                             rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(locks_mu_);
    auto it = locks_.find(f);
    if (it == locks_.end()) {
      rocksdb::FileLock* real = nullptr;
      rocksdb::IOStatus s = File(f, target()->LockFile(f, o, &real, dbg));
      if (!s.ok()) return s;
      it = locks_.emplace(f, Held{real, 0}).first;
    }
    ++it->second.handles;
    *l = new Handle(f);
    return rocksdb::IOStatus::OK();
  }
  rocksdb::IOStatus UnlockFile(rocksdb::FileLock* l,
                               const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* dbg) override {
    // Every lock given to this file system came from its LockFile.
    std::unique_ptr<Handle> handle(static_cast<Handle*>(l));
    rocksdb::FileLock* real = nullptr;
    {
      std::lock_guard<std::mutex> lock(locks_mu_);
      auto it = locks_.find(handle->path);
      if (it == locks_.end() || --it->second.handles > 0) {
        return rocksdb::IOStatus::OK();
      }
      real = it->second.real;
      locks_.erase(it);
    }
    return target()->UnlockFile(real, o, dbg);
  }
  rocksdb::IOStatus NewLogger(const std::string& f, const rocksdb::IOOptions& o,
                              std::shared_ptr<rocksdb::Logger>* r,
                              rocksdb::IODebugContext* dbg) override {
    return File(f, target()->NewLogger(f, o, r, dbg));
  }
  rocksdb::IOStatus CreateDir(const std::string& d, const rocksdb::IOOptions& o,
                              rocksdb::IODebugContext* dbg) override {
    return Dir(d, target()->CreateDir(d, o, dbg));
  }
  rocksdb::IOStatus CreateDirIfMissing(const std::string& d,
                                       const rocksdb::IOOptions& o,
                                       rocksdb::IODebugContext* dbg) override {
    return Dir(d, target()->CreateDirIfMissing(d, o, dbg));
  }

 private:
  struct Handle final : rocksdb::FileLock {
    explicit Handle(std::string p) : path(std::move(p)) {}
    const std::string path;
  };
  struct Held {
    rocksdb::FileLock* real;  // base's
    int handles;
  };

  static rocksdb::IOStatus File(const std::string& f, rocksdb::IOStatus s) {
    if (s.ok()) Chmod(f, PrivateFileMode());
    return s;
  }
  static rocksdb::IOStatus Dir(const std::string& d, rocksdb::IOStatus s) {
    if (s.ok()) Chmod(d, PrivateDirectoryMode());
    return s;
  }

  std::mutex locks_mu_;
  std::unordered_map<std::string, Held> locks_;
};

}  // namespace

mode_t PrivateFileMode() {
  static const mode_t mode = 0600 & ~CurrentUmask();
  return mode;
}

mode_t PrivateDirectoryMode() {
  static const mode_t mode = 0700 & ~CurrentUmask();
  return mode;
}

std::shared_ptr<rocksdb::FileSystem> NewPrivateFileSystem(
    std::shared_ptr<rocksdb::FileSystem> base) {
  if (!base) base = rocksdb::FileSystem::Default();
  return std::make_shared<PrivateFileSystem>(base);
}

Status MakePrivateDirectory(const std::string& path) {
  auto fail = [&](const std::string& what, int err) {
    const std::string msg = what + " " + path + ": " + std::strerror(err);
    if (err == EACCES || err == EPERM || err == EROFS) {
      return PermissionDeniedError(msg);
    }
    return UnavailableError(msg);
  };
  std::error_code ec;
  const fs::path p(path);
  if (p.has_parent_path()) {
    fs::create_directories(p.parent_path(), ec);  // parents: default modes
    if (ec)
      return fail("cannot create the parent of database directory", ec.value());
  }
  if (::mkdir(path.c_str(), PrivateDirectoryMode()) != 0 && errno != EEXIST) {
    return fail("cannot create database directory", errno);
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return fail("cannot stat database directory", errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    return FailedPreconditionError("database path " + path +
                                   " exists and is not a directory");
  }
  // An existing directory (a database created before files were private):
  // tightened, with its files. Not ours to tighten (another owner): left
  // alone, and opening then fails on permissions if it must.
  if ((st.st_mode & 0777) != PrivateDirectoryMode() &&
      st.st_uid == ::geteuid()) {
    if (::chmod(path.c_str(), PrivateDirectoryMode()) != 0) {
      return fail("cannot make database directory private", errno);
    }
  }
  // Closed however this ends (a name's string may throw std::bad_alloc).
  const std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(path.c_str()),
                                                &::closedir);
  while (const dirent* e = dir ? ::readdir(dir.get()) : nullptr) {
    const std::string file = path + "/" + e->d_name;
    struct stat fst;
    if (::lstat(file.c_str(), &fst) != 0 || !S_ISREG(fst.st_mode)) continue;
    if ((fst.st_mode & 077) != 0 && fst.st_uid == ::geteuid()) {
      Chmod(file, (fst.st_mode & 0700) & PrivateFileMode());
    }
  }
  return Status();
}

std::vector<std::string> EntriesWithPrefix(const std::string& dir,
                                           std::string_view prefix) {
  std::vector<std::string> out;
  const std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()),
                                              &::closedir);
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d.get())) {
    if (std::string_view(e->d_name).starts_with(prefix)) {
      out.push_back(dir + "/" + e->d_name);
    }
  }
  return out;
}

namespace {

// `s` as one shell word.
std::string ShellQuoted(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// "<digits><suffix>", as RocksDB numbers its files.
bool IsNumbered(std::string_view name, std::string_view suffix) {
  if (!name.ends_with(suffix) || name.size() == suffix.size()) return false;
  name.remove_suffix(suffix.size());
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

Status CheckDirectoryForNewDatabase(const std::string& path) {
  const std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(path.c_str()),
                                              &::closedir);
  // Missing, unreadable or not a directory: creating the database fails
  // with its own message if it must.
  if (d == nullptr) return Status();
  std::string table_file;  // first table or blob file
  std::string log_file;    // first write-ahead log with records
  std::string foreign;     // first entry RocksDB would not have written
  std::string newest_manifest;
  uint64_t newest_manifest_number = 0;
  bool creating = false;
  while (const dirent* e = ::readdir(d.get())) {
    const std::string_view name = e->d_name;
    if (name == "." || name == ".." || name == "lost+found") continue;
    // A database after all (created since the caller looked).
    if (name == "CURRENT") return Status();
    // A creation under way or stopped: the files it moved up include a log
    // with records (its format marker), never a table.
    if (name == kCreatingDirectory) {
      creating = true;
      continue;
    }
    const bool table = IsNumbered(name, ".sst") || IsNumbered(name, ".blob") ||
                       IsNumbered(name, ".ldb");
    if (table && table_file.empty()) table_file = name;
    if (IsNumbered(name, ".log") && log_file.empty()) {
      struct stat st;
      if (::stat((path + "/" + std::string(name)).c_str(), &st) == 0 &&
          st.st_size > 0) {
        log_file = name;
      }
    }
    // *.trash: a file RocksDB's file deletion had renamed, still to delete.
    if (table || IsNumbered(name, ".log") || IsNumbered(name, ".dbtmp") ||
        name.ends_with(".trash")) {
      continue;
    }
    if (name.starts_with("MANIFEST-") && IsNumbered(name.substr(9), "")) {
      const uint64_t n = std::strtoull(name.data() + 9, nullptr, 10);
      if (newest_manifest.empty() || n > newest_manifest_number) {
        newest_manifest = name;
        newest_manifest_number = n;
      }
      continue;
    }
    // LLMCACHE-SERVE(.tmp): where `llmcache serve` listens (tools/cli);
    // bulk-load.*: a bulk load's files; LOG.old: the info log's last.
    if (name == "LOCK" || name == "IDENTITY" || name == "LOG" ||
        name.starts_with("LLMCACHE-SERVE") || name.starts_with("LOG.old") ||
        name.starts_with("bulk-load.") ||
        (name.starts_with("OPTIONS-") &&
         (IsNumbered(name.substr(8), "") ||
          IsNumbered(name.substr(8), ".dbtmp")))) {
      continue;
    }
    if (foreign.empty()) foreign = name;
  }
  const std::string data_file =
      !table_file.empty() ? table_file : (creating ? "" : log_file);
  if (!data_file.empty() && ::access((path + "/CURRENT").c_str(), F_OK) != 0) {
    std::string how =
        newest_manifest.empty()
            ? std::string(
                  " There is no MANIFEST file either: restore the "
                  "directory from a backup.")
            : " If nothing else wrote there, restore CURRENT (it names the "
              "newest MANIFEST file): printf '" +
                  newest_manifest + "\\n' > " + ShellQuoted(path + "/CURRENT");
    return DataLossError(
        "database directory " + path + " holds database files (" + data_file +
        ") but no CURRENT file: a damaged database, not opened and not "
        "replaced (a new database there would delete those files)." +
        how);
  }
  if (!foreign.empty()) {
    return FailedPreconditionError(
        "directory " + path + " is not empty (" + foreign +
        ") and holds no llmcache database: not creating one among its files; "
        "choose a new or empty directory");
  }
  return Status();
}

void RemoveTree(const std::string& path) noexcept {
  // Depth first, so that directories are empty when removed; not across
  // symbolic links.
  (void)::nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) {
        (void)::remove(p);
        return 0;
      },
      16, FTW_DEPTH | FTW_PHYS);
}

}  // namespace llmcache
