// RocksDB's info log (see rocks_info_log.h).

#include "rocks_info_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <utility>

#include "rocks_private_fs.h"

namespace llmcache {

InfoLog::InfoLog(std::string path, mode_t mode, uint64_t max_bytes,
                 rocksdb::InfoLogLevel level)
    : rocksdb::Logger(level),
      path_(std::move(path)),
      old_path_(path_ + ".old"),
      mode_(mode),
      max_bytes_(max_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  OpenLocked();
}

InfoLog::~InfoLog() {
  if (fd_ >= 0) ::close(fd_);
}

void InfoLog::OpenLocked() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, mode_);
  written_ = 0;
}

void InfoLog::RotateLocked() {
  // Another process appending to the same file keeps writing to the moved
  // one until it reopens; nothing is lost.
  (void)::rename(path_.c_str(), old_path_.c_str());
  OpenLocked();
}

void InfoLog::Logv(const char* format, va_list ap) {
  // "2026/12/05-19:30:00.123456 12345 message\n", as RocksDB's own logger
  // (with the thread's id). Longer messages are cut at the buffer's end.
  char line[4096];
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  tm t{};
  ::localtime_r(&now.tv_sec, &t);
  int n = std::snprintf(
      line, sizeof(line), "%04d/%02d/%02d-%02d:%02d:%02d.%06ld %ld ",
      t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
      now.tv_nsec / 1000, static_cast<long>(::syscall(SYS_gettid)));
  if (n < 0) n = 0;
  size_t used = static_cast<size_t>(n);
  va_list copy;
  va_copy(copy, ap);
  const int m = std::vsnprintf(line + used, sizeof(line) - used, format, copy);
  va_end(copy);
  if (m > 0) used += std::min(static_cast<size_t>(m), sizeof(line) - used - 1);
  if (used == 0 || line[used - 1] != '\n') {
    if (used == sizeof(line) - 1) --used;
    line[used++] = '\n';
  }

  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) {
    OpenLocked();  // it could not be opened before (or after a rotation)
  } else if (written_ >= max_bytes_) {
    RotateLocked();
  }
  if (fd_ < 0) {
    ++dropped_;
    return;
  }
  const ssize_t w = ::write(fd_, line, used);
  if (w != static_cast<ssize_t>(used)) {
    ++dropped_;
    if (w > 0) written_ += static_cast<uint64_t>(w);
    return;
  }
  written_ += used;
}

size_t InfoLog::GetLogFileSize() const {
  std::lock_guard<std::mutex> lock(mu_);
  struct stat st {};
  if (fd_ < 0 || ::fstat(fd_, &st) != 0) return 0;
  return static_cast<size_t>(st.st_size);
}

uint64_t InfoLog::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

std::shared_ptr<rocksdb::Logger> NewInfoLog(const std::string& dir,
                                            rocksdb::InfoLogLevel level) {
  return std::make_shared<InfoLog>(dir + "/LOG", PrivateFileMode(), 4u << 20,
                                   level);
}

}  // namespace llmcache
