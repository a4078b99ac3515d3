// RocksDB's info log (the LOG file in the database directory), written so
// that it can never take the process down or disturb another process's log.
//
// RocksDB's own logger writes through a WritableFileWriter, and Debian's
// librocksdb is built with assertions on: once one write to the LOG failed
// (a full disk), the next one aborts the process
// (WritableFileWriter::AssertFalseAndGetStatusForPrevError). RocksDB logs
// exactly when something fails in the background, so a full disk killed the
// proxy a second after the first failed insert, and again at every restart
// while the disk stayed full. RocksDB's logger also renames the LOG to
// LOG.old.<time> at every open, before the database lock is taken: a
// command refused because a service holds the database still moved the
// service's log aside, and after a few such refusals the old-log cleanup
// deleted the file the service was writing to.
//
// This logger appends each line with one write(2) to <dir>/LOG, opened with
// O_APPEND (so a refused command's lines land after the service's, and
// nothing is renamed at open); a failed write is dropped (and counted), never
// retried and never fatal. Once this process has written max_bytes, it moves
// the file to LOG.old (replacing an older one) and starts a new one, so the
// log stays under about 2 x max_bytes + the size it had at open.
//
// Thread safety: Logv may be called from any thread.

#ifndef LLMCACHE_ENGINE_ROCKS_INFO_LOG_H_
#define LLMCACHE_ENGINE_ROCKS_INFO_LOG_H_

#include <rocksdb/env.h>
#include <sys/types.h>

#include <cstdarg>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace llmcache {

class InfoLog final : public rocksdb::Logger {
 public:
  // `path` is the log file; created with `mode` when missing. Never fails:
  // when the file cannot be opened, lines are dropped (and counted) until a
  // rotation opens it again.
  InfoLog(std::string path, mode_t mode, uint64_t max_bytes,
          rocksdb::InfoLogLevel level);
  ~InfoLog() override;

  InfoLog(const InfoLog&) = delete;
  InfoLog& operator=(const InfoLog&) = delete;

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override;
  size_t GetLogFileSize() const override;

  // Lines that could not be written (an unopened file, a failed or short
  // write).
  uint64_t dropped() const;

 private:
  void OpenLocked();
  void RotateLocked();

  const std::string path_;
  const std::string old_path_;  // path_ + ".old"
  const mode_t mode_;
  const uint64_t max_bytes_;
  mutable std::mutex mu_;
  int fd_ = -1;
  uint64_t written_ = 0;  // by this process into the current file
  uint64_t dropped_ = 0;
};

// A shared InfoLog at <dir>/LOG (at most 4 MiB written per file before a
// rotation) at `level`, for DBOptions::info_log.
std::shared_ptr<rocksdb::Logger> NewInfoLog(const std::string& dir,
                                            rocksdb::InfoLogLevel level);

}  // namespace llmcache

#endif  // LLMCACHE_ENGINE_ROCKS_INFO_LOG_H_
