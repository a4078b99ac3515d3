// FromRocks: RocksDB status -> llmcache Status (see rocks_status.h).

#include "rocks_status.h"

#include <string>

namespace llmcache {

Status FromRocks(const rocksdb::Status& s, std::string_view path,
                 std::string_view what) {
  if (s.ok()) return Status();
  std::string msg = std::string(what) + " (database " + std::string(path) +
                    "): " + s.ToString();
  const std::string text = s.ToString();
  auto has = [&](const char* needle) {
    return text.find(needle) != std::string::npos;
  };
  if (s.IsIOError() && has("lock") &&
      (has("Resource temporarily unavailable") || has("No locks available") ||
       has("already held"))) {
    if (has("by current process")) {
      return FailedPreconditionError(
          "database " + std::string(path) +
          " is locked by this process: it is already open here (" + text +
          "); open it once and share the Cache (it is thread-safe)");
    }
    return FailedPreconditionError(
        "database " + std::string(path) + " is locked by another process (" +
        text +
        "); stop the process that owns it, or open it read-only for "
        "inspection");
  }
  if (has("Permission denied") || has("Read-only file system")) {
    return PermissionDeniedError(msg);
  }
  if (has("No space left")) return ResourceExhaustedError(msg);
  if (s.IsCorruption()) return DataLossError("corrupt database: " + msg);
  if (s.IsNotFound()) return NotFoundError(msg);
  if (s.IsInvalidArgument()) {
    if (has("does not exist")) return NotFoundError(msg);
    return InvalidArgumentError(msg);
  }
  if (s.IsNotSupported()) return UnimplementedError(msg);
  if (s.IsIOError() || s.IsBusy() || s.IsTryAgain() || s.IsTimedOut() ||
      s.IsIncomplete() || s.IsShutdownInProgress()) {
    return UnavailableError(msg);
  }
  return InternalError(msg);
}

}  // namespace llmcache
